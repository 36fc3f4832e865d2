// The Parley server under MESSAGE load over UDP, and Kamailio relaying the same load without
// storage, in the same run:
//
//   tsc -p tsconfig.bench.json && node .bench/bench/server-load.js      (npm run bench:server)
//
// Parley: a ParleyServer in this process (domain localhost, udp:127.0.0.1, a fresh file database
// under a temp dir: SQLite WAL, synchronous=FULL, group commit; acceptForeign so the SIPp sender
// needs no credentials; maxStoredPerUser 10,000,000 so the mailbox quota never answers 480). One
// account, sip:bob@localhost, with one registered device: a SIPp UAS (bench/server-message-uas.xml)
// that answers every MESSAGE 200. The device is registered by a Parley DUM bound to the UAS's
// port (the server sends to the UDP source of the REGISTER, RFC 3581), which is stopped before
// SIPp binds that port. A SIPp UAC (bench/server-message-uac.xml) sends MESSAGE sip:bob@localhost
// From sip:sipp@remote.example, text/plain, at a fixed rate (-r R -rp 1000) for STEP seconds, and
// requires 202 on every call.
//
// Kamailio: /usr/sbin/kamailio with a minimal config written to a temp dir (tm, sl, maxfwd, pv:
// max-forwards check, then t_relay() of every MESSAGE to a second SIPp UAS), the same UAC
// scenario requiring 200 (bench/kamailio-message-uac.xml), the same rates.
//
// Per rate, Kamailio then Parley. Each Parley step gets a fresh server, database and device (a
// step that fell behind would otherwise keep delivering its backlog during the next steps, which
// deliver in log order behind it); the previous server is stopped without waiting (its delivery
// stops at once; its stack winds its transactions down in the background).
//  - accepted/s (relayed/s): SIPp successful calls / SIPp's elapsed time (which stretches when the
//    server falls behind), failed calls and SIPp retransmissions (the MESSAGE sent again because
//    no final answer came within 500 ms), from -trace_stat's last line;
//  - Parley delivered/s: `delivered` events for this step's messages / (last delivery − step
//    start); the bench waits up to DRAIN seconds after SIPp ends for every stored message to be
//    delivered;
//  - Parley delivery latency p50/p99: `stored` (committed, about to answer 202) to `delivered`
//    (the device's 200 arrived) per message id, in this process;
//  - msgs/commit: store.stats messages / commits over the step (commits include the ones that
//    only move the device's cursor);
//  - SIPp response time p50/p99 for both (-trace_rtt: MESSAGE sent to final answer, whole ms):
//    202 after the commit for Parley, 200 relayed back from the UAS for Kamailio;
//  - node CPU: this process's user+system CPU time over the step's wall time (1.0 = one core);
//    printed per step besides: each group commit's duration (the store's commit() is wrapped by
//    an own property of the instance: the synchronous SQLite transaction with its fsync) and its
//    share of the wall time, and the event-loop delay (perf_hooks.monitorEventLoopDelay).
// SIPp runs with -l 15000 (open calls; the file limit here is 20,000): a server far behind makes
// SIPp slow its sending down, which shows as a lower accepted/s over a longer elapsed time.
// Clean = every call answered (202 / 200) with no failed call and no SIPp retransmission, and
// (Parley) every accepted message delivered within DRAIN seconds. Answers other than 202/200 are
// counted by status from SIPp's -trace_err log.
// Once a Parley step is far past overload (accepted/s or delivered/s under half the offered rate,
// or under half the accepted messages delivered), higher Parley steps are skipped
// (BENCH_KEEP_GOING=1 runs them: each then takes up to STEP + 20 s of SIPp retransmitting).
//
// Environment (or argv: `node server-load.js 1000,2000,4000`):
//   BENCH_RATES    MESSAGE/s steps, default 1000,2000,4000,6000
//   BENCH_STEP_SECONDS  seconds per step, default 10 (calls per step = rate × seconds)
//   BENCH_DRAIN    seconds to wait for delivery to catch up after a step, default 10
//   BENCH_WARMUP   MESSAGEs sent at 1000/s to each side before the steps (not reported), default 2000
//   BENCH_KEEP_GOING=1  run every Parley step even after one far past overload
//   BENCH_DELIVERY_WINDOW  the server's deliveryWindow (MESSAGEs in flight per device); default: the server's own (1)
//   SIPP (default sipp), KAMAILIO (default /usr/sbin/kamailio), KAMAILIO_MODULES (module dir)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Logger, ParleyServer, ServerConfig } from '../src/index.js';
import { udpPortTaken } from './udp-port.js';

