// Federated MESSAGE store-and-forward over 0, 1, 2 and 3 hops, in one run:
//
//   tsc -p tsconfig.bench.json && node .bench/bench/federation-load.js      (npm run bench:federation)
//
// A line of four `parley server` processes (the CLI compiled by the same tsc run,
// .bench/src/cli/main.js; dist/cli/main.js when that is missing), each with its own event loop and
// its own data directory on disk (SQLite WAL, synchronous=FULL, group commit — no ':memory:'):
//
//   a.example — b.example — c.example — d.example
//
// each listening on tcp:127.0.0.1:<free port>, configured with `--peer` for its neighbours and one
// `--secret`. Accounts are written into each data directory before its server starts (the same
// SqliteStore the server opens): alice (the sender) and r0 on A, r1 on B, r2 on C, r3 on D. The
// bench waits until A has learned d.example over 3 hops, then connects, in this process, a
// ParleyClient per receiver (registered, RFC 5626 outbound over TCP; its own state directory) and
// one for alice (not registered: it only sends). alice sends to rH@<H hops away>: r0 on A itself is
// 0 hops (local store-and-forward: the reference), r1 1 hop (A stores, forwards to B, which stores
// and delivers), r2 2 hops, r3 3 hops. Every message is `ParleyClient.send()` (a message/cpim
// MESSAGE, digest-challenged by A, no delivery notification asked: the path is one way), its text
// `parley-bench p<phase> s<seq> t<performance.now() at send>`; the receiver's `message` event
// records the arrival, and latency = arrival − t: sender and receivers share this process's clock.
//
// Two loads per hop count (a phase each, one after the other, each waiting for the previous to
// drain), and BENCH_ROUNDS rounds of all eight phases (interleaved, so a burst of other work on
// the machine lands on one round of every hop count rather than on one hop count):
//  - closed loop: BENCH_MESSAGES messages with BENCH_IN_FLIGHT sends outstanding (a send waits for
//    its 202 before the next goes): the path's capacity; latency here is mostly queueing in A's log;
//  - fixed rate: BENCH_RATE_MESSAGES at BENCH_RATE messages/s (open loop): latency of the path
//    below capacity.
// Per phase (printed as it ends): offered, accepted (202), delivered once (distinct sequence
// numbers that arrived), duplicates (arrivals of a sequence number seen before, as `message`
// events and on the wire: the client drops a redelivered Message-ID before its event), missing
// (accepted, not arrived within BENCH_DRAIN seconds of no progress), delivered messages/s
// (delivered / (last arrival − first send)), latency p50/p99; each server's `stored` log lines for
// the phase (one per message per hop is exactly-once storage along the path), its courier retry
// rounds (`delivery to … failed with S; next try in …`: a next hop or device answered 408/480/5xx
// and the courier waits deliveryRetryMs, 1 s first), its CPU over the phase (/proc/<pid>/stat) and
// per delivered message; this process's CPU (the five clients) and event-loop delay.
// The table: one row per load and hop count over all rounds — counts summed, latencies pooled,
// messages/s the median of the rounds (min–max), its ratio the median of each round's ratio to
// that round's 0-hop figure. Ratios are against the 0-hop row of the same load: the peer measured
// in the same run is the local path through A alone. Anything else running on the machine skews
// every figure: before each phase the bench waits (bounded) while other processes keep more than a
// quarter core busy, and it reports, per phase and per row, the cores other processes took
// (/proc/stat's busy time minus the servers' and its own); when some phases were not quiet (other
// processes at 0.1 cores or more), a second table gives the same figures over the quiet ones.
// Each server gets a config file with maxStoredPerUser 10,000,000: the mailbox quota counts a
// relayed recipient's rows at every hop, and delivered rows are only deleted once a minute.
//
// Environment:
//   BENCH_MESSAGES        closed-loop messages per hop count, default 2000
//   BENCH_IN_FLIGHT       closed-loop sends outstanding, default 64
//   BENCH_RATE            fixed-rate messages/s, default 200
//   BENCH_RATE_MESSAGES   fixed-rate messages per hop count, default 1000
//   BENCH_ROUNDS          rounds (each: every hop count under both loads), default 3
//   BENCH_WARMUP          messages to each receiver before the phases (not reported), default 200
//   BENCH_DRAIN           seconds without an arrival after which the missing are given up, default 15
//   BENCH_DELIVERY_WINDOW the servers' deliveryWindow (MESSAGEs in flight per device); default: the server's own (32)
//   BENCH_RELAY_WINDOW    the servers' relayWindow (MESSAGEs in flight to the next hop per foreign
//                         recipient); default: the server's own (1: in order, each after the last 2xx)
//   BENCH_QUIET_WAIT      before each phase, wait up to this many seconds while other processes keep
//                         more than a quarter core busy (a shared machine), default 8
//   BENCH_QUIET_BUDGET    at most this many seconds of such waiting per run, default 30
//   BENCH_KEEP=1          keep the temp directory (data and server logs) and print where it is
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ParleyClient as Client } from '../src/index.js';

