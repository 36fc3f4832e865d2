// Interoperability with SIPp (Debian package `sip-tester`): SIPp's UAC runs
// test/interop/message-uac.xml — one MESSAGE (RFC 3428) per call, a 200 required — against
// `parley responder` over UDP (-t u1) and over one TCP connection (-t t1), 1000 calls at 300/s, and
// SIPp's exit status and -trace_stat statistics must say 1000 successful calls and 0 failed. With
// `--status 486` every call must fail and SIPp must exit nonzero, which shows the test can fail.
//
// Before that, the same scenario runs against a SIPp UAS stand-in (message-uas.xml answers 200,
// message-uas-486.xml answers 486): if those fail, the harness or SIPp is at fault, not Parley.
//
// No sipp on PATH (override with SIPP=/path/to/sipp): the suite is skipped, except on CI (CI=true)
// where it fails.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, startResponder, type Responder } from '../support/parley-responder.js';
import {
  cumulative,
  freePort,
  killAll,
  onCi,
  readSippStats,
  runSipp,
  sippVersion,
  startSipp,
  stop,
  waitForTcpListen,
  waitForUdpBound,
  type SippRun,
} from '../support/sipp.js';

const HOST = '127.0.0.1';
const UAC = join(repoRoot, 'test', 'interop', 'message-uac.xml');
const UAS_200 = join(repoRoot, 'test', 'interop', 'message-uas.xml');
const UAS_486 = join(repoRoot, 'test', 'interop', 'message-uas-486.xml');

const CALLS = 1000;
const RATE = 300; // calls per -rp period
const RATE_PERIOD_MS = 1000;

type SippTransport = 'u1' | 't1';
const TRANSPORTS: { name: string; sipp: SippTransport; protocol: 'udp' | 'tcp' }[] = [
  { name: 'UDP', sipp: 'u1', protocol: 'udp' },
  { name: 'TCP (one connection)', sipp: 't1', protocol: 'tcp' },
];

interface UacResult {
  run: SippRun;
  stats: Record<string, string>;
  /** Everything useful when an assertion fails: the command, exit, stats and SIPp's own logs. */
  report: string;
}

let workDir: string | undefined;
let runNumber = 0;

/** Runs the MESSAGE UAC against host:port until it exits by itself and reads its statistics. */
async function runUac(port: number, transport: SippTransport, calls: number, responder?: Responder): Promise<UacResult> {
  if (workDir === undefined) throw new Error('no work directory');
  const name = `uac-${++runNumber}-${transport}`;
  const stat = join(workDir, `${name}.stat.csv`);
  const screen = join(workDir, `${name}.screen.log`);
  const errors = join(workDir, `${name}.errors.log`);
  const args = [
    '-sf', UAC,
    `${HOST}:${port}`,
    '-t', transport,
    '-i', HOST,
    '-m', String(calls),
    '-r', String(RATE),
    '-rp', String(RATE_PERIOD_MS),
    // An unexpected message (any response but 100/200) fails the call at once; nothing else is
    // sent for it (no BYE/CANCEL: MESSAGE is not a dialog).
    '-default_behaviors', 'abortunexp',
    '-recv_timeout', '5000',
    '-timeout', '30s',
    '-timeout_error',
    '-nostdin',
    '-trace_stat', '-stf', stat, '-fd', '1',
    '-trace_screen', '-screen_file', screen,
    '-trace_err', '-error_file', errors,
  ];
  const run = await runSipp(args, workDir);
  let stats: Record<string, string> = {};
  let statsError = '';
  try {
    stats = readSippStats(stat);
  } catch (error) {
    statsError = (error as Error).message;
  }
  const tail = (file: string, max = 4000): string =>
    existsSync(file) ? readFileSync(file, 'latin1').slice(-max) : `(no ${file})`;
  const pick = (k: string): string => `${k}=${stats[`${k}(C)`] ?? '?'}`;
  const report = [
    `command: ${run.command}`,
    `exit: code ${run.code}, signal ${run.signal}, after ${run.elapsedMs} ms`,
    `stats: ${statsError || ['OutgoingCall', 'SuccessfulCall', 'FailedCall', 'FailedUnexpectedMessage', 'FailedMaxUDPRetrans', 'FailedTcpClosed', 'FailedTcpConnect'].map(pick).join(' ')}`,
    `stderr: ${run.stderr.slice(-2000)}`,
    `final screen:\n${tail(screen)}`,
    ...(responder === undefined
      ? []
      : [
          `responder: ${responder.command} (${responder.child.exitCode === null && responder.child.signalCode === null ? 'running' : `exited: code ${responder.child.exitCode}, signal ${responder.child.signalCode}`})`,
          `responder output:\n${responder.output().slice(-2000)}`,
        ]),
    `unexpected messages (first 2000 chars of ${errors}):\n${existsSync(errors) ? readFileSync(errors, 'latin1').slice(0, 2000) : '(none)'}`,
  ].join('\n');
  return { run, stats, report };
}

