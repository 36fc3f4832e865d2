// SIPp as a Parley user, with its own digest (issue 15, docs/server.md "Digest algorithms"):
//
//  1. A real `parley server --digest-algorithms MD5` process on a data directory; SIPp runs
//     test/interop/message-md5-cpim-uac.xml over UDP — 150 MESSAGEs from alice to bob, each
//     challenged (401) and sent again with SIPp's MD5 Authorization, each a message/cpim with
//     its own imdn.Message-ID and text "sipp message N". After the server stored 50 of them it
//     gets SIGKILL, and is started again on the same data and port while SIPp carries on
//     (retransmitting into the gap; the calls that held a nonce of the dead process — each call
//     pauses 300 ms between its 401 and its answer — are challenged again, and SIPp authenticates
//     once more: at least one must be). Every call must end in 202 (SIPp exits 0, 150 successful calls,
//     150 distinct Call-IDs answered 202 in its -trace_msg log). Then `parley listen --json` as
//     bob prints every one of those 150 texts exactly once, with the Message-ID SIPp sent, and
//     nothing else.
//  2. The trade-off of the algorithm order: SIPp 3.6 reads only the first WWW-Authenticate and
//     computes only MD5. Against a server offering the default order (SHA-512-256 first), or
//     SHA-256 then MD5, SIPp cannot log in (it gives up on the first call, exit non-zero, no
//     call successful, "authentication must use MD5"); with MD5 first (MD5, SHA-512-256) it does.
//
// No sipp on PATH (override with SIPP=/path/to/sipp): skipped, except on CI (CI=true) where it
// fails, like test/interop/sipp.test.ts. Everything is on 127.0.0.1 with ports chosen free.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountHashes, ParleyServer } from '../../src/index.js';
import { freePort, killAll as killProcesses, parley, removeTemporaries, sleep, start, tail, tempDir, type Proc } from '../support/parley-process.js';
import { repoRoot } from '../support/parley-responder.js';
import { killAll as killSipp, requireSipp } from '../support/sipp.js';
import { runScenario, stat, type ScenarioRun } from '../support/sipp-scenario.js';

const HOST = '127.0.0.1';
const DOMAIN = 'localhost';
const SCENARIO = join(repoRoot, 'test', 'interop', 'message-md5-cpim-uac.xml');
const ALICE_PASSWORD = 'alice-pw';
const BOB_PASSWORD = 'bob-pw';
const CALLS = 150;
/** The server is killed once it has stored this many. */
const KILL_AFTER_STORED = 50;
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

// Like cli.test.ts: the children and directories of test/support/parley-process.ts are shared
// by every file of the run, so they are cleaned up once, at its end.
after(() => {
  killProcesses();
  removeTemporaries();
});

let workDir: string | undefined;
let keepWorkDir = false;
let runNumber = 0;

/** Removes the SIPp work directory, or keeps it (and says where) when a test failed. */
function releaseWorkDir(): void {
  if (workDir === undefined) return;
  if (keepWorkDir) process.stderr.write(`SIPp logs of the failed digest runs are kept in ${workDir}\n`);
  else rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
  keepWorkDir = false;
}


/** SIPp's arguments for `calls` MESSAGEs from alice to bob at host:port, from `sippPort`. */
function sippArgs(port: number, sippPort: number, calls: number, rate: number): string[] {
  return [
    '-sf', SCENARIO, `${HOST}:${port}`,
    '-t', 'u1', '-i', HOST, '-p', String(sippPort),
    '-s', 'bob', '-au', 'alice', '-ap', ALICE_PASSWORD,
    '-key', 'domain', DOMAIN,
    // The digest uri must be the Request-URI; SIPp's default is sip:[remote_ip]:[remote_port].
    '-auth_uri', `bob@${DOMAIN}`,
    '-m', String(calls), '-r', String(rate), '-rp', '1000',
    '-default_behaviors', 'abortunexp',
    '-recv_timeout', '30000',
    '-timeout', '90s', '-timeout_error',
    '-trace_msg',
  ];
}