const HOST = '127.0.0.1';
const SECRET = 'bench-federation-secret';
const PASSWORD = 'pw';
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const RATE_MESSAGES = Number(process.env.BENCH_RATE_MESSAGES ?? 1000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 200);
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN ?? 15);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const QUIET_WAIT = Number(process.env.BENCH_QUIET_WAIT ?? 8);
const QUIET_BUDGET = Number(process.env.BENCH_QUIET_BUDGET ?? 30);
/** A phase during which other processes took less than this many cores counts as quiet. */
const QUIET_CORES = 0.1;
const DELIVERY_WINDOW = process.env.BENCH_DELIVERY_WINDOW ? Number(process.env.BENCH_DELIVERY_WINDOW) : undefined;
const RELAY_WINDOW = process.env.BENCH_RELAY_WINDOW ? Number(process.env.BENCH_RELAY_WINDOW) : undefined;
const KEEP = process.env.BENCH_KEEP === '1';

const repo = fileURLToPath(new URL('../../', import.meta.url)); // .bench/bench/ → the repository

// The DUM (and the CLI's `version`) read package.json relative to their modules, which compiled
// into .bench/ is .bench/package.json: put a copy there before the first import of src/.
const benchPackage = fileURLToPath(new URL('../package.json', import.meta.url));
if (!existsSync(benchPackage)) copyFileSync(join(repo, 'package.json'), benchPackage);
const { accountHashes, databasePath, DEFAULT_CONFIG, ParleyClient, SqliteStore } = await import('../src/index.js');

function cliPath(): string {
  const compiled = join(repo, '.bench', 'src', 'cli', 'main.js');
  if (existsSync(compiled)) return compiled;
  const built = join(repo, 'dist', 'cli', 'main.js');
  if (existsSync(built)) return built;
  throw new Error('no compiled parley CLI: run `tsc -p tsconfig.bench.json` (or `npm run build`) first');
}

// ---- children and temp dirs: everything is cleaned up, even on failure or ^C ------------------

const children = new Set<ChildProcess>();
let root: string | undefined;

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  if (root && !KEEP) rmSync(root, { recursive: true, force: true });
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** user+system CPU seconds of a process so far (Linux /proc; NaN elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based) → indexes 11 and 12 here.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

// ---- the servers --------------------------------------------------------------------------------

interface Server {
  name: string;
  port: number;
  uri: string;
  dir: string;
  log: string;
  child: ChildProcess;
  /** bytes of the log already looked at */
  logOffset: number;
}

const NAMES = ['a.example', 'b.example', 'c.example', 'd.example'];
/** Users per server: alice sends, rH receives H hops from A. */
const USERS: Record<string, string[]> = { 'a.example': ['alice', 'r0'], 'b.example': ['r1'], 'c.example': ['r2'], 'd.example': ['r3'] };

