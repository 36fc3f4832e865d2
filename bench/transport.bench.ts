// Transport throughput: how many SIP messages one UDP and one TCP transport receive, frame, parse
// and hand up per second, beside a bare node:dgram / node:net receiver of the same bytes that
// only counts them, in the same run. The ratio is Parley's cost over the sockets themselves.
//
//   npm run bench:transport        (BENCH_SECONDS per case, default 3; BENCH_WINDOW, default 64)
//
// A sender in a worker thread keeps BENCH_WINDOW messages in flight (closed loop: one more per
// message received), so UDP is never overrun and loses nothing, and both sides get a core.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { Worker } from 'node:worker_threads';
import { TcpTransport, UdpTransport, type Sink, type TransportEvent } from '../src/index.js';
import { MESSAGE } from './messages.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const window = Number(process.env.BENCH_WINDOW ?? 64);

interface Receiver {
  port: number;
  onMessages(handler: (count: number) => void): void;
  close(): Promise<void>;
}

/** Runs the sender against `receiver` and returns messages per second received. */
async function measure(protocol: 'udp' | 'tcp', receiver: Receiver): Promise<number> {
  const worker = new Worker(new URL('./transport-sender.js', import.meta.url), {
    workerData: { protocol, port: receiver.port, message: MESSAGE, window },
  });
  let received = 0;
  let credit = 0;
  let flushScheduled = false;
  // Credits are batched per turn: one postMessage per message would cost more than the message.
  const flush = (): void => {
    flushScheduled = false;
    if (credit > 0) worker.postMessage({ credit });
    credit = 0;
  };
  receiver.onMessages((count) => {
    received += count;
    credit += count;
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  });
  await new Promise((r) => setTimeout(r, 300)); // warm-up
  const start = received;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const rate = ((received - start) * 1000) / (performance.now() - t0);
  worker.postMessage({ stop: true });
  await new Promise((r) => worker.once('exit', r));
  await receiver.close();
  return rate;
}

function counter(): { sink: Sink<TransportEvent>; onMessages(h: (n: number) => void): void } {
  let handler: (n: number) => void = () => undefined;
  return {
    sink: { push: (event) => (event.type === 'message' ? handler(1) : undefined) },
    onMessages: (h) => (handler = h),
  };
}

async function parleyUdp(): Promise<Receiver> {
  const c = counter();
  const t = new UdpTransport({ address: '127.0.0.1', port: 0, sink: c.sink });
  await t.start();
  return { port: t.local.port, onMessages: c.onMessages, close: () => t.close() };
}

async function parleyTcp(): Promise<Receiver> {
  const c = counter();
  const t = new TcpTransport({ address: '127.0.0.1', port: 0, sink: c.sink });
  await t.start();
  return { port: t.local.port, onMessages: c.onMessages, close: () => t.close() };
}

async function bareUdp(): Promise<Receiver> {
  const socket = createSocket('udp4');
  let handler: (n: number) => void = () => undefined;
  socket.on('message', () => handler(1));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, onMessages: (h) => (handler = h), close: () => new Promise((r) => socket.close(() => r())) };
}

async function bareTcp(): Promise<Receiver> {
  let handler: (n: number) => void = () => undefined;
  const size = MESSAGE.length;
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let carry = 0;
    socket.on('data', (chunk: Buffer) => {
      carry += chunk.length;
      const whole = Math.floor(carry / size);
      carry -= whole * size;
      if (whole > 0) handler(whole);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    onMessages: (h) => (handler = h),
    close: () =>
      new Promise((r) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => r());
      }),
  };
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${MESSAGE.length}-byte MESSAGE, window ${window}, ${seconds}s per case\n`);
  const rows: string[] = [];
  for (const [label, ours, bare] of [
    ['UDP', parleyUdp, bareUdp],
    ['TCP', parleyTcp, bareTcp],
  ] as const) {
    const protocol = label === 'UDP' ? 'udp' : 'tcp';
    const bareRate = await measure(protocol, await bare());
    const ourRate = await measure(protocol, await ours());
    console.log(`  ${label}: parley ${Math.round(ourRate).toLocaleString('en-US')} msg/s, bare socket ${Math.round(bareRate).toLocaleString('en-US')} msg/s`);
    rows.push(`| ${label} | ${Math.round(ourRate).toLocaleString('en-US')} | ${Math.round(bareRate).toLocaleString('en-US')} | ${(ourRate / bareRate).toFixed(2)} |`);
  }
  console.log('\n| transport | parley msg/s (receive, frame, parse, hand up) | bare socket msg/s (count only) | ratio |\n| --- | ---: | ---: | ---: |');
  for (const row of rows) console.log(row);
}

void main();