interface SippLog {
  /** Call numbers of the calls answered 202 (the Call-ID is N-PID@IP, SIPp's default). */
  accepted: Set<number>;
  /** Call-IDs answered 202. */
  acceptedCallIds: Map<number, string>;
  /** Call numbers of every MESSAGE SIPp sent ("sipp message N"). */
  issued: Set<number>;
  /** Calls that authenticated more than once (challenged again by the restarted server). */
  reauthenticated: Set<number>;
}

/** What SIPp's -trace_msg log says was sent and answered 202. */
function readSippLog(run: ScenarioRun): SippLog {
  const file = readdirSync(run.dir).find((f) => f.endsWith('_messages.log'));
  if (file === undefined) throw new Error(`SIPp wrote no *_messages.log in ${run.dir}\n${run.report}`);
  const log = readFileSync(join(run.dir, file), 'latin1');
  const accepted = new Set<number>();
  const acceptedCallIds = new Map<number, string>();
  const issued = new Set<number>();
  const reauthenticated = new Set<number>();
  for (const entry of log.split(/^-{20,} .*$/m)) {
    const body = entry.replace(/^\s*UDP message (sent|received)[^\n]*\n\s*\n/, '');
    if (/^\s*UDP message sent/.test(entry)) {
      const text = /^sipp message (\d+)\r?$/m.exec(body);
      if (text) issued.add(Number(text[1]));
      const cseq = Number(/^CSeq:\s*(\d+)/im.exec(body)?.[1] ?? 0);
      if (text && cseq >= 3) reauthenticated.add(Number(text[1]));
    } else if (/^\s*UDP message received/.test(entry) && /^SIP\/2\.0 202 /.test(body)) {
      const callId = /^Call-ID:\s*(\S+)/im.exec(body)?.[1];
      if (callId === undefined) throw new Error(`a 202 without Call-ID in ${file}:\n${body}`);
      const number = Number(callId.slice(0, callId.indexOf('-')));
      accepted.add(number);
      acceptedCallIds.set(number, callId);
    }
  }
  return { accepted, acceptedCallIds, issued, reauthenticated };
}

interface Printed {
  text: string;
  messageId: string;
  from: string;
  to: string;
}

function printed(proc: Proc): Printed[] {
  return proc.out().map((line) => {
    try {
      return JSON.parse(line) as Printed;
    } catch {
      throw new Error(`parley listen --json printed a line that is not JSON: ${JSON.stringify(line)}\n${tail(proc.transcript())}`);
    }
  });
}

/** `parley server --digest-algorithms MD5` on udp+tcp PORT, once it printed "ready". */
async function startServer(data: string, port: number): Promise<Proc> {
  const proc = start(['server', '--data', data, '--listen', `udp:${HOST}:${port}`, '--listen', `tcp:${HOST}:${port}`, '--domain', DOMAIN, '--digest-algorithms', 'MD5']);
  await proc.waitFor(() => proc.out().includes('ready'), 'the server to print "ready"', 40_000);
  expect(proc.out(), proc.transcript()).to.include(`listening udp:${HOST}:${port}`);
  return proc;
}