async function startServers(base: string): Promise<Server[]> {
  const main = cliPath();
  const ports: number[] = [];
  for (let i = 0; i < NAMES.length; i++) ports.push(await freeTcpPort());
  const uriOf = (i: number): string => `sip:${HOST}:${ports[i]!};transport=tcp`;
  const servers: Server[] = [];
  for (const [i, name] of NAMES.entries()) {
    const dir = join(base, `data-${name}`);
    mkdirSync(dir, { recursive: true });
    // Accounts in the server's own database, before it opens it.
    const store = SqliteStore.open(databasePath(dir));
    for (const user of USERS[name]!) store.addAccount(`sip:${user}@${name}`, accountHashes(`sip:${user}@${name}`, PASSWORD));
    await store.close();
    const peers = [i - 1, i + 1].filter((j) => j >= 0 && j < NAMES.length).flatMap((j) => ['--peer', `${NAMES[j]!}=${uriOf(j)}`]);
    // The mailbox quota (maxStoredPerUser, 10,000; delivered messages are deleted once a minute)
    // counts a relayed recipient's rows at every hop: out of the way, as in bench/server-load.ts.
    const config = join(base, `${name}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        maxStoredPerUser: 10_000_000,
        ...(DELIVERY_WINDOW !== undefined ? { deliveryWindow: DELIVERY_WINDOW } : {}),
        ...(RELAY_WINDOW !== undefined ? { relayWindow: RELAY_WINDOW } : {}),
      }),
    );
    const args = [main, 'server', '--config', config, '--domain', name, '--listen', `tcp:${HOST}:${ports[i]!}`, '--data', dir, '--secret', SECRET, ...peers];
    const log = join(base, `${name}.log`);
    const fd = openSync(log, 'a');
    // stderr (a log line per stored and per delivered message, as an operator runs it) to a file:
    // this process does not read it while it runs.
    const child = spawn(process.execPath, args, { cwd: base, stdio: ['ignore', 'pipe', fd] });
    closeSync(fd);
    children.add(child);
    child.once('exit', () => children.delete(child));
    servers.push({ name, port: ports[i]!, uri: uriOf(i), dir, log, child, logOffset: 0 });
  }
  await Promise.all(servers.map((s) => waitForReady(s)));
  return servers;
}

function waitForReady(server: Server, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${server.name}: not ready after ${timeoutMs} ms\n${out}\n${tailOf(server.log)}`)), timeoutMs);
    server.child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    server.child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${server.name} exited (${code ?? signal}) before ready\n${out}\n${tailOf(server.log)}`));
    });
  });
}

function tailOf(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Polls a server's log for a line matching `pattern`. */
async function waitForLog(server: Server, pattern: RegExp, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(readFileSync(server.log, 'utf8'))) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) throw new Error(`${server.name} exited waiting for ${what}\n${tailOf(server.log)}`);
    if (Date.now() > deadline) throw new Error(`${server.name}: no ${what} after ${timeoutMs} ms\n${tailOf(server.log)}`);
    await sleep(50);
  }
}

/** The log written since the last call. */
function newLog(server: Server): string {
  const all = readFileSync(server.log);
  const text = all.subarray(server.logOffset).toString('utf8');
  server.logOffset = all.length;
  return text;
}

async function stopServer(server: Server): Promise<void> {
  const child = server.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// ---- receivers --------------------------------------------------------------------------------

const TEXT = /parley-bench p(\d+) s(\d+) t([\d.]+)/;

interface Receiver {
  hops: number;
  aor: string;
  client: Client;
  /** per phase: seq → first arrival (performance.now()) */
  arrivals: Map<number, Map<number, number>>;
  /** per phase: latency of each first arrival, ms */
  latencies: Map<number, number[]>;
  /** per phase: `message` events for a seq already seen */
  duplicates: Map<number, number>;
  /** per phase: MESSAGEs on the wire for a seq already seen (before the client's Message-ID check) */
  wire: Map<number, Map<number, number>>;
  lastArrival: number;
}

function bump<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

async function connectReceiver(hops: number, server: Server, base: string): Promise<Receiver> {
  const aor = `r${hops}@${server.name}`;
  const client = await ParleyClient.connect({ server: server.uri, user: aor, password: PASSWORD, stateDir: join(base, `client-${aor}`) });
  const receiver: Receiver = { hops, aor, client, arrivals: new Map(), latencies: new Map(), duplicates: new Map(), wire: new Map(), lastArrival: 0 };
  // Every MESSAGE on the wire, before the client drops a Message-ID it has seen: the client's
  // handler is looked up on the instance at each MESSAGE, so an own property sees them first.
  const inner = client as unknown as { receive(message: IncomingMessage): unknown };
  const receive = inner.receive;
  inner.receive = function (this: unknown, message: IncomingMessage) {
    const m = TEXT.exec(message.body.toString('latin1'));
    if (m) {
      const phase = Number(m[1]);
      let seen = receiver.wire.get(phase);
      if (!seen) receiver.wire.set(phase, (seen = new Map()));
      bump(seen, Number(m[2]));
    }
    return receive.call(this, message);
  };
  client.on('message', (message) => {
    const now = performance.now();
    const m = TEXT.exec(message.text);
    if (!m) return;
    const phase = Number(m[1]);
    const seq = Number(m[2]);
    let arrivals = receiver.arrivals.get(phase);
    if (!arrivals) receiver.arrivals.set(phase, (arrivals = new Map()));
    if (arrivals.has(seq)) {
      bump(receiver.duplicates, phase);
      return;
    }
    arrivals.set(seq, now);
    let latencies = receiver.latencies.get(phase);
    if (!latencies) receiver.latencies.set(phase, (latencies = []));
    latencies.push(now - Number(m[3]));
    receiver.lastArrival = now;
  });
  return receiver;
}

// ---- a phase ------------------------------------------------------------------------------------

type Load = { kind: 'window'; inFlight: number } | { kind: 'rate'; rate: number };

interface PhaseResult {
  phase: number;
  round: number;
  hops: number;
  load: Load;
  offered: number;
  accepted: number;
  /** failed sends by reason */
  failures: Map<string, number>;
  delivered: number;
  duplicates: number;
  wireDuplicates: number;
  missing: number;
  deliveredPerSecond: number;
  /** offered / (last send − first send) */
  sentPerSecond: number;
  latencies: number[];
  /** send → 202, ms */
  acceptMs: number[];
  wallMs: number;
  /** per server: `stored` lines for this phase's recipient, `delivered` lines, warnings/errors, CPU share */
  servers: Array<{ name: string; stored: number; delivered: number; warnings: string[]; retries: string[]; cpu: number; cpuMs: number }>;
  benchCpu: number;
  benchCpuMs: number;
  /** cores used by other processes on the machine over the phase (/proc/stat minus ours) */
  otherCpu: number;
  /** this process's event-loop delay over the phase, ms */
  benchLoop: { p50: number; p99: number; max: number };
}

let phaseCounter = 0;

/** Seconds spent waiting for the machine to calm down before phases, over the run. */
let quietWaited = 0;

/**
 * Before a phase: the servers and clients are idle, so what keeps the machine busy is someone
 * else. Wait (up to QUIET_WAIT s per phase, QUIET_BUDGET s per run) while other work takes more
 * than a quarter of a core, so that a burst of it lands on as few phases as possible.
 */
async function waitForQuiet(): Promise<void> {
  const until = performance.now() + QUIET_WAIT * 1000;
  while (quietWaited < QUIET_BUDGET && performance.now() < until) {
    const t = performance.now();
    const busy = await machineBusy(500);
    if (!(busy * cpus().length > 0.25)) return;
    quietWaited += (performance.now() - t) / 1000;
  }
}

async function runPhase(sender: Client, receiver: Receiver, servers: Server[], load: Load, count: number, round: number): Promise<PhaseResult> {
  if (round > 0) await waitForQuiet();
  const phase = ++phaseCounter;
  const to = receiver.aor;
  for (const server of servers) newLog(server); // skip what came before
  const cpu0 = servers.map((s) => cpuSeconds(s.child.pid!));
  const bench0 = process.cpuUsage();
  const machine0 = machineTicks();
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const failures = new Map<string, number>();
  const acceptMs: number[] = [];
  let accepted = 0;
  const t0 = performance.now();
  let lastSend = t0;

  const sendOne = (seq: number): Promise<void> => {
    const t = performance.now();
    lastSend = t;
    return sender.send(to, `parley-bench p${phase} s${seq} t${t.toFixed(3)}`, { notify: false }).then(
      () => {
        accepted++;
        acceptMs.push(performance.now() - t);
      },
      (error: unknown) => {
        bump(failures, error instanceof Error ? error.message : String(error));
      },
    );
  };

  if (load.kind === 'window') {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) await sendOne(next++);
    };
    await Promise.all(Array.from({ length: Math.min(load.inFlight, count) }, worker));
  } else {
    const interval = 1000 / load.rate;
    const pending: Array<Promise<void>> = [];
    let next = 0;
    while (next < count) {
      const now = performance.now();
      while (next < count && t0 + next * interval <= now) pending.push(sendOne(next++));
      await sleep(1);
    }
    await Promise.all(pending);
  }
  const sentPerSecond = count / Math.max(1e-9, (lastSend - t0) / 1000);

  // Wait for every accepted message to arrive, or for DRAIN seconds without a new arrival.
  const arrived = (): number => receiver.arrivals.get(phase)?.size ?? 0;
  let lastProgress = performance.now();
  let seen = arrived();
  while (arrived() < accepted) {
    await sleep(20);
    if (arrived() !== seen) {
      seen = arrived();
      lastProgress = performance.now();
    } else if (performance.now() - lastProgress > DRAIN_SECONDS * 1000) break;
  }
  const wallMs = performance.now() - t0;
  const bench = process.cpuUsage(bench0);
  const machine1 = machineTicks();
  loop.disable();
  const cpu1 = servers.map((s) => cpuSeconds(s.child.pid!));
  // Let the last 200s reach the servers' logs (stored and delivered lines are written at once).
  await sleep(100);

  const arrivals = receiver.arrivals.get(phase) ?? new Map<number, number>();
  const wire = receiver.wire.get(phase) ?? new Map<number, number>();
  let wireDuplicates = 0;
  for (const n of wire.values()) wireDuplicates += n - 1;
  const recipientText = to.replace(/\./g, '\\.');
  const stored = new RegExp(`stored #\\d+ from alice@a\\.example for ${recipientText}$`, 'gm');
  const delivered = new RegExp(`delivered #\\d+ to ${recipientText} `, 'gm');
  return {
    phase,
    round,
    hops: receiver.hops,
    load,
    offered: count,
    accepted,
    failures,
    delivered: arrivals.size,
    duplicates: receiver.duplicates.get(phase) ?? 0,
    wireDuplicates,
    missing: accepted - [...arrivals.keys()].filter((s) => s < count).length,
    deliveredPerSecond: arrivals.size > 0 ? (arrivals.size * 1000) / (Math.max(...arrivals.values()) - t0) : 0,
    sentPerSecond,
    latencies: receiver.latencies.get(phase) ?? [],
    acceptMs,
    wallMs,
    servers: servers.map((s, i) => {
      const text = newLog(s);
      return {
        name: s.name,
        stored: text.match(stored)?.length ?? 0,
        delivered: text.match(delivered)?.length ?? 0,
        warnings: text.split('\n').filter((l) => / (warning|error): /.test(l)),
        // A courier's round failed (the next hop or the device answered 408/480/5xx, or nothing):
        // it waits deliveryRetryMs (1 s, doubling) and starts again from its cursor.
        retries: text.split('\n').filter((l) => / delivery to .* failed with \d+; next try in /.test(l)),
        cpu: (cpu1[i]! - cpu0[i]!) / (wallMs / 1000),
        cpuMs: (cpu1[i]! - cpu0[i]!) * 1000,
      };
    }),
    benchCpu: (bench.user + bench.system) / 1000 / wallMs,
    benchCpuMs: (bench.user + bench.system) / 1000,
    // Cores busy with anything but the four servers and this process (ticks are 10 ms).
    otherCpu: Math.max(0, ((machine1.busy - machine0.busy) * 10 - (bench.user + bench.system) / 1000 - cpu1.reduce((n, c, i) => n + (c - cpu0[i]!) * 1000, 0)) / wallMs),
    benchLoop: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
  };
}