const SIPP = process.env.SIPP ?? 'sipp';
const KAMAILIO = process.env.KAMAILIO ?? '/usr/sbin/kamailio';
const HOST = '127.0.0.1';
const RATES = (process.argv[2] ?? process.env.BENCH_RATES ?? '1000,2000,4000,6000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isFinite(n) && n > 0);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 10);
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2000);
const KEEP_GOING = process.env.BENCH_KEEP_GOING === '1';
const DELIVERY_WINDOW = process.env.BENCH_DELIVERY_WINDOW ? Number(process.env.BENCH_DELIVERY_WINDOW) : undefined;
const USER = 'sip:bob@localhost';
const PASSWORD = 'pw';

const repo = fileURLToPath(new URL('../../', import.meta.url)); // .bench/bench/ → the repository

// The DUM reads its version from package.json three directories above its module
// (src/tu/dum/ → the repository; dist/tu/dum/ → the repository), which compiled into .bench/ is
// .bench/package.json: put a copy there before the first import of src/.
const benchPackage = fileURLToPath(new URL('../package.json', import.meta.url));
if (!existsSync(benchPackage)) copyFileSync(join(repo, 'package.json'), benchPackage);
const { accountHashes, DEFAULT_CONFIG, DialogUsageManager, ParleyServer: Server, SipStack } = await import('../src/index.js');
const scenarios = {
  parley: join(repo, 'bench', 'server-message-uac.xml'),
  kamailio: join(repo, 'bench', 'kamailio-message-uac.xml'),
  uas: join(repo, 'bench', 'server-message-uas.xml'),
};

// ---- children and temp dirs: everything is cleaned up, even on failure or ^C ------------------

const children = new Set<ChildProcess>();
const groups = new Set<number>(); // detached children (kamailio forks): killed by process group
const tempDirs = new Set<string>();

function killAll(): void {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  groups.clear();
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function track(child: ChildProcess, group = false): ChildProcess {
  children.add(child);
  if (group && child.pid !== undefined) groups.add(child.pid);
  child.once('exit', () => {
    children.delete(child);
    if (group && child.pid !== undefined) groups.delete(child.pid);
  });
  return child;
}

async function stopChild(child: ChildProcess, group = false, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const hard = setTimeout(() => kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    kill(signal);
    function kill(s: NodeJS.Signals): void {
      try {
        if (group && child.pid !== undefined) process.kill(-child.pid, s);
        else child.kill(s);
      } catch {
        // gone already
      }
    }
  });
}

// ---- ports ------------------------------------------------------------------------------------

async function freeUdpPort(): Promise<number> {
  const udp = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(0, HOST, () => resolve());
  });
  const port = udp.address().port;
  await new Promise<void>((r) => udp.close(() => r()));
  return port;
}

