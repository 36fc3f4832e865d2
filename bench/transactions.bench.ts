// Transaction-layer throughput and memory, in one process, no sockets: SipStacks on in-memory
// loopback transports (bench/loopback.ts) that still serialize and parse every message.
//
//   tsc -p tsconfig.bench.json && node --expose-gc .bench/bench/transactions.bench.js
//   (BENCH_SECONDS per throughput case, default 3; BENCH_WINDOW transactions in flight, default 256;
//    BENCH_LIVE live transactions for the memory case, default 100000)
//
// Cases (closed loop: a new transaction starts as soon as one completes, BENCH_WINDOW at a time):
//  - server: a raw load generator sends pre-serialized MESSAGEs (unique branch and Call-ID) into
//    one SipStack whose TU answers 200; counted when the 200 comes back. Over the reliable
//    loopback ('tcp') Timer J is 0, so each transaction is created, answered and terminated.
//  - client: one SipStack sends MESSAGEs with stack.request(createRequest(…)) to a raw peer that
//    answers each with a 200 spliced from the request's own header lines; counted at `final`.
//  - two stacks: a client SipStack and a server SipStack, end to end (client + server
//    transaction per count), over the reliable loopback and over the unreliable one (UDP: Timers
//    E/F are armed and cancelled, the server's transactions wait in Completed for Timer J = 32 s
//    and the client's for Timer K = 5 s, so live transactions pile up during the run).
//  - memory: BENCH_LIVE server non-INVITE transactions held in Completed on the unreliable
//    loopback (a ManualClock that never moves, so Timer J never fires), heap measured after
//    global.gc() before and after; needs `node --expose-gc`.
import {
  createRequest,
  createResponse,
  ManualClock,
  parseMessage,
  SipStack,
  validateMessage,
  type ServerRequest,
  type Tuple,
} from '../src/index.js';
import { LoopbackNetwork, LoopbackTransport, RawPeer } from './loopback.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const windowSize = Number(process.env.BENCH_WINDOW ?? 256);
const liveTarget = Number(process.env.BENCH_LIVE ?? 100_000);

const gc = (globalThis as { gc?: () => void }).gc;

/** A 200-answering TU. */
const answer200 = { onRequest: (r: ServerRequest) => void (r.message.method === 'ACK' ? undefined : r.respond(200)) };

interface Stacked {
  stack: SipStack;
  transport: LoopbackTransport;
}

async function stackOn(network: LoopbackNetwork, protocol: 'udp' | 'tcp', clock?: ManualClock): Promise<Stacked> {
  const transport = new LoopbackTransport(network, protocol);
  const stack = new SipStack({ transports: [transport], ...(clock ? { clock } : {}) });
  transport.attach(stack.sink);
  await transport.start();
  await stack.start();
  return { stack, transport };
}

/**
 * stop(): waits for transactions still working toward a final response (none once a case has
 * drained), ends the rest (Completed ones waiting for Timer J…) with their timers, and closes the
 * transport, so the next case starts without the previous one's live transactions.
 */
async function closeNow(s: Stacked): Promise<void> {
  await s.stack.stop();
  await s.transport.close();
}

