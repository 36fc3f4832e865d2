// Running SIPp (the Debian package `sip-tester`, binary `sipp`) from tests: finding it, running a
// scenario to completion as a child process, and reading the statistics it leaves behind.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { createSocket } from 'node:dgram';

export const SIPP = process.env.SIPP ?? 'sipp';

/** The SIPp version line (e.g. "SIPp v3.6.1-…"), or undefined when `sipp` cannot be run. */
export function sippVersion(): string | undefined {
  const run = spawnSync(SIPP, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (run.error !== undefined) return undefined;
  const line = `${run.stdout}\n${run.stderr}`.split('\n').find((l) => /SIPp v\d/.test(l));
  return line?.trim() ?? 'SIPp (unknown version)';
}

/** True when the CI environment variable says we are on CI (CI=true, CI=1, …). */
export function onCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/** Every child a test started and has not seen exit; `killAll` ends them (after hooks). */
const live = new Set<ChildProcess>();

/**
 * Skips a suite when SIPp is missing — unless CI is set, where the interop tests must run, so it
 * fails instead. `what` names the suite in the message ("SIPp DUM interop tests").
 */
export function requireSipp(context: Mocha.Context, what: string): void {
  if (sippVersion() !== undefined) return;
  const why = 'sip-tester is missing: the `sipp` binary is not on PATH (apt-get install -y sip-tester)';
  if (onCi()) throw new Error(`${why}; CI is set, so the ${what} cannot be skipped`);
  process.stderr.write(`${what} skipped: ${why}\n`);
  context.skip();
}

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Sends `signal` to the child, then SIGKILL after `graceMs`; resolves once it has exited. */
export function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    if (!child.kill(signal)) {
      clearTimeout(hard);
      resolve();
    }
  });
}

/** Ends every tracked child still running. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((child) => stop(child)));
}

/** A bounded tail of a child's output, for failure messages. */
class Tail {
  private text = '';
  constructor(private readonly max = 16_384) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text;
  }
}

export interface SippRun {
  /** The exit status; null when it was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The whole command line, for messages and reports. */
  command: string;
  /** Wall-clock milliseconds from spawn to exit. */
  elapsedMs: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `sipp ARGS` in `cwd` and resolves when it exits by itself. SIPp must be told to exit on its
 * own (-m, -timeout); if it is still running after `killAfterMs` it is killed (and the run
 * resolves with the signal) so a wedged SIPp cannot outlive the test.
 */
export function runSipp(args: string[], cwd: string, killAfterMs = 50_000): Promise<SippRun> {
  const command = [SIPP, ...args].join(' ');
  const started = Date.now();
  const child = track(spawn(SIPP, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  const stdout = new Tail();
  const stderr = new Tail();
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  return new Promise((resolve, reject) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.once('error', (error) => {
      clearTimeout(killer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      resolve({
        code,
        signal,
        command,
        elapsedMs: Date.now() - started,
        stdout: stdout.toString(),
        stderr: stderr.toString(),
      });
    });
  });
}

/**
 * Starts a long-running SIPp (a UAS) in `cwd`. It is tracked, so `killAll` ends it; SIPp takes a
 * moment to bind, so wait for the port before sending to it (`waitForSippListen`).
 */
export function startSipp(args: string[], cwd: string): { child: ChildProcess; command: string; output: () => string } {
  const child = track(spawn(SIPP, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  const out = new Tail();
  child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => out.push(chunk));
  return { child, command: [SIPP, ...args].join(' '), output: () => out.toString() };
}

/** The last row of a SIPp `-trace_stat` CSV file, keyed by column name ("SuccessfulCall(C)"…). */
export function readSippStats(file: string): Record<string, string> {
  if (!existsSync(file)) throw new Error(`SIPp wrote no statistics file ${file}`);
  const lines = readFileSync(file, 'latin1')
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0);
  const header = lines[0]?.split(';');
  const last = lines.at(-1)?.split(';');
  if (header === undefined || last === undefined || lines.length < 2) {
    throw new Error(`SIPp statistics file ${file} has no data rows:\n${lines.join('\n')}`);
  }
  const row: Record<string, string> = {};
  header.forEach((name, i) => {
    if (name !== '') row[name] = last[i] ?? '';
  });
  return row;
}

/** A cumulative counter from `readSippStats` as a number ("SuccessfulCall" → "SuccessfulCall(C)"). */
export function cumulative(stats: Record<string, string>, counter: string): number {
  const raw = stats[`${counter}(C)`];
  if (raw === undefined) throw new Error(`SIPp statistics have no ${counter}(C) column`);
  return Number(raw);
}

/** A port that is free on `host` for both UDP and TCP right now (for a SIPp UAS to bind). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    const udp = createSocket('udp4');
    const udpOk = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, host, () => resolve(true));
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (udpOk) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      return port;
    }
    udp.close();
  }
  throw new Error(`no port free for both UDP and TCP on ${host}`);
}

/** Resolves once something accepts TCP connections on host:port (a UDP socket cannot be probed). */
export async function waitForTcpListen(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on tcp:${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once a UDP port on host is bound by someone else (our own bind attempt fails). */
export async function waitForUdpBound(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const udp = createSocket('udp4');
    const bound = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(true));
      udp.bind(port, host, () => resolve(false));
    });
    await new Promise<void>((resolve) => {
      try {
        udp.close(() => resolve());
      } catch {
        resolve();
      }
    });
    if (bound) return;
    if (Date.now() > deadline) throw new Error(`nothing bound udp:${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