/** Resolves once host:port is bound by someone else (our own bind fails). */
async function waitForUdpBound(port: number, child: ChildProcess, what: string, output: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before binding udp:${HOST}:${port}:\n${output()}`);
    const bound = await udpPortTaken(HOST, port);
    if (bound) return;
    if (Date.now() > deadline) throw new Error(`${what}: nothing bound udp:${HOST}:${port} after ${timeoutMs} ms\n${output()}`);
    await sleep(50);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function keepOutput(child: ChildProcess, limit = 8000): () => string {
  let out = '';
  const keep = (chunk: Buffer): void => {
    out = (out + chunk.toString()).slice(-limit);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => out;
}

// ---- SIPp -------------------------------------------------------------------------------------

interface Uas {
  child: ChildProcess;
  port: number;
  output: () => string;
}

async function startUas(port: number, dir: string): Promise<Uas> {
  const args = ['-sf', scenarios.uas, '-i', HOST, '-p', String(port), '-t', 'u1', '-nostdin', '-l', '15000', '-buff_size', String(4 * 1024 * 1024)];
  const child = track(spawn(SIPP, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }));
  const output = keepOutput(child);
  await waitForUdpBound(port, child, 'SIPp UAS', output);
  return { child, port, output };
}

interface SippResult {
  calls: number;
  successful: number;
  failed: number;
  unexpected: number;
  maxRetrans: number;
  retransmissions: number;
  elapsedMs: number;
  rtt: number[];
  /** final answers other than the expected one, by status (from -trace_err) */
  statuses: Map<string, number>;
  exit: string;
}

function readStats(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  const lines = readFileSync(file, 'latin1')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  if (lines.length < 2) return {};
  const header = lines[0]!.split(';');
  const last = lines.at(-1)!.split(';');
  const row: Record<string, string> = {};
  header.forEach((name, i) => (row[name] = last[i] ?? ''));
  return row;
}

/** "HH:MM:SS:uuuuuu" → ms. */
function elapsed(text: string | undefined): number {
  const parts = (text ?? '').split(':').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isFinite(p))) return NaN;
  const [h, m, s, us] = parts as [number, number, number, number];
  return ((h * 60 + m) * 60 + s) * 1000 + us / 1000;
}

async function runUac(scenario: string, port: number, rate: number, calls: number, dir: string, label: string): Promise<SippResult> {
  const runDir = join(dir, label);
  mkdirSync(runDir);
  const stat = join(runDir, 'stat.csv');
  const seconds = Math.ceil(calls / rate);
  const args = [
    '-sf', scenario, `${HOST}:${port}`,
    '-t', 'u1', '-i', HOST, '-s', 'bob', '-key', 'rdomain', 'localhost',
    '-r', String(rate), '-rp', '1000', '-m', String(calls), '-l', '15000', // below ulimit -n (SIPp warns otherwise); at the rate, ≥ 2.5 s of calls in flight
    '-buff_size', String(4 * 1024 * 1024),
    '-default_behaviors', 'abortunexp',
    // Each call ends by itself within ~12 s (five retransmissions); this only bounds a stuck run.
    '-timeout', `${seconds + 20}s`, '-timeout_error',
    '-nostdin', '-trace_stat', '-stf', stat, '-fd', '1', '-trace_rtt', '-rtt_freq', '1000', '-trace_err',
  ];
  const started = performance.now();
  const child = track(spawn(SIPP, args, { cwd: runDir, stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  });
  const wallMs = performance.now() - started;
  const stats = readStats(stat);
  const num = (k: string): number => Number(stats[`${k}(C)`] ?? NaN);
  const rtt: number[] = [];
  for (const name of readdirSync(runDir).filter((f) => f.endsWith('_rtt.csv'))) {
    for (const line of readFileSync(join(runDir, name), 'latin1').split(/\r?\n/).slice(1)) {
      const ms = Number(line.split(';')[1]);
      if (line !== '' && Number.isFinite(ms)) rtt.push(ms);
    }
  }
  const statuses = new Map<string, number>();
  for (const name of readdirSync(runDir).filter((f) => f.endsWith('_errors.log'))) {
    // "Aborting call on unexpected message for Call-Id '…': while expecting '202' (index 2), received 'SIP/2.0 503 Store busy"
    for (const m of readFileSync(join(runDir, name), 'latin1').matchAll(/received 'SIP\/2\.0 (\d{3}[^\r\n']*)/g)) {
      const status = m[1]!.trim();
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  }
  return {
    calls,
    statuses,
    successful: num('SuccessfulCall'),
    failed: num('FailedCall'),
    unexpected: num('FailedUnexpectedMessage'),
    maxRetrans: num('FailedMaxUDPRetrans'),
    retransmissions: num('Retransmissions'),
    elapsedMs: elapsed(stats['ElapsedTime(C)']) || wallMs,
    rtt,
    exit: signal ? `signal ${signal}` : code === 0 ? 'exit 0' : `exit ${code}: ${stderr.trim().split('\n').slice(-2).join(' / ')}`,
  };
}

// ---- Parley -----------------------------------------------------------------------------------

interface ParleySide {
  server: ParleyServer;
  port: number;
  uas: Uas;
  logs: { warn: number; error: number; retrying: number; last: string[] };
  /** per store id: when it was stored (performance.now()) */
  stored: Map<number, number>;
  /** per store id: when its first delivery came back 2xx */
  deliveredAt: Map<number, number>;
  /** stored → delivered, ms */
  latencies: number[];
  lastDelivery: number;
  duplicateDeliveries: number;
  /** durations (ms) of the store's group commits (the synchronous transaction, fsync included) */
  commitMs: number[];
}

/** A server with a fresh database, bob's account, and bob's device: a SIPp UAS of its own. */
async function startParley(dir: string, label: string): Promise<ParleySide> {
  const port = await freeUdpPort();
  const logs = { warn: 0, error: 0, retrying: 0, last: [] as string[] };
  const note = (kind: 'warn' | 'error', line: string): void => {
    logs[kind]++;
    logs.last.push(`${kind}: ${line}`);
    if (logs.last.length > 5) logs.last.shift();
  };
  const logger: Logger = {
    info: (l) => void (/^delivery to .* failed/.test(l) && logs.retrying++),
    warn: (l) => note('warn', l),
    error: (l) => note('error', l),
  };
  const config: Partial<ServerConfig> = {
    domains: ['localhost'],
    listen: [`udp:${HOST}:${port}`],
    data: join(dir, `parley-data-${label}`),
    acceptForeign: true,
    maxStoredPerUser: 10_000_000,
    ...(DELIVERY_WINDOW !== undefined ? { deliveryWindow: DELIVERY_WINDOW } : {}),
  };
  const server = await Server.start(config, { logger });
  try {
    server.store.addAccount(USER, accountHashes(USER, PASSWORD));

    // bob's device: registered from the port the SIPp UAS will listen on (the server reaches a
    // UDP binding at the REGISTER's source, RFC 3581), then that stack is stopped and SIPp takes
    // the port. (RegisterOptions.contact is a bare URI: given as '<sip:…>' the REGISTER is never
    // sent and `ready` never settles.)
    const uasPort = await freeUdpPort();
    const stack = new SipStack({ transports: [`udp:${HOST}:${uasPort}`], dns: false, t4: 20 });
    await stack.start();
    try {
      const dum = new DialogUsageManager(stack, {
        aor: USER,
        credentials: [{ username: 'bob', password: PASSWORD }],
        outboundProxy: `sip:${HOST}:${port}`,
      });
      const registration = dum.register({ registrar: 'sip:localhost', contact: `sip:bob@${HOST}:${uasPort}`, expires: 3600 });
      const bindings = await Promise.race([registration.ready, sleep(10_000).then(() => Promise.reject(new Error('REGISTER: no answer in 10 s')))]);
      if (!bindings.some((b) => b.contact.includes(`:${uasPort}`))) throw new Error(`REGISTER: our contact is not among ${JSON.stringify(bindings)}`);
    } finally {
      await stack.stop();
    }
    const uas = await startUas(uasPort, dir);

    const side: ParleySide = { server, port, uas, logs, stored: new Map(), deliveredAt: new Map(), latencies: [], lastDelivery: 0, duplicateDeliveries: 0, commitMs: [] };
    // Where the event loop goes: time each group commit. SqliteStore runs `this.commit()` from a
    // setImmediate; an own property wraps it without touching the class (a private method in TS).
    const store = server.store as unknown as { commit: () => void };
    const commit = store.commit;
    store.commit = function (this: unknown) {
      const t = performance.now();
      try {
        commit.call(this);
      } finally {
        side.commitMs.push(performance.now() - t);
      }
    };
    server.on('stored', (message) => side.stored.set(message.id, performance.now()));
    server.on('delivered', (message) => {
      const now = performance.now();
      if (side.deliveredAt.has(message.id)) {
        side.duplicateDeliveries++;
        return;
      }
      side.deliveredAt.set(message.id, now);
      const at = side.stored.get(message.id);
      if (at !== undefined) side.latencies.push(now - at);
      side.lastDelivery = now;
    });
    return side;
  } catch (error) {
    void server.stop().catch(() => undefined);
    throw error;
  }
}

/**
 * Delivery stops at once (stop() stops the scheduler first); the stack answers what still
 * arrives with 503 and keeps its transactions until their timers end (Timer J: 32 s over UDP), so
 * the rest of stop() is left to finish in the background.
 */
async function stopParley(side: ParleySide): Promise<void> {
  const stopped = side.server.stop().catch(() => undefined);
  await stopChild(side.uas.child);
  await Promise.race([stopped, sleep(200)]);
}

interface ParleyStep {
  sipp: SippResult;
  stored: number;
  delivered: number;
  deliveredPerSecond: number;
  latencies: number[];
  msgsPerCommit: number;
  commits: number;
  cpu: number;
  heapMb: number;
  undelivered: number;
  logs: ParleySide['logs'];
  duplicateDeliveries: number;
  commitMs: number[];
  /** share of the step's wall time the event loop spent inside commits */
  commitShare: number;
  /** event-loop delay over the step, ms */
  loopDelay: { p50: number; p99: number; max: number };
}

async function parleyStep(dir: string, rate: number, calls: number, label: string): Promise<ParleyStep> {
  const side = await startParley(dir, label);
  try {
    const stats0 = { ...side.server.store.stats };
    side.commitMs = [];
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const sipp = await runUac(scenarios.parley, side.port, rate, calls, dir, label);
    // Let delivery catch up with what was stored.
    const drainUntil = performance.now() + DRAIN_SECONDS * 1000;
    while (side.deliveredAt.size < side.stored.size && performance.now() < drainUntil) await sleep(20);
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    loop.disable();
    const stats1 = side.server.store.stats;
    const delivered = side.deliveredAt.size;
    const commits = stats1.commits - stats0.commits;
    if (side.uas.child.exitCode !== null || side.uas.child.signalCode !== null) throw new Error(`the Parley side's SIPp UAS died:\n${side.uas.output()}`);
    return {
      sipp,
      stored: side.stored.size,
      delivered,
      deliveredPerSecond: delivered > 0 ? (delivered * 1000) / (side.lastDelivery - t0) : 0,
      latencies: side.latencies,
      msgsPerCommit: (stats1.messages - stats0.messages) / Math.max(1, commits),
      commits,
      cpu: (cpu.user + cpu.system) / 1000 / wall,
      heapMb: process.memoryUsage().heapUsed / 1048576,
      undelivered: side.stored.size - delivered,
      logs: side.logs,
      duplicateDeliveries: side.duplicateDeliveries,
      commitMs: side.commitMs,
      commitShare: side.commitMs.reduce((a, b) => a + b, 0) / wall,
      loopDelay: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    };
  } finally {
    await stopParley(side);
  }
}