/** Serialized MESSAGEs from `from` to `to`, each with its own branch, From tag and Call-ID. */
function requestFactory(from: Tuple, to: Tuple): (n: number) => Buffer {
  const transport = from.protocol.toUpperCase();
  const text = 'Watson, come here. I want to see you.';
  const head = `MESSAGE sip:bench@${to.address}:${to.port} SIP/2.0\r\nVia: SIP/2.0/${transport} ${from.address}:${from.port};branch=z9hG4bK-bench-`;
  const tail = [
    'Max-Forwards: 70',
    `To: <sip:bench@${to.address}:${to.port}>`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(text)}`,
    '',
    text,
  ].join('\r\n');
  return (n) => Buffer.from(`${head}${n}\r\nFrom: <sip:load@${from.address}>;tag=t${n}\r\nCall-ID: c${n}@bench\r\n${tail}`, 'latin1');
}

/** A 200 for a request, from its own Via/From/To/Call-ID/CSeq lines (what a minimal UAS does). */
function splice200(request: Buffer): Buffer {
  const text = request.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end).split('\r\n');
  const out = ['SIP/2.0 200 OK'];
  for (const line of lines) {
    const name = line.slice(0, line.indexOf(':')).toLowerCase();
    if (name === 'via' || name === 'from' || name === 'call-id' || name === 'cseq') out.push(line);
    else if (name === 'to') out.push(`${line};tag=peer`);
  }
  out.push('Content-Length: 0', '', '');
  return Buffer.from(out.join('\r\n'), 'latin1');
}

interface Load {
  /** Starts one transaction; calls `done` when it has completed. */
  issue(done: () => void): void;
  /** Text for the report after the run (live transactions…). */
  after?(): string;
  close(): Promise<void>;
}

/** Runs `load` closed-loop with `windowSize` in flight; returns completions per second. */
async function measure(label: string, load: Load): Promise<{ rate: number; note: string }> {
  let completed = 0;
  let running = true;
  let inFlight = 0;
  const done = (): void => {
    completed++;
    inFlight--;
    if (running) start();
  };
  const start = (): void => {
    inFlight++;
    load.issue(done);
  };
  for (let i = 0; i < windowSize; i++) start();
  await sleep(Math.min(1000, seconds * 250)); // warm-up
  const from = completed;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const rate = ((completed - from) * 1000) / (performance.now() - t0);
  running = false;
  const deadline = performance.now() + 2000;
  while (inFlight > 0 && performance.now() < deadline) await sleep(10);
  const note = `${inFlight === 0 ? 'drained' : `${inFlight} still in flight`}${load.after ? `; ${load.after()}` : ''}`;
  await load.close();
  console.log(`  ${label}: ${fmt(rate)} transactions/s (${note})`);
  return { rate, note };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

// ---- cases ---------------------------------------------------------------------------------

async function serverLoad(protocol: 'udp' | 'tcp'): Promise<Load> {
  const network = new LoopbackNetwork();
  const server = await stackOn(network, protocol);
  server.stack.setDefaultTu(answer200);
  const peer = new RawPeer(network, protocol);
  const make = requestFactory(peer.local, server.transport.local);
  const waiting = new Map<number, () => void>();
  // The Call-ID "c<n>@bench" finds the waiter; a retransmitted 200 (UDP) finds none.
  peer.onBytes = (bytes) => {
    const text = bytes.toString('latin1');
    const at = text.indexOf('Call-ID: c') + 10;
    const n = Number(text.slice(at, text.indexOf('@', at)));
    const done = waiting.get(n);
    if (done) {
      waiting.delete(n);
      done();
    }
  };
  let n = 0;
  return {
    issue(done) {
      const id = n++;
      waiting.set(id, done);
      peer.send(make(id), server.transport.local);
    },
    after: () => `server live transactions ${fmt(server.stack.transactionCount)}, timers ${fmt(server.stack.timerCount)}`,
    close: async () => {
      peer.close();
      await closeNow(server);
    },
  };
}

async function clientLoad(protocol: 'udp' | 'tcp'): Promise<Load> {
  const network = new LoopbackNetwork();
  const client = await stackOn(network, protocol);
  const peer = new RawPeer(network, protocol);
  const target = { ...peer.local };
  // Answers each request (a MESSAGE starts with "M") with a 200, on its connection or to its source.
  peer.onBytes = (bytes, source, connectionId) => {
    if (bytes[0] === 0x4d) peer.reply(splice200(bytes), source, connectionId);
  };
  const uri = `sip:bench@${peer.local.address}:${peer.local.port}`;
  return {
    issue(done) {
      const request = createRequest({ method: 'MESSAGE', uri, from: '<sip:load@127.0.0.1>', to: `<${uri}>`, body: 'Watson, come here.', contentType: 'text/plain' });
      void client.stack.request(request, { target }).final.then(done);
    },
    after: () => `client live transactions ${fmt(client.stack.transactionCount)}, timers ${fmt(client.stack.timerCount)}`,
    close: async () => {
      peer.close();
      await closeNow(client);
    },
  };
}

async function twoStacksLoad(protocol: 'udp' | 'tcp'): Promise<Load> {
  const network = new LoopbackNetwork();
  const server = await stackOn(network, protocol);
  server.stack.setDefaultTu(answer200);
  const client = await stackOn(network, protocol);
  const target = { ...server.transport.local };
  const uri = `sip:bench@${target.address}:${target.port}`;
  return {
    issue(done) {
      const request = createRequest({ method: 'MESSAGE', uri, from: '<sip:load@127.0.0.1>', to: `<${uri}>`, body: 'Watson, come here.', contentType: 'text/plain' });
      void client.stack.request(request, { target }).final.then(done);
    },
    after: () =>
      `live transactions: client ${fmt(client.stack.transactionCount)}, server ${fmt(server.stack.transactionCount)}; timers: client ${fmt(client.stack.timerCount)}, server ${fmt(server.stack.timerCount)}`,
    close: async () => {
      await closeNow(client);
      await closeNow(server);
    },
  };
}

// ---- memory --------------------------------------------------------------------------------

interface MemoryFigures {
  live: number;
  timers: number;
  heapPerTx: number;
  totalPerTx: number;
  /** The same requests parsed, validated and read, with their 200's bytes, and nothing else. */
  requestHeapPerTx: number;
  requestTotalPerTx: number;
}

function heap(): { heapUsed: number; total: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, total: m.heapUsed + m.external + m.arrayBuffers };
}

/** Fills a UDP server stack (clock frozen) with `count` Completed non-INVITE transactions. */
async function fill(count: number): Promise<{ server: Stacked; peer: RawPeer }> {
  const network = new LoopbackNetwork();
  const clock = new ManualClock();
  const server = await stackOn(network, 'udp', clock);
  server.stack.setDefaultTu(answer200);
  const peer = new RawPeer(network, 'udp');
  const make = requestFactory(peer.local, server.transport.local);
  let answered = 0;
  let sent = 0;
  await new Promise<void>((resolve) => {
    peer.onBytes = () => {
      answered++;
      if (sent < count) peer.send(make(sent++), server.transport.local);
      else if (answered === count) resolve();
    };
    for (let i = 0; i < Math.min(windowSize, count); i++) peer.send(make(sent++), server.transport.local);
  });
  return { server, peer };
}

async function memory(count: number): Promise<MemoryFigures | undefined> {
  if (gc === undefined) {
    console.log('  memory: skipped (run node with --expose-gc)');
    return undefined;
  }
  // Warm up the code paths (JIT code lives on the heap too), then measure from a settled heap.
  const warm = await fill(5000);
  warm.peer.close();
  await closeNow(warm.server);
  await sleep(50);
  const before = heap();
  const { server, peer } = await fill(count);
  const after = heap();
  const figures: MemoryFigures = {
    live: server.stack.transactionCount,
    timers: server.stack.timerCount,
    heapPerTx: (after.heapUsed - before.heapUsed) / count,
    totalPerTx: (after.total - before.total) / count,
    requestHeapPerTx: 0,
    requestTotalPerTx: 0,
  };
  // For scale: what the same requests cost alone, parsed, validated and read as the stack reads
  // them (every transaction keeps its request), with their 200's bytes (it keeps the last response).
  const kept: unknown[] = [];
  const base = heap();
  const make = requestFactory({ protocol: 'udp', address: '127.0.0.1', port: 1 }, { protocol: 'udp', address: '127.0.0.1', port: 2 });
  for (let i = 0; i < count; i++) {
    const request = parseMessage(make(i));
    validateMessage(request);
    void [request.via[0]?.branch, request.cseq.method, request.callId, request.from.tag];
    kept.push([request, createResponse(request, 200).toBuffer()]);
  }
  const alone = heap();
  figures.requestHeapPerTx = (alone.heapUsed - base.heapUsed) / kept.length;
  figures.requestTotalPerTx = (alone.total - base.total) / kept.length;
  kept.length = 0;
  console.log(
    `  memory: ${fmt(figures.live)} live server transactions (Completed, UDP), ${fmt(figures.timers)} timers: ` +
      `${fmt(figures.heapPerTx)} B/transaction on the JS heap, ${fmt(figures.totalPerTx)} B with external/ArrayBuffer memory ` +
      `(heap ${fmt(before.heapUsed / 1048576)} → ${fmt(after.heapUsed / 1048576)} MiB); ` +
      `the same requests alone (parsed, validated, read) with their 200s' bytes: ${fmt(figures.requestHeapPerTx)} B heap, ${fmt(figures.requestTotalPerTx)} B with external`,
  );
  peer.close();
  await closeNow(server);
  return figures;
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, window ${windowSize}, ${seconds}s per throughput case, ${fmt(liveTarget)} live transactions for memory\n`);
  const mem = await memory(liveTarget);
  const results: Array<[string, number, string]> = [];
  const run = async (label: string, load: Promise<Load>): Promise<void> => {
    // Start each case from a collected heap, so no case pays for the garbage of the one before.
    gc?.();
    const { rate, note } = await measure(label, await load);
    results.push([label, rate, note]);
  };
  await run('server non-INVITE, reliable loopback (Timer J = 0)', serverLoad('tcp'));
  await run('client non-INVITE, reliable loopback (Timer K = 0)', clientLoad('tcp'));
  await run('two stacks, client + server non-INVITE, reliable loopback', twoStacksLoad('tcp'));
  await run('server non-INVITE, unreliable loopback (Timer J = 32 s)', serverLoad('udp'));
  await run('client non-INVITE, unreliable loopback (Timers E/F, K = 5 s)', clientLoad('udp'));
  await run('two stacks, client + server non-INVITE, unreliable loopback', twoStacksLoad('udp'));
  console.log('\n| case | transactions/s | after the run |\n| --- | ---: | --- |');
  for (const [label, rate, note] of results) console.log(`| ${label} | ${fmt(rate)} | ${note} |`);
  if (mem) {
    console.log(
      `| memory: ${fmt(mem.live)} server transactions in Completed (UDP) | — | ${fmt(mem.heapPerTx)} B/tx JS heap, ${fmt(mem.totalPerTx)} B/tx incl. external ` +
        `(request + response bytes alone: ${fmt(mem.requestHeapPerTx)} B heap, ${fmt(mem.requestTotalPerTx)} B incl. external) |`,
    );
  }
  process.exit(0);
}

void main();
