// Running one SIPp scenario to completion in a directory of its own and reading everything it
// leaves behind: the -trace_stat statistics (last row), the -trace_counts per-message counters
// (last row: "0_MESSAGE_Sent", "2_200_Recv", "4_200_Retrans", …), the final screen and the
// unexpected-message log, folded into one report for assertion messages.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Responder } from './parley-responder.js';
import { readSippStats, runSipp, type SippRun } from './sipp.js';

export interface ScenarioRun {
  run: SippRun;
  /** The last -trace_stat row, keyed by column ("SuccessfulCall(C)"…); empty when SIPp wrote none. */
  stats: Record<string, string>;
  /** The last -trace_counts row, numeric columns only ("2_200_Recv" → 200). */
  counts: Record<string, number>;
  /** The directory SIPp ran in (its logs are there). */
  dir: string;
  /** Command, exit, main statistics, counts, SIPp's logs and the responder's state, for failures. */
  report: string;
}

export interface ScenarioOptions {
  /** A parent directory; the run gets `${workDir}/${name}`. */
  workDir: string;
  name: string;
  /** Scenario, target and load arguments; the tracing options are added here. */
  args: string[];
  /** SIPp is killed (and the run resolves with the signal) if it is still running then. */
  killAfterMs?: number;
  /** Its state and output go into the report. */
  responder?: Responder;
}

const MAIN_STATS = [
  'OutgoingCall',
  'IncomingCall',
  'SuccessfulCall',
  'FailedCall',
  'FailedUnexpectedMessage',
  'FailedMaxUDPRetrans',
  'FailedTimeoutOnRecv',
  'FailedTimeoutOnSend',
  'FailedCannotSendMessage',
  'OutOfCallMsgs',
  'DeadCallMsgs',
  'Retransmissions',
];

/** Runs `sipp ARGS` with statistics, counts, screen and error tracing, and reads them back. */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioRun> {
  const dir = join(options.workDir, options.name);
  mkdirSync(dir, { recursive: true });
  const stat = join(dir, 'stat.csv');
  const screen = join(dir, 'screen.log');
  const errors = join(dir, 'errors.log');
  const args = [
    ...options.args,
    '-nostdin',
    '-trace_stat', '-stf', stat, '-fd', '1',
    '-trace_counts',
    '-trace_screen', '-screen_file', screen,
    '-trace_err', '-error_file', errors,
  ];
  const run = await runSipp(args, dir, options.killAfterMs);
  let stats: Record<string, string> = {};
  let statsError = '';
  try {
    stats = readSippStats(stat);
  } catch (error) {
    statsError = (error as Error).message;
  }
  let counts: Record<string, number> = {};
  let countsError = '';
  try {
    counts = readSippCounts(dir);
  } catch (error) {
    countsError = (error as Error).message;
  }
  const tail = (file: string, max = 3000): string => (existsSync(file) ? readFileSync(file, 'latin1').slice(-max) : `(no ${file})`);
  const pick = (k: string): string => `${k}=${stats[`${k}(C)`] ?? '?'}`;
  const responder = options.responder;
  const report = [
    `command (in ${dir}): ${run.command}`,
    `exit: code ${run.code}, signal ${run.signal}, after ${run.elapsedMs} ms`,
    `stats: ${statsError || MAIN_STATS.map(pick).join(' ')}`,
    `counts: ${countsError || Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `stderr: ${run.stderr.slice(-1500)}`,
    `final screen:\n${tail(screen)}`,
    ...(responder === undefined
      ? []
      : [
          `responder: ${responder.command} (${alive(responder) ? 'running' : `exited: code ${responder.child.exitCode}, signal ${responder.child.signalCode}`})`,
          `responder output:\n${responder.output().slice(-2000)}`,
        ]),
    `unexpected messages (first 2000 chars of ${errors}):\n${existsSync(errors) ? readFileSync(errors, 'latin1').slice(0, 2000) : '(none)'}`,
  ].join('\n');
  return { run, stats, counts, dir, report };
}

export function alive(responder: Responder): boolean {
  return responder.child.exitCode === null && responder.child.signalCode === null;
}

/** The last row of the `*_counts.csv` file SIPp's -trace_counts wrote in `dir`. */
export function readSippCounts(dir: string): Record<string, number> {
  const file = readdirSync(dir).find((f) => f.endsWith('_counts.csv'));
  if (file === undefined) throw new Error(`SIPp wrote no *_counts.csv in ${dir}`);
  const lines = readFileSync(join(dir, file), 'latin1')
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0);
  const header = lines[0]?.split(';');
  const last = lines.at(-1)?.split(';');
  if (header === undefined || last === undefined || lines.length < 2) throw new Error(`${file} has no data rows`);
  const row: Record<string, number> = {};
  header.forEach((name, i) => {
    if (name === '' || name === 'CurrentTime' || name === 'ElapsedTime') return;
    const value = Number(last[i]);
    if (Number.isFinite(value)) row[name] = value;
  });
  return row;
}

/** Sums the -trace_counts columns whose names match `pattern` (e.g. /_503_Recv$/). */
export function sumCounts(counts: Record<string, number>, pattern: RegExp): number {
  let total = 0;
  for (const [name, value] of Object.entries(counts)) if (pattern.test(name)) total += value;
  return total;
}

/** A cumulative counter from SIPp's statistics file (`SuccessfulCall`, `FailedCall`…). */
export function stat(run: ScenarioRun, counter: string): number {
  const raw = run.stats[`${counter}(C)`];
  if (raw === undefined) throw new Error(`SIPp statistics have no ${counter}(C) column\n${run.report}`);
  return Number(raw);
}

/** A per-message count from SIPp's counts file (`3_401_Recv`…). */
export function count(run: ScenarioRun, column: string): number {
  const value = run.counts[column];
  if (value === undefined) throw new Error(`SIPp counts have no ${column} column\n${run.report}`);
  return value;
}