// ---- Kamailio ---------------------------------------------------------------------------------

interface KamailioSide {
  child: ChildProcess;
  port: number;
  uas: Uas;
  output: () => string;
  version: string;
}

function kamailioModules(): string | undefined {
  if (process.env.KAMAILIO_MODULES) return process.env.KAMAILIO_MODULES;
  const listed = spawnSync('dpkg', ['-L', 'kamailio'], { encoding: 'utf8' });
  const tm = (listed.stdout ?? '').split('\n').find((l) => l.endsWith('/modules/tm.so'));
  if (tm) return tm.slice(0, -'/tm.so'.length);
  for (const dir of ['/usr/lib/x86_64-linux-gnu/kamailio/modules', '/usr/lib/kamailio/modules', '/usr/local/lib64/kamailio/modules']) if (existsSync(join(dir, 'tm.so'))) return dir;
  return undefined;
}

async function startKamailio(dir: string): Promise<KamailioSide | string> {
  if (!existsSync(KAMAILIO)) return `${KAMAILIO} not found (apt-get install kamailio): Kamailio side skipped`;
  const version = spawnSync(KAMAILIO, ['-v'], { encoding: 'utf8' });
  const versionLine = `${version.stdout ?? ''}`.split('\n').find((l) => /^version:/.test(l))?.replace(/^version:\s*/, '').trim();
  if (version.error || !versionLine) return `cannot run ${KAMAILIO} (${version.error?.message ?? 'no version line'}): Kamailio side skipped`;
  const modules = kamailioModules();
  if (!modules) return 'Kamailio module directory (tm.so) not found; set KAMAILIO_MODULES: Kamailio side skipped';
  const kdir = join(dir, 'kamailio');
  mkdirSync(kdir);
  const port = await freeUdpPort();
  const uasPort = await freeUdpPort();
  const uas = await startUas(uasPort, dir);
  const cfg = join(kdir, 'kamailio.cfg');
  writeFileSync(
    cfg,
    `#!KAMAILIO
# bench/server-load.ts: relay every MESSAGE statefully to the SIPp UAS, nothing stored.
debug=1
log_stderror=yes
children=2
listen=udp:${HOST}:${port}
disable_tcp=yes
auto_aliases=no

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "pv.so"

request_route {
  if (!mf_process_maxfwd_header("10")) {
    sl_send_reply("483", "Too Many Hops");
    exit;
  }
  if (method == "MESSAGE") {
    $du = "sip:${HOST}:${uasPort}";
    if (!t_relay()) sl_reply_error();
    exit;
  }
  sl_send_reply("404", "Not Here");
}
`,
  );
  const args = ['-f', cfg, '-DD', '-E', '-L', modules, '-w', kdir, '-P', join(kdir, 'kamailio.pid'), '-Y', kdir, '-m', '512', '-M', '16'];
  const child = track(spawn(KAMAILIO, args, { cwd: kdir, stdio: ['ignore', 'pipe', 'pipe'], detached: true }), true);
  const output = keepOutput(child);
  await waitForUdpBound(port, child, 'kamailio', output);
  await sleep(300); // its children are forked after the bind
  return { child, port, uas, output, version: versionLine };
}

