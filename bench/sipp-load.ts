// SIPp load against `parley responder` and against npm `sip` (kirm), each a stateful UAS answering
// every MESSAGE with 200 in a child process of its own, in turn, with the same SIPp run:
//
//   tsc -p tsconfig.bench.json && node .bench/bench/sipp-load.js
//
// SIPp runs test/interop/message-uac.xml (one MESSAGE per call, 200 required, retrans 500 ms)
// over UDP with no effective rate limit and a fixed number of calls in flight:
//   sipp -sf message-uac.xml 127.0.0.1:PORT -t u1 -m CALLS -l CONCURRENT -r 100000 …
// After a warm-up run (WARMUP calls, not reported) the measured run's successful calls divided by
// its elapsed time is the transaction rate. Failed calls and SIPp's retransmissions (a MESSAGE
// sent again because its 200 had not come within 500 ms: datagrams dropped by a full socket
// buffer, or a server too slow) are printed beside it.
//
// Environment: SIPP (default `sipp`), SIPP_CALLS (default 50000), SIPP_CONCURRENT (default 200),
// SIPP_WARMUP (default 5000), SIPP_ROUNDS (default 1: alternate the servers this many times).
//
// `parley responder` is .bench/src/cli/main.js, compiled by the same tsc run (tsconfig.bench.json
// includes src/cli/main.ts), or dist/cli/main.js (npm run build) when that is missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { udpPortTaken } from './udp-port.js';

const SIPP = process.env.SIPP ?? 'sipp';
const CALLS = Number(process.env.SIPP_CALLS ?? 50_000);
const CONCURRENT = Number(process.env.SIPP_CONCURRENT ?? 200);
const WARMUP = Number(process.env.SIPP_WARMUP ?? 5_000);
const ROUNDS = Number(process.env.SIPP_ROUNDS ?? 1);
const HOST = '127.0.0.1';

const here = fileURLToPath(new URL('.', import.meta.url)); // .bench/bench/
const repo = fileURLToPath(new URL('../../', import.meta.url)); // the repository
const scenario = join(repo, 'test', 'interop', 'message-uac.xml');

interface Server {
  name: string;
  child: ChildProcess;
  port: number;
  output: () => string;
}

interface Result {
  server: string;
  calls: number;
  successful: number;
  failed: number;
  retransmissions: number;
  elapsedMs: number;
  rate: number;
  exit: string;
}

function parleyEntry(): string {
  const compiled = join(repo, '.bench', 'src', 'cli', 'main.js');
  if (existsSync(compiled)) return compiled;
  const built = join(repo, 'dist', 'cli', 'main.js');
  if (existsSync(built)) return built;
  throw new Error('no compiled parley CLI: run `tsc -p tsconfig.bench.json` (or `npm run build`) first');
}

async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, HOST, () => {
        const a = server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : 0);
      });
    });
    await new Promise<void>((r) => server.close(() => r()));
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, HOST, () => resolve(true));
    });
    await new Promise<void>((r) => (ok ? udp.close(() => r()) : r()));
    if (ok) return port;
  }
  throw new Error('no free port');
}