// ---- report -------------------------------------------------------------------------------------

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const ms = (n: number): string => (!Number.isFinite(n) ? '–' : n < 10 ? n.toFixed(1) : fmt(n));
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '–');
const loadText = (load: Load): string => (load.kind === 'window' ? `${load.inFlight} in flight` : `${fmt(load.rate)}/s`);
const PATHS = ['A', 'A→B', 'A→B→C', 'A→B→C→D'];

function detail(r: PhaseResult): string {
  const failures = [...r.failures].map(([why, n]) => `${n} × ${why}`).join(', ');
  const stores = r.servers.map((s) => `${s.name[0]!.toUpperCase()} ${fmt(s.stored)}`).join(' ');
  const cpu = r.servers.map((s) => `${s.name[0]!.toUpperCase()} ${s.cpu.toFixed(2)}`).join(' ');
  const warnings = r.servers.flatMap((s) => s.warnings.map((w) => `${s.name}: ${w}`));
  const retries = r.servers.filter((s) => s.retries.length > 0).map((s) => `${s.name[0]!.toUpperCase()} ${s.retries.length} (${[...new Set(s.retries.map((l) => /failed with (\d+)/.exec(l)?.[1]))].join('/')})`);
  const slowAccepts = r.acceptMs.filter((t) => t >= 1000).length;
  const perMessage = r.servers.map((s) => `${s.name[0]!.toUpperCase()} ${(s.cpuMs / Math.max(1, r.delivered)).toFixed(2)}`).join(' ');
  return (
    `${r.round > 0 ? `round ${r.round}, ` : ''}${r.hops} hop${r.hops === 1 ? '' : 's'} (${PATHS[r.hops]!}), ${loadText(r.load)}: ` +
    `offered ${fmt(r.offered)} at ${fmt(r.sentPerSecond)}/s, accepted ${fmt(r.accepted)} (send→202 p50 ${ms(percentile(r.acceptMs, 50))} p99 ${ms(percentile(r.acceptMs, 99))} ms)` +
    `${slowAccepts > 0 ? ` (${slowAccepts} took ≥ 1 s: the client resends after a 503 one second later)` : ''}` +
    `${failures ? ` failed: ${failures}` : ''}, delivered ${fmt(r.delivered)} (${fmt(r.deliveredPerSecond)}/s), ` +
    `duplicates ${r.duplicates} (wire ${r.wireDuplicates}), missing ${r.missing}, latency p50 ${ms(percentile(r.latencies, 50))} p99 ${ms(percentile(r.latencies, 99))} max ${ms(Math.max(...r.latencies))} ms, ` +
    `wall ${(r.wallMs / 1000).toFixed(1)} s\n    stored lines per server: ${stores}; delivered lines at the home: ${fmt(r.servers[r.hops]!.delivered)}; ` +
    `CPU (1.0 = one core) servers: ${cpu}, bench process (clients): ${r.benchCpu.toFixed(2)}, its event-loop delay p99 ${ms(r.benchLoop.p99)} ms; other processes on the machine ${r.otherCpu.toFixed(2)}; ` +
    `courier retry rounds: ${retries.length > 0 ? retries.join(', ') : 'none'}\n    CPU ms per delivered message: servers ${perMessage}, clients ${(r.benchCpuMs / Math.max(1, r.delivered)).toFixed(2)}` +
    (warnings.length > 0 ? `\n    ${warnings.length} warning/error lines, first: ${warnings.slice(0, 3).join(' | ')}` : '')
  );
}

