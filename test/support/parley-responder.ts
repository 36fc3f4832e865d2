// `parley responder` as a child process: started from the TypeScript sources through tsx, its
// bound addresses read from the `listening PROTO:HOST:PORT` lines it prints (docs/transport-layer.md,
// "CLI"), stopped with SIGTERM. `startResponderProcess` adds extra environment variables
// (NODE_EXTRA_CA_CERTS, so its TLS client trusts a test CA) and stack options the CLI does not
// expose (through test/support/tuned-responder.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stop, track } from './sipp.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface ListenAddress {
  protocol: string;
  host: string; // without IPv6 brackets
  port: number;
}

export interface Responder {
  child: ChildProcess;
  command: string;
  /** The bound addresses, in the order they were printed. */
  listening: ListenAddress[];
  /** The first bound address of `protocol`; throws when there is none. */
  address(protocol: string): ListenAddress;
  /** What the responder has written to stdout and stderr so far (bounded). */
  output(): string;
  stop(): Promise<void>;
}

export interface ResponderProcessOptions {
  listen: string[];
  /** More `parley responder` arguments (--status, --cert, --key). */
  extra?: string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** When given, runs tuned-responder.ts with these runResponder options instead of the CLI. */
  stackOptions?: { t1?: number; t2?: number; tuQueueLimitMs?: number };
  readyTimeoutMs?: number;
}

const LISTENING = /^listening (\w+):(\[[^\]]+\]|[^:]+):(\d+)\s*$/;

/** Spawns the responder and resolves once it has printed one `listening` line per --listen. */
export function startResponderProcess(options: ResponderProcessOptions): Promise<Responder> {
  const { listen, extra = [], env = {}, stackOptions, readyTimeoutMs = 30_000 } = options;
  const entry = stackOptions === undefined ? ['src/cli/main.ts', 'responder'] : ['test/support/tuned-responder.ts', JSON.stringify(stackOptions)];
  const args = ['--import', 'tsx', ...entry, ...listen.flatMap((l) => ['--listen', l]), ...extra];
  const envText = Object.entries(env).map(([k, v]) => `${k}=${v} `).join('');
  const command = `${envText}node ${args.map((a) => (/[\s{}"]/.test(a) ? `'${a}'` : a)).join(' ')}`;
  const child = track(spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 16_384) output = output.slice(-16_384);
  };
  child.stderr?.on('data', keep);
  const listening: ListenAddress[] = [];
  const responder: Responder = {
    child,
    command,
    listening,
    address(protocol) {
      const found = listening.find((a) => a.protocol === protocol);
      if (found === undefined) throw new Error(`parley responder printed no ${protocol} address:\n${output}`);
      return found;
    },
    output: () => output,
    stop: () => stop(child),
  };
  return new Promise<Responder>((resolve, reject) => {
    let pending = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop(child).then(() => reject(new Error(`${why}\ncommand: ${command}\noutput:\n${output}`)));
    };
    const timer = setTimeout(
      () => fail(`parley responder printed ${listening.length} of ${listen.length} "listening" lines in ${readyTimeoutMs} ms`),
      readyTimeoutMs,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      keep(chunk);
      pending += chunk.toString();
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline).replace(/\r$/, '');
        pending = pending.slice(newline + 1);
        const match = LISTENING.exec(line);
        if (match === null) continue;
        listening.push({ protocol: match[1]!, host: match[2]!.replace(/^\[|\]$/g, ''), port: Number(match[3]) });
        if (listening.length === listen.length && !settled) {
          settled = true;
          clearTimeout(timer);
          resolve(responder);
        }
      }
    });
    child.once('error', (error) => fail(`cannot start parley responder: ${error.message}`));
    child.once('exit', (code, signal) => fail(`parley responder exited (code ${code}, signal ${signal}) before it was listening`));
  });
}

/**
 * Spawns `parley responder --listen ADDR... [EXTRA...]` and resolves once it has printed one
 * `listening` line per `--listen`; rejects (after killing it) if it exits or stays silent first.
 */
export function startResponder(listen: string[], extra: string[] = [], readyTimeoutMs = 30_000): Promise<Responder> {
  return startResponderProcess({ listen, extra, readyTimeoutMs });
}