// ---- report -----------------------------------------------------------------------------------

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const ms = (n: number): string => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(0)) : '–');

function sippClean(r: SippResult): boolean {
  return r.successful === r.calls && r.failed === 0 && r.retransmissions === 0;
}

function sippNotes(r: SippResult, answer: string): string {
  const notes: string[] = [];
  if (r.successful !== r.calls) notes.push(`${fmt(r.calls - (r.successful || 0))} of ${fmt(r.calls)} without ${answer}`);
  if (r.unexpected > 0) notes.push(`${fmt(r.unexpected)} other answers${r.statuses.size > 0 ? ` (${[...r.statuses].map(([s, n]) => `${fmt(n)}× ${s}`).join(', ')})` : ''}`);
  if (r.maxRetrans > 0) notes.push(`${fmt(r.maxRetrans)} timed out`);
  if (r.retransmissions > 0) notes.push(`${fmt(r.retransmissions)} retransmissions`);
  // exit 1 = some calls failed (counted above); anything else (255: the -timeout cap) is worth a word.
  if (r.exit !== 'exit 0' && !(r.exit.startsWith('exit 1') && r.failed > 0)) notes.push(`sipp ${r.exit.replace(/\s+/g, ' ').slice(0, 120)}`);
  return notes.join(', ');
}