const median = (values: number[]): number => percentile(values, 50);

/** One row per load and hop count over every round: counts summed, latencies pooled, rates and rate ratios the median of the rounds'. */
function table(results: PhaseResult[]): string {
  const lines = [
    '| hops | path | load | offered | accepted (202) | delivered once | duplicates | missing | delivered msg/s (median; min–max) | × 0-hop | latency p50 ms | × 0-hop | latency p99 ms | × 0-hop | courier retries | CPU ms/msg: servers + clients | other load (cores) |',
    '| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const loads = [...new Map(results.map((r) => [loadText(r.load), r.load])).values()];
  for (const load of loads) {
    const same = results.filter((r) => loadText(r.load) === loadText(load));
    const base = same.filter((r) => r.hops === 0);
    const basePooled = base.flatMap((r) => r.latencies);
    for (let hops = 0; hops < 4; hops++) {
      const rows = same.filter((r) => r.hops === hops);
      if (rows.length === 0) continue;
      const sum = (f: (r: PhaseResult) => number): number => rows.reduce((n, r) => n + f(r), 0);
      const rates = rows.map((r) => r.deliveredPerSecond);
      // Paired per round: each round's hop-H rate over the same round's 0-hop rate.
      const rateRatios = rows.map((r) => r.deliveredPerSecond / (base.find((b) => b.round === r.round)?.deliveredPerSecond ?? NaN)).filter((x) => Number.isFinite(x));
      const pooled = rows.flatMap((r) => r.latencies);
      const wire = sum((r) => r.wireDuplicates);
      lines.push(
        '| ' +
          [
            hops,
            PATHS[hops]!,
            loadText(load),
            fmt(sum((r) => r.offered)),
            fmt(sum((r) => r.accepted)),
            fmt(sum((r) => r.delivered)),
            `${sum((r) => r.duplicates)}${wire > 0 ? ` (wire ${wire})` : ''}`,
            sum((r) => r.missing),
            `${fmt(median(rates))}${rows.length > 1 ? ` (${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))})` : ''}`,
            hops === 0 ? '1.00×' : rateRatios.length > 0 ? `${median(rateRatios).toFixed(2)}×` : '–',
            ms(percentile(pooled, 50)),
            ratio(percentile(pooled, 50), percentile(basePooled, 50)),
            ms(percentile(pooled, 99)),
            ratio(percentile(pooled, 99), percentile(basePooled, 99)),
            sum((r) => r.servers.reduce((n, s) => n + s.retries.length, 0)),
            `${(sum((r) => r.servers.reduce((n, s) => n + s.cpuMs, 0)) / Math.max(1, sum((r) => r.delivered))).toFixed(2)} + ${(sum((r) => r.benchCpuMs) / Math.max(1, sum((r) => r.delivered))).toFixed(2)}`,
            `${(sum((r) => r.otherCpu * r.wallMs) / sum((r) => r.wallMs)).toFixed(2)} (max ${Math.max(...rows.map((r) => r.otherCpu)).toFixed(2)})`,
          ].join(' | ') +
          ' |',
      );
    }
  }
  return lines.join('\n');
}