function expectAllSucceeded(result: UacResult, calls: number): void {
  const { run, stats, report } = result;
  expect(run.code, `sipp must exit 0 (all calls successful)\n${report}`).to.equal(0);
  expect(cumulative(stats, 'OutgoingCall'), report).to.equal(calls);
  expect(cumulative(stats, 'SuccessfulCall'), report).to.equal(calls);
  expect(cumulative(stats, 'FailedCall'), report).to.equal(0);
}

function expectAllFailed(result: UacResult, calls: number): void {
  const { run, stats, report } = result;
  expect(run.signal, `sipp must exit by itself\n${report}`).to.equal(null);
  expect(run.code, `sipp must exit nonzero (calls failed)\n${report}`).to.not.equal(0);
  expect(run.code, `sipp's exit code for "at least one call failed" is 1\n${report}`).to.equal(1);
  expect(cumulative(stats, 'SuccessfulCall'), report).to.equal(0);
  expect(cumulative(stats, 'FailedCall'), report).to.equal(calls);
  // Failed because the 486 arrived, not because nothing did.
  expect(cumulative(stats, 'FailedUnexpectedMessage'), report).to.equal(calls);
}

describe('SIPp interop (sip-tester)', function () {
  this.timeout(60_000);
  let keepWorkDir = false;

  before(function () {
    const version = sippVersion();
    if (version === undefined) {
      const why = 'sip-tester is missing: the `sipp` binary is not on PATH (apt-get install -y sip-tester)';
      if (onCi()) throw new Error(`${why}; CI is set, so the SIPp interop tests cannot be skipped`);
      // mocha's skip() takes no reason, so say it here.
      process.stderr.write(`SIPp interop tests skipped: ${why}\n`);
      this.skip();
    }
    workDir = mkdtempSync(join(tmpdir(), 'parley-sipp-'));
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && workDir !== undefined) {
      keepWorkDir = true;
    }
  });

  after(async function () {
    await killAll();
    if (workDir !== undefined) {
      if (keepWorkDir) process.stderr.write(`SIPp logs of the failed runs are kept in ${workDir}\n`);
      else rmSync(workDir, { recursive: true, force: true });
      workDir = undefined;
    }
  });

  describe('harness self-check: the scenario against a SIPp UAS stand-in', function () {
    const SELF_CHECK_CALLS = 200;

    async function withStandIn(scenario: string, transport: SippTransport, body: (port: number) => Promise<void>): Promise<void> {
      const port = await freePort(HOST);
      const uas = startSipp(['-sf', scenario, '-i', HOST, '-p', String(port), '-t', transport, '-nostdin'], workDir!);
      try {
        const exited = new Promise<never>((_, reject) =>
          uas.child.once('exit', (code) => reject(new Error(`SIPp UAS exited (code ${code}):\n${uas.output()}`))),
        );
        exited.catch(() => undefined); // it exits when stopped below, too
        await Promise.race([transport === 't1' ? waitForTcpListen(HOST, port) : waitForUdpBound(HOST, port), exited]);
        await body(port);
      } finally {
        await stop(uas.child);
      }
    }

    for (const t of TRANSPORTS) {
      it(`${t.name}: ${SELF_CHECK_CALLS} MESSAGEs answered 200 are ${SELF_CHECK_CALLS} successful calls`, async function () {
        await withStandIn(UAS_200, t.sipp, async (port) => {
          expectAllSucceeded(await runUac(port, t.sipp, SELF_CHECK_CALLS), SELF_CHECK_CALLS);
        });
      });

      it(`${t.name}: MESSAGEs answered 486 are failed calls and sipp exits nonzero`, async function () {
        await withStandIn(UAS_486, t.sipp, async (port) => {
          expectAllFailed(await runUac(port, t.sipp, 50), 50);
        });
      });
    }
  });

  describe('parley responder (answers 200)', function () {
    let responder: Responder | undefined;

    before(async function () {
      responder = await startResponder([`udp:${HOST}:0`, `tcp:${HOST}:0`]);
    });

    after(async function () {
      await responder?.stop();
      responder = undefined;
    });

    for (const t of TRANSPORTS) {
      it(`${t.name}: ${CALLS} MESSAGEs at ${RATE}/s are ${CALLS} successful calls, 0 failed`, async function () {
        const port = responder!.address(t.protocol).port;
        const result = await runUac(port, t.sipp, CALLS, responder);
        expectAllSucceeded(result, CALLS);
      });
    }
  });

  describe('parley responder --status 486 (the test can fail)', function () {
    const FAILING_CALLS = 100;
    let responder: Responder | undefined;

    before(async function () {
      responder = await startResponder([`udp:${HOST}:0`, `tcp:${HOST}:0`], ['--status', '486']);
    });

    after(async function () {
      await responder?.stop();
      responder = undefined;
    });

    for (const t of TRANSPORTS) {
      it(`${t.name}: every call fails and sipp exits nonzero`, async function () {
        const port = responder!.address(t.protocol).port;
        const result = await runUac(port, t.sipp, FAILING_CALLS, responder);
        expectAllFailed(result, FAILING_CALLS);
      });
    }
  });
});