interface Row {
  rate: number;
  parley?: ParleyStep;
  parleyClean?: boolean;
  kamailio?: SippResult;
  kamailioClean?: boolean;
}

const perSecond = (r: SippResult): number => (r.successful * 1000) / r.elapsedMs;
const rtt = (values: number[]): string => {
  // SIPp writes response times in whole milliseconds.
  const f = (p: number): string => {
    const v = percentile(values, p);
    return Number.isFinite(v) ? (v < 1 ? '<1' : fmt(v)) : '–';
  };
  return `${f(50)} / ${f(99)}`;
};

function parleyNotes(p: ParleyStep): string {
  const notes = [sippNotes(p.sipp, '202')];
  if (p.undelivered > 0) notes.push(`${fmt(p.undelivered)} not delivered ${DRAIN_SECONDS} s after the step`);
  if (p.logs.retrying > 0) notes.push(`${fmt(p.logs.retrying)} delivery rounds failed and retried`);
  if (p.logs.warn + p.logs.error > 0) notes.push(`server log: ${p.logs.warn} warnings, ${p.logs.error} errors (last: ${p.logs.last.join(' | ')})`);
  if (p.duplicateDeliveries > 0) notes.push(`${fmt(p.duplicateDeliveries)} delivered twice`);
  return notes.filter(Boolean).join(', ');
}