/** Resolves once host:port is bound by someone else (our own bind fails). */
async function waitForUdpBound(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const bound = await udpPortTaken(HOST, port);
    if (bound) return;
    if (Date.now() > deadline) throw new Error(`nothing bound udp:${HOST}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function launch(name: string, args: string[], port: number): Promise<Server> {
  const child = spawn(process.execPath, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (chunk: Buffer): void => {
    out = (out + chunk.toString()).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve, reject) => {
    const exited = (code: number | null): void => reject(new Error(`${name} exited (code ${code}) before listening:\n${out}`));
    child.once('exit', exited);
    waitForUdpBound(port).then(
      () => {
        child.off('exit', exited);
        resolve({ name, child, port, output: () => out });
      },
      (error: Error) => {
        child.kill('SIGKILL');
        reject(new Error(`${error.message}\n${out}`));
      },
    );
  });
}

async function startParley(): Promise<Server> {
  const port = await freePort();
  return launch('parley responder', [parleyEntry(), 'responder', '--listen', `udp:${HOST}:${port}`], port);
}

async function startNpmSip(): Promise<Server> {
  const port = await freePort();
  return launch('npm sip', [join(here, 'sip-uas.js'), String(port)], port);
}

function stopServer(server: Server): Promise<void> {
  const child = server.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    // parley responder's stop is graceful (up to 64·T1 for live transactions): not worth waiting for.
    const hard = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function readStats(file: string): Record<string, string> {
  const lines = readFileSync(file, 'latin1')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
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

async function runSipp(server: Server, calls: number, dir: string, label: string): Promise<Result> {
  const stat = join(dir, `${label}.csv`);
  const args = [
    '-sf', scenario, `${HOST}:${server.port}`,
    '-t', 'u1', '-i', HOST,
    '-m', String(calls), '-l', String(CONCURRENT), '-r', '100000', '-rp', '1000',
    '-default_behaviors', 'abortunexp',
    '-timeout', '600s', '-timeout_error',
    '-nostdin', '-trace_stat', '-stf', stat, '-fd', '1',
  ];
  const started = performance.now();
  const child = spawn(SIPP, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  });
  const wallMs = performance.now() - started;
  const stats = existsSync(stat) ? readStats(stat) : {};
  const num = (k: string): number => Number(stats[`${k}(C)`] ?? NaN);
  const elapsedMs = elapsed(stats['ElapsedTime(C)']) || wallMs;
  const successful = num('SuccessfulCall');
  return {
    server: server.name,
    calls,
    successful,
    failed: num('FailedCall'),
    retransmissions: num('Retransmissions'),
    elapsedMs,
    rate: (successful * 1000) / elapsedMs,
    exit: signal ? `signal ${signal}` : `exit ${code}${code === 0 ? '' : `: ${stderr.trim().split('\n').slice(-3).join(' / ')}`}`,
  };
}

const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n));

async function main(): Promise<void> {
  const version = spawnSync(SIPP, ['-v'], { encoding: 'utf8' });
  const sippLine = `${version.stdout ?? ''}${version.stderr ?? ''}`.split('\n').find((l) => /SIPp v/.test(l))?.trim();
  if (version.error || !sippLine) throw new Error(`cannot run ${SIPP}: ${version.error?.message ?? 'no version line'}`);
  console.log(`${sippLine}; node ${process.version}; ${fmt(CALLS)} MESSAGE calls, ${CONCURRENT} in flight (-l), -r 100000, warm-up ${fmt(WARMUP)} calls\n`);
  const dir = mkdtempSync(join(tmpdir(), 'parley-sipp-load-'));
  const results: Result[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const start of [startParley, startNpmSip]) {
        const server = await start();
        try {
          if (WARMUP > 0) await runSipp(server, WARMUP, dir, `warmup-${round}-${server.name.replace(/\W+/g, '-')}`);
          const r = await runSipp(server, CALLS, dir, `run-${round}-${server.name.replace(/\W+/g, '-')}`);
          const alive = server.child.exitCode === null && server.child.signalCode === null;
          console.log(
            `  ${r.server}: ${fmt(r.rate)} transactions/s (${fmt(r.successful)} of ${fmt(r.calls)} calls in ${fmt(r.elapsedMs)} ms), ` +
              `failed ${fmt(r.failed)}, retransmissions ${fmt(r.retransmissions)}, sipp ${r.exit}${alive ? '' : `; SERVER DIED:\n${server.output()}`}`,
          );
          results.push(r);
        } finally {
          await stopServer(server);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log('\n| server | transactions/s | failed calls | retransmissions | sipp |\n| --- | ---: | ---: | ---: | --- |');
  for (const r of results) console.log(`| ${r.server} | ${fmt(r.rate)} | ${fmt(r.failed)} | ${fmt(r.retransmissions)} | ${r.exit} |`);
  const mean = (name: string): number => {
    const rs = results.filter((r) => r.server === name);
    return rs.reduce((a, r) => a + r.rate, 0) / rs.length;
  };
  const parley = mean('parley responder');
  const npmSip = mean('npm sip');
  console.log(`\nparley / npm sip: ${(parley / npmSip).toFixed(2)}× (${fmt(parley)} vs ${fmt(npmSip)} transactions/s${ROUNDS > 1 ? `, mean of ${ROUNDS} rounds` : ''})`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