const storedLines = (proc: Proc): number => proc.err().filter((line) => / stored #\d+ from alice@localhost for bob@localhost$/.test(line)).length;

describe('SIPp with MD5 digest sends 150 MESSAGEs through a parley server killed mid-stream', function () {
  this.timeout(240_000);
  const servers: Proc[] = [];

  before(function () {
    requireSipp(this, 'SIPp digest tests');
    workDir = mkdtempSync(join(tmpdir(), 'parley-sipp-digest-'));
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') keepWorkDir = true;
  });
  after(async function () {
    this.timeout(60_000);
    await killSipp();
    for (const server of servers) await server.stop('SIGTERM');
    releaseWorkDir();
  });

  it('every MESSAGE answered 202 is printed by parley listen exactly once, across a SIGKILL and a restart', async () => {
    const data = tempDir('sipp-crash');
    for (const [user, password] of [['alice', ALICE_PASSWORD], ['bob', BOB_PASSWORD]] as const) {
      const added = await parley(['user', 'add', `${user}@${DOMAIN}`, '--password', password, '--data', data]);
      expect(added.code, added.transcript).to.equal(0);
    }
    const port = await freePort();
    const sippPort = await freePort();
    const first = await startServer(data, port);
    servers.push(first);

    const sipp = runScenario({ workDir: workDir!, name: `${++runNumber}-crash`, killAfterMs: 150_000, args: sippArgs(port, sippPort, CALLS, 30) });
    await first.waitFor(() => storedLines(first) >= KILL_AFTER_STORED, `${KILL_AFTER_STORED} messages stored`, 60_000);
    first.child.kill('SIGKILL');
    await first.exited;
    const storedBeforeKill = storedLines(first);
    const second = await startServer(data, port);
    servers.push(second);

    const run = await sipp;
    const log = readSippLog(run);
    if (process.env.PARLEY_INTEROP_VERBOSE === '1') {
      process.stderr.write(`      [crash] stored before the kill ${storedBeforeKill}; calls authenticated again after the restart: ${log.reauthenticated.size}; retransmissions ${run.stats['Retransmissions(C)'] ?? '?'}\n`);
    }
    const report = `${run.report}\nstored before the kill: ${storedBeforeKill}; authenticated again: ${[...log.reauthenticated].join(', ') || 'none'}\n--- first server ---\n${tail(first.transcript(), 3000)}\n--- second server ---\n${tail(second.transcript(), 3000)}`;
    expect(storedBeforeKill, `the kill came mid-stream\n${report}`).to.be.within(KILL_AFTER_STORED, CALLS - 1);
    expect(storedLines(second), `the restarted server stored the rest\n${report}`).to.be.greaterThan(0);
    // Calls paused between their 401 and their answer at the kill hold a nonce of the dead
    // server: the restarted one challenges them again, and they get in on the second try.
    expect(log.reauthenticated.size, `calls challenged again after the restart\n${report}`).to.be.greaterThan(0);
    expect(run.run.signal, `sipp must exit by itself (-m ${CALLS})\n${report}`).to.equal(null);
    expect(run.run.code, `sipp must exit 0 (every call answered 202)\n${report}`).to.equal(0);
    expect(stat(run, 'SuccessfulCall'), report).to.equal(CALLS);
    expect(stat(run, 'FailedCall'), report).to.equal(0);
    expect(log.issued.size, `calls SIPp sent a MESSAGE for\n${report}`).to.equal(CALLS);
    expect(log.accepted.size, `distinct calls answered 202 in SIPp's message log\n${report}`).to.equal(CALLS);

    const bob = start(['listen', '--json', '--server', `sip:${HOST}:${port};transport=tcp`, '--user', `bob@${DOMAIN}`, '--password', BOB_PASSWORD], { PARLEY_HOME: tempDir('sipp-bob') });
    servers.push(bob);
    const expected = [...log.accepted].sort((a, b) => a - b).map((n) => `sipp message ${n}\r\n`);
    await bob.waitFor(() => new Set(printed(bob).map((m) => m.text)).size >= expected.length, `bob printing all ${expected.length} accepted messages`, 60_000, () => report);
    await sleep(2000); // duplicates would show up now
    const got = printed(bob);
    const texts = got.map((m) => m.text);
    const duplicates = texts.filter((t, i) => texts.indexOf(t) !== i);
    expect(duplicates, `printed twice\n${tail(bob.transcript())}`).to.deep.equal([]);
    expect([...texts].sort(), `printed = the accepted ones, each once\n${tail(bob.transcript())}`).to.deep.equal([...expected].sort());
    const neverSent = got.filter((m) => !log.issued.has(Number(/^sipp message (\d+)\r\n$/.exec(m.text)?.[1])));
    expect(neverSent, 'printed but never sent').to.deep.equal([]);
    for (const message of got) {
      const n = Number(/^sipp message (\d+)/.exec(message.text)![1]);
      expect(message.messageId, message.text).to.equal(`sipp-${log.acceptedCallIds.get(n)!}`);
      expect([message.from, message.to], message.text).to.deep.equal([`alice@${DOMAIN}`, `bob@${DOMAIN}`]);
    }
    expect(await bob.stop('SIGTERM'), bob.transcript()).to.equal(0);
  });
});

describe('SIPp with -au/-ap reads only the first WWW-Authenticate: the order decides who gets in', function () {
  this.timeout(60_000);
  const servers: ParleyServer[] = [];
  const dirs: string[] = [];

  before(function () {
    requireSipp(this, 'SIPp digest tests');
    workDir ??= mkdtempSync(join(tmpdir(), 'parley-sipp-digest-'));
  });
  after(releaseWorkDir);
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') keepWorkDir = true;
    await killSipp();
    for (const server of servers.splice(0)) await server.stop();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function tryLogin(label: string, digestAlgorithms: Array<'MD5' | 'SHA-256' | 'SHA-512-256'> | undefined): Promise<ScenarioRun> {
    const data = mkdtempSync(join(tmpdir(), 'parley-sipp-order-'));
    dirs.push(data);
    const server = await ParleyServer.start(
      { domains: [DOMAIN], listen: [`udp:${HOST}:0`], data, ...(digestAlgorithms ? { digestAlgorithms } : {}) },
      { logger: silent },
    );
    servers.push(server);
    for (const user of ['alice', 'bob']) server.store.addAccount(`sip:${user}@${DOMAIN}`, accountHashes(`sip:${user}@${DOMAIN}`, user === 'alice' ? ALICE_PASSWORD : BOB_PASSWORD));
    const args = sippArgs(server.transports[0]!.local.port, await freePort(), 3, 10).map((a) => (a === '90s' ? '20s' : a));
    return runScenario({ workDir: workDir!, name: `${++runNumber}-${label}`, killAfterMs: 40_000, args });
  }

  for (const [label, algorithms] of [
    ['the default order (SHA-512-256, SHA-256, MD5)', undefined],
    ['SHA-256, MD5', ['SHA-256', 'MD5']],
  ] as const) {
    it(`${label}: SIPp cannot log in — it gives up on the first call, nothing succeeds`, async () => {
      const run = await tryLogin(label.replace(/\W+/g, '-'), algorithms === undefined ? undefined : [...algorithms]);
      expect(run.run.signal, run.report).to.equal(null);
      expect(run.run.code, `sipp must fail\n${run.report}`).to.not.equal(0);
      expect(Number(run.stats['SuccessfulCall(C)'] ?? 0), run.report).to.equal(0);
      const said = `${run.run.stdout}\n${run.run.stderr}\n${readErrors(run)}`;
      expect(said, run.report).to.match(/authentication must use MD5/);
    });
  }

  it('MD5 first (MD5, SHA-512-256): SIPp logs in, 3 of 3 calls answered 202', async () => {
    const run = await tryLogin('md5-first', ['MD5', 'SHA-512-256']);
    expect(run.run.code, run.report).to.equal(0);
    expect(stat(run, 'SuccessfulCall'), run.report).to.equal(3);
    expect(stat(run, 'FailedCall'), run.report).to.equal(0);
  });
});

/** SIPp's -trace_err log of a run (where it writes why it stopped). */
function readErrors(run: ScenarioRun): string {
  try {
    return readFileSync(join(run.dir, 'errors.log'), 'latin1');
  } catch {
    return '';
  }
}