async function main(): Promise<void> {
  const version = spawnSync(SIPP, ['-v'], { encoding: 'utf8' });
  const sippLine = `${version.stdout ?? ''}${version.stderr ?? ''}`.split('\n').find((l) => /SIPp v/.test(l))?.trim();
  if (version.error || !sippLine) throw new Error(`cannot run ${SIPP}: ${version.error?.message ?? 'no version line'}`);
  if (RATES.length === 0) throw new Error('no rates: BENCH_RATES=1000,2000,…');

  const dir = tempDir('parley-server-bench-');
  let kamailio: KamailioSide | undefined;
  const rows: Row[] = [];
  try {
    const k = await startKamailio(dir);
    if (typeof k === 'string') console.log(k);
    else kamailio = k;
    const window = DELIVERY_WINDOW ?? DEFAULT_CONFIG.deliveryWindow;
    console.log(
      `${sippLine}; node ${process.version}; Parley server in this process, deliveryWindow ${window}, SQLite WAL synchronous=FULL under ${tmpdir()}` +
        `${kamailio ? `; kamailio ${kamailio.version} (2 UDP children, tm t_relay)` : ''}`,
    );
    console.log(`steps ${RATES.join(', ')} MESSAGE/s × ${STEP_SECONDS} s (-r R -rp 1000), drain ≤ ${DRAIN_SECONDS} s, warm-up ${fmt(WARMUP)} MESSAGEs at 1000/s\n`);

    if (WARMUP > 0) {
      if (kamailio) await runUac(scenarios.kamailio, kamailio.port, 1000, WARMUP, dir, 'warmup-kamailio');
      await parleyStep(dir, 1000, WARMUP, 'warmup-parley');
    }

    let parleyGaveUp: number | undefined;
    for (const rate of RATES) {
      const calls = Math.round(rate * STEP_SECONDS);
      const row: Row = { rate };
      rows.push(row);
      if (kamailio) {
        const r = await runUac(scenarios.kamailio, kamailio.port, rate, calls, dir, `kamailio-${rate}`);
        row.kamailio = r;
        row.kamailioClean = sippClean(r);
        const kn = sippNotes(r, '200');
        console.log(`${fmt(rate)}/s  kamailio: ${fmt(perSecond(r))} relayed/s (${fmt(r.successful)} in ${fmt(r.elapsedMs)} ms), 200 rtt p50 / p99 ${rtt(r.rtt)} ms${kn ? `; ${kn}` : ''}`);
        if (kamailio.child.exitCode !== null || kamailio.child.signalCode !== null) throw new Error(`kamailio died:\n${kamailio.output()}`);
      }
      if (parleyGaveUp !== undefined) {
        console.log(`${fmt(rate)}/s  parley: skipped (far past overload at ${fmt(parleyGaveUp)}/s; BENCH_KEEP_GOING=1 runs it)`);
        continue;
      }
      const p = await parleyStep(dir, rate, calls, `parley-${rate}`);
      row.parley = p;
      row.parleyClean = sippClean(p.sipp) && p.undelivered === 0 && p.stored === calls;
      const notes = parleyNotes(p);
      console.log(
        `${fmt(rate)}/s  parley: ${fmt(perSecond(p.sipp))} accepted/s (${fmt(p.sipp.successful)} in ${fmt(p.sipp.elapsedMs)} ms), ` +
          `${fmt(p.delivered)} delivered (${fmt(p.deliveredPerSecond)}/s), delivery p50 ${ms(percentile(p.latencies, 50))} p99 ${ms(percentile(p.latencies, 99))} ms, ` +
          `202 rtt p50 / p99 ${rtt(p.sipp.rtt)} ms, ${p.msgsPerCommit.toFixed(1)} msgs/commit (${fmt(p.commits)} commits, each p50 ${ms(percentile(p.commitMs, 50))} p99 ${ms(percentile(p.commitMs, 99))} max ${ms(Math.max(...p.commitMs))} ms, ` +
          `${Math.round(p.commitShare * 100)}% of the wall time), event-loop delay p99 ${ms(p.loopDelay.p99)} max ${ms(p.loopDelay.max)} ms, node CPU ${p.cpu.toFixed(2)}, heap ${fmt(p.heapMb)} MB` +
          `${notes ? `; ${notes}` : ''}`,
      );
      if (!KEEP_GOING && (perSecond(p.sipp) < rate / 2 || p.deliveredPerSecond < rate / 2 || p.delivered < p.stored / 2)) parleyGaveUp = rate;
    }
  } finally {
    if (kamailio) {
      await stopChild(kamailio.child, true);
      await stopChild(kamailio.uas.child);
    }
  }

  console.log(
    '\n| MESSAGE/s offered | Parley accepted/s (202) | Parley delivered/s | delivery p50 / p99 ms | 202 rtt p50 / p99 ms | msgs/commit | node CPU | Parley clean | Kamailio relayed/s (200) | 200 rtt p50 / p99 ms | Kamailio clean |',
  );
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |');
  const short = (text: string): string => (text.length > 90 ? `${text.slice(0, 87)}…` : text);
  for (const row of rows) {
    const p = row.parley;
    const k = row.kamailio;
    console.log(
      '| ' +
        [
          fmt(row.rate),
          ...(p
            ? [
                fmt(perSecond(p.sipp)),
                fmt(p.deliveredPerSecond),
                `${ms(percentile(p.latencies, 50))} / ${ms(percentile(p.latencies, 99))}`,
                rtt(p.sipp.rtt),
                p.msgsPerCommit.toFixed(1),
                p.cpu.toFixed(2),
                row.parleyClean ? 'yes' : `no: ${short(parleyNotes(p))}`,
              ]
            : ['–', '–', '–', '–', '–', '–', 'skipped']),
          ...(k ? [fmt(perSecond(k)), rtt(k.rtt), row.kamailioClean ? 'yes' : `no: ${short(sippNotes(k, '200'))}`] : ['–', '–', 'skipped']),
        ].join(' | ') +
        ' |',
    );
  }
  const best = (clean: (r: Row) => boolean | undefined): number => Math.max(0, ...rows.filter((r) => clean(r) === true).map((r) => r.rate));
  const parleyBest = best((r) => r.parleyClean);
  const kamailioBest = best((r) => r.kamailioClean);
  if (rows.some((r) => r.kamailio))
    console.log(
      `\nParley highest clean rate / Kamailio highest clean rate: ${parleyBest > 0 && kamailioBest > 0 ? (parleyBest / kamailioBest).toFixed(2) : '–'}× ` +
        `(${parleyBest > 0 ? fmt(parleyBest) : 'none'} vs ${kamailioBest > 0 ? fmt(kamailioBest) : 'none'} MESSAGE/s; steps ${RATES.join(', ')})`,
    );
  else console.log(`\nParley highest clean rate: ${parleyBest > 0 ? fmt(parleyBest) : 'none'} MESSAGE/s (no Kamailio to compare with)`);
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  })
  .finally(() => {
    killAll();
    // The server's stack may still hold transactions and timers (Timer J): do not wait for them.
    process.exit();
  });
