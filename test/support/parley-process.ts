// The `parley` CLI as real child processes (the TypeScript sources through tsx) on loopback, for
// test/app/cli.test.ts and test/app/federation-cli.test.ts: each process with its own
// environment (PARLEY_HOME a temporary directory unless the test gives one, no password or
// federation secret inherited from the shell), its output kept as complete lines to poll, and a
// record of every child and temporary directory so the test files' hooks can clean up.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const main = join(root, 'src', 'cli', 'main.ts');

// ---------------------------------------------------------------------------------------------
// Bookkeeping

/**
 * Every child still running, so that hooks can make sure none outlives its suite. One set for
 * every test file that imports this module: mocha loads all files into one process, so they share
 * it. `killAll` in one file still never kills another file's processes in use, because mocha runs
 * the files one after another (and with --parallel each file gets its own worker process, and so
 * its own copy of this module).
 */
const children = new Set<ChildProcess>();
/** Every temporary directory, removed by `removeTemporaries` at the very end. */
const temporaries: string[] = [];

/** A new empty directory under the system's temporary one, removed by `removeTemporaries`. */
export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `parley-${label}-`));
  temporaries.push(dir);
  return dir;
}

/** SIGKILLs every child started here that is still running. */
export function killAll(): void {
  killAllBut(() => false);
}

/** SIGKILLs every child started here that is still running, except those `keep` holds (a suite's servers). */
export function killAllBut(keep: (child: ChildProcess) => boolean): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && !keep(child)) child.kill('SIGKILL');
  }
}

/** Removes every directory `tempDir` made so far (for an `after` hook, once no child uses them). */
export function removeTemporaries(): void {
  for (const dir of temporaries.splice(0)) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Variables to set for a child; undefined removes one inherited from this process. */
export type Env = Record<string, string | undefined>;

export interface Proc {
  child: ChildProcess;
  args: string[];
  /** Complete stdout lines so far (a line still being written is not included); a copy. */
  out(): string[];
  /** Complete stderr lines so far; a copy. */
  err(): string[];
  /** Everything written so far to stdout and to stderr. */
  raw(): { stdout: string; stderr: string };
  /** Both streams, for failure messages. */
  transcript(): string;
  /** Resolves with the exit code (null when killed by a signal), after the streams closed. */
  exited: Promise<number | null>;
  done(): boolean;
  /** Polls `condition`; fails naming `what` (with the transcript and `context`) after `ms`, or when the process exits first. */
  waitFor(condition: () => boolean, what: string, ms?: number, context?: () => string): Promise<void>;
  /** Sends `signal` and waits for the exit; SIGKILL after `ms` if it does not go. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | null>;
}

/** PARLEY_HOME for a child whose test gives none, so that none touches the real ~/.parley. */
const defaultHome = tempDir('home');

function environment(env: Env): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...process.env, PARLEY_HOME: defaultHome };
  // A password or secret in the shell running the tests must not change what a test sees.
  delete result.PARLEY_PASSWORD;
  delete result.PARLEY_FEDERATION_SECRET;
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete result[key];
    else result[key] = value;
  }
  return result;
}

/** Starts `parley ARGS`; `stdin` 'pipe' for a test that types into it (`parley client`). */
export function start(args: string[], env: Env = {}, stdin: 'ignore' | 'pipe' = 'ignore'): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], {
    cwd: root,
    env: environment(env),
    stdio: [stdin, 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  let finished = false;
  // Complete lines, split as they arrive (a crash test's listen prints thousands, polled often).
  const outLines: string[] = [];
  const errLines: string[] = [];
  let outPartial = '';
  let errPartial = '';
  const split = (partial: string, chunk: string, lines: string[]): string => {
    const parts = (partial + chunk).split('\n');
    const rest = parts.pop()!; // after the last '\n': empty, or a line not yet finished
    for (const line of parts) {
      const clean = line.replace(/\r$/, '');
      if (clean.length > 0) lines.push(clean);
    }
    return rest;
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    outPartial = split(outPartial, chunk, outLines);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    errPartial = split(errPartial, chunk, errLines);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => {
      finished = true;
      children.delete(child);
      resolve(code);
    });
    child.once('error', () => {
      finished = true;
      children.delete(child);
      resolve(null);
    });
  });
  const transcript = (): string => `$ parley ${args.join(' ')}\n--- stdout ---\n${stdout}--- stderr ---\n${stderr}`;
  return {
    child,
    args,
    // Copies: a test keeps the lines printed up to a point (a server's start-up lines) and
    // compares them later, after the process printed more.
    out: () => outLines.slice(),
    err: () => errLines.slice(),
    raw: () => ({ stdout, stderr }),
    transcript,
    exited,
    done: () => finished,
    async waitFor(condition, what, ms = 30_000, context?: () => string) {
      const deadline = Date.now() + ms;
      const failure = (reason: string): Error =>
        new Error(`${reason}\n${tail(transcript())}${context === undefined ? '' : `\n${context()}`}`);
      while (!condition()) {
        if (finished) {
          await sleep(50); // let the last output in
          if (condition()) return;
          throw failure(`the process exited (${String(child.exitCode ?? child.signalCode)}) before ${what}`);
        }
        if (Date.now() > deadline) throw failure(`gave up after ${ms} ms waiting for ${what}`);
        await sleep(20);
      }
    },
    async stop(signal = 'SIGTERM', ms = 15_000) {
      if (finished) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), ms);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export interface Run {
  code: number | null;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
  stdout: string[];
  stderr: string[];
  /** stdout exactly as written. */
  rawStdout: string;
  transcript: string;
}

/** Runs `parley ARGS` to its end (SIGKILL after `ms`). */
export async function parley(args: string[], env: Env = {}, ms = 40_000): Promise<Run> {
  const began = Date.now();
  const proc = start(args, env);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), ms);
  const code = await proc.exited;
  clearTimeout(timer);
  // After 'close' both streams have ended: a final line without '\n' counts too.
  const { stdout, stderr } = proc.raw();
  const lines = (text: string): string[] => text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length > 0);
  return { code, ms: Date.now() - began, stdout: lines(stdout), stderr: lines(stderr), rawStdout: stdout, transcript: proc.transcript() };
}

// ---------------------------------------------------------------------------------------------
// Time and ports

/** The end of a long transcript (a crash test's listen prints hundreds of lines). */
export function tail(text: string, chars = 6000): string {
  return text.length <= chars ? text : `…${text.slice(-chars)}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `promise` settled within `ms`. */
export async function settles(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), cap]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ports `freePort` returned: a test may not have bound one yet, so it must not be handed out twice. */
const handedOut = new Set<number>();

/** A port free for both UDP and TCP on 127.0.0.1 (bound on 0, then released), never one handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const tcp = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => resolve((tcp.address() as { port: number }).port));
    });
    const udp = createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => {
      try {
        udp.close(() => resolve());
      } catch {
        resolve();
      }
    });
    if (udpFree && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no port free for both UDP and TCP');
}