/** Busy and total CPU time of the whole machine so far, in /proc/stat ticks (NaN off Linux). */
function machineTicks(): { busy: number; total: number } {
  try {
    const v = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((x, y) => x + y, 0);
    return { busy: total - v[3]! - v[4]!, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** The machine's CPU busy share over `ms` (all cores; /proc/stat), to say whether something else was running. */
async function machineBusy(ms: number): Promise<number> {
  const read = (): number[] => readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  try {
    const a = read();
    await sleep(ms);
    const b = read();
    const d = b.map((v, i) => v - a[i]!);
    const total = d.reduce((x, y) => x + y, 0);
    const idle = d[3]! + (d[4] ?? 0);
    return total > 0 ? 1 - idle / total : NaN;
  } catch {
    return NaN;
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<void> {
  root = mkdtempSync(join(tmpdir(), 'parley-fed-bench-'));
  const cores = cpus();
  const idleBusy = await machineBusy(1000);
  console.log(
    `Federation load: node ${process.version}, ${cores.length} core${cores.length === 1 ? '' : 's'} (${cores[0]?.model.trim() ?? '?'}) shared by four server processes and this one (the five clients); ` +
      `data directories on disk under ${tmpdir()} (SQLite WAL, synchronous=FULL); ` +
      `per round and hop count: closed loop ${fmt(MESSAGES)} messages with ${IN_FLIGHT} in flight, fixed rate ${fmt(RATE_MESSAGES)} at ${fmt(RATE)}/s; ${ROUNDS} rounds; warm-up ${WARMUP} per receiver; ` +
      `deliveryWindow ${DELIVERY_WINDOW ?? DEFAULT_CONFIG.deliveryWindow}, relayWindow ${RELAY_WINDOW ?? DEFAULT_CONFIG.relayWindow}; machine ${Number.isFinite(idleBusy) ? `${Math.round(idleBusy * 100)}% busy` : 'load unknown'} before the start`,
  );
  const started = performance.now();
  const servers = await startServers(root);
  // The line is up end to end once A has d.example through B and C.
  await waitForLog(servers[0]!, /route d\.example via b\.example \(3 hops\)/, 'route to d.example over 3 hops');
  console.log(`four servers up and routed in ${((performance.now() - started) / 1000).toFixed(1)} s (${servers.map((s) => `${s.name} ${s.uri}`).join(', ')})`);

  const receivers: Receiver[] = [];
  for (let hops = 0; hops < 4; hops++) receivers.push(await connectReceiver(hops, servers[hops]!, root));
  const sender = await ParleyClient.connect({ server: servers[0]!.uri, user: 'alice@a.example', password: PASSWORD, stateDir: join(root, 'client-alice'), register: false });
  try {
    // Warm-up: connections between the servers, digest nonces per realm, the JIT.
    for (const receiver of receivers) {
      const r = await runPhase(sender, receiver, servers, { kind: 'window', inFlight: 16 }, WARMUP, 0);
      if (r.missing > 0 || r.accepted < WARMUP) throw new Error(`warm-up to ${receiver.aor} failed: ${detail(r)}`);
    }
    console.log(`warmed up (${WARMUP} to each receiver)\n`);

    const results: PhaseResult[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const load of [{ kind: 'window', inFlight: IN_FLIGHT }, { kind: 'rate', rate: RATE }] as Load[]) {
        for (const receiver of receivers) {
          const r = await runPhase(sender, receiver, servers, load, load.kind === 'window' ? MESSAGES : RATE_MESSAGES, round);
          console.log(detail(r));
          results.push(r);
        }
      }
    }
    console.log(`\n${table(results)}`);
    const quiet = results.filter((r) => r.otherCpu < QUIET_CORES);
    if (quiet.length < results.length) {
      console.log(`\nThe same over the ${quiet.length} of ${results.length} phases during which other processes took less than ${QUIET_CORES} cores (a ratio needs that round's 0-hop phase quiet too):\n`);
      console.log(table(quiet));
    }
    console.log(
      `\n${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, each running every hop count under both loads; counts are summed over the rounds, latencies pooled, ` +
        `delivered msg/s is the median of the rounds' (min–max) and its ratio the median of each round's ratio to that round's 0-hop figure. ` +
        `Ratios (× 0-hop) are against the 0-hop row of the same load: alice to r0 on A itself, A's local store-and-forward, measured in the same run. ` +
        `${cores.length} cores for four server processes and the clients' process; the machine was ${Number.isFinite(idleBusy) ? `${Math.round(idleBusy * 100)}% busy` : 'of unknown load'} in the second before the run, ` +
        `before phases the bench waited ${quietWaited.toFixed(0)} s for other work to calm down, ` +
        `and other processes took ${(results.reduce((n, r) => n + r.otherCpu * r.wallMs, 0) / results.reduce((n, r) => n + r.wallMs, 0)).toFixed(2)} cores on average over the phases (most in one phase: ${Math.max(...results.map((r) => r.otherCpu)).toFixed(2)}); anything else running skews every figure. ` +
        `Total ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    );
    if (KEEP) console.log(`data and logs kept in ${root}`);
  } finally {
    await Promise.all([sender, ...receivers.map((r) => r.client)].map((c) => Promise.race([c.close({ unregister: false }), sleep(2000)])));
    await Promise.all(servers.map((s) => stopServer(s)));
  }
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  })
  .finally(() => {
    killAll();
    process.exit();
  });
