// Interoperability of the dialog usage manager (docs/dum.md) with SIPp (Debian `sip-tester`):
//
//  1. SIPp as a registering client against a DUM `Registrar` with a `DigestAuthenticator`
//     (test/interop/register-md5-uac.xml): REGISTER → 401 → REGISTER with SIPp's own MD5
//     `Authorization` (qop=auth) → 200, for 20 calls at once, each registering its own contact
//     for sip:alice@parley.test. SIPp must count 20 successful calls and exit 0, the
//     authenticator must have accepted exactly 20 MD5 credentials of alice, and
//     `registrar.lookup` must list exactly those 20 contacts.
//       - A wrong password with the same scenario: every call fails on the second 401 (SIPp exits 1)
//         and nothing is bound — the first test can fail.
//       - A wrong password with register-md5-rejected-uac.xml (which expects the second 401): 20
//         successful calls, nothing bound.
//       - Several challenges: the authenticator offering MD5, SHA-256 and SHA-512-256 (one
//         WWW-Authenticate each, MD5 first). SIPp 3.6 computes only MD5 and reads only the first
//         WWW-Authenticate of a 401, so MD5 has to come first; with the default order
//         (SHA-512-256 first) SIPp stops at the first call with "createAuthHeader: authentication
//         must use MD5 or AKAv1-MD5" (exit 255), which is why the other tests offer MD5 alone.
//  2. MESSAGE to a registered DUM client (test/interop/message-to-client-uac.xml): a client DUM
//     registers sip:bob@parley.test with a registrar DUM (no authentication, through its
//     outboundProxy); the registrar is not a proxy, so SIPp plays the proxy's last hop and sends
//     50 MESSAGEs straight to the client with the Request-URI set to the contact
//     `registrar.lookup` returns and To the AOR. The client's onMessage answer is what SIPp must
//     see for every call (200, then 202; 486 fails every call), and the handler must see each
//     MESSAGE exactly once: 50 calls, 50 distinct Call-IDs, bodies 1…50 once each. With SIPp's
//     `-lost 10` (10% of what it sends and receives dropped) SIPp retransmits, the client's
//     server transactions absorb the retransmissions, and the handler still sees each MESSAGE once.
//
// Everything runs on 127.0.0.1 over UDP. No sipp on PATH: skipped, except on CI (CI=true) where
// it fails. PARLEY_INTEROP_VERBOSE=1 prints each SIPp run's figures.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRequest,
  DialogUsageManager,
  DigestAuthenticator,
  MemoryCredentialStore,
  MemoryLocationStore,
  parseNameAddr,
  parseUri,
  Registrar,
  SipStack,
  systemClock,
  type AuthOutcome,
  type ClientRegistration,
  type DigestAlgorithm,
  type IncomingMessage,
  type SipUri,
  type StoredBinding,
} from '../../src/index.js';
import { repoRoot } from '../support/parley-responder.js';
import { freePort, killAll, requireSipp } from '../support/sipp.js';
import { count, runScenario, stat, sumCounts, type ScenarioRun } from '../support/sipp-scenario.js';

const HOST = '127.0.0.1';
const DOMAIN = 'parley.test';
const REGISTER_UAC = join(repoRoot, 'test', 'interop', 'register-md5-uac.xml');
const REGISTER_REJECTED_UAC = join(repoRoot, 'test', 'interop', 'register-md5-rejected-uac.xml');
const MESSAGE_TO_CLIENT_UAC = join(repoRoot, 'test', 'interop', 'message-to-client-uac.xml');
const verbose = process.env.PARLEY_INTEROP_VERBOSE === '1';

const ALICE = 'alice';
const ALICE_PASSWORD = 'alice-secret';
const ALICE_AOR = `sip:${ALICE}@${DOMAIN}`;
const BOB_AOR = `sip:bob@${DOMAIN}`;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

let workDir: string | undefined;
let keepWorkDir = false;
let runNumber = 0;

function requireWorkDir(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'parley-dum-sipp-'));
  return workDir;
}

async function releaseWorkDir(): Promise<void> {
  await killAll();
  if (workDir === undefined) return;
  if (keepWorkDir) process.stderr.write(`SIPp logs of the failed DUM interop runs are kept in ${workDir}\n`);
  else rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
  keepWorkDir = false;
}


function keepLogsOnFailure(this: Mocha.Context): void {
  if (this.currentTest?.state === 'failed') keepWorkDir = true;
}


function summary(label: string, run: ScenarioRun): void {
  if (!verbose) return;
  const pick = ['OutgoingCall', 'SuccessfulCall', 'FailedCall', 'FailedUnexpectedMessage', 'FailedMaxUDPRetrans', 'Retransmissions'];
  const figures = pick.map((k) => `${k}=${run.stats[`${k}(C)`] ?? '?'}`).join(' ');
  const counts = Object.entries(run.counts)
    .filter(([, v]) => v !== 0)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  process.stderr.write(`      [${label}] ${run.run.elapsedMs} ms; ${figures}; counts: ${counts}\n`);
}

function expectAllSucceeded(run: ScenarioRun, calls: number, extra = ''): void {
  const report = `${run.report}${extra}`;
  expect(run.run.signal, `sipp must exit by itself (-m ${calls})\n${report}`).to.equal(null);
  expect(run.run.code, `sipp must exit 0 (all calls successful)\n${report}`).to.equal(0);
  expect(stat(run, 'OutgoingCall'), report).to.equal(calls);
  expect(stat(run, 'SuccessfulCall'), report).to.equal(calls);
  expect(stat(run, 'FailedCall'), report).to.equal(0);
}

/** Every call failed on an unexpected response (not a timeout), and sipp said so with exit 1. */
function expectAllFailedUnexpected(run: ScenarioRun, calls: number, extra = ''): void {
  const report = `${run.report}${extra}`;
  expect(run.run.signal, `sipp must exit by itself\n${report}`).to.equal(null);
  expect(run.run.code, `sipp's exit code for "at least one call failed" is 1\n${report}`).to.equal(1);
  expect(stat(run, 'OutgoingCall'), report).to.equal(calls);
  expect(stat(run, 'SuccessfulCall'), report).to.equal(0);
  expect(stat(run, 'FailedCall'), report).to.equal(calls);
  expect(stat(run, 'FailedUnexpectedMessage'), report).to.equal(calls);
  expect(sumCounts(run.counts, /_Unexp$/), report).to.equal(calls);
}

/** A promise that gives up after `ms` (cleanup must not hang the suite on a DUM bug). */
async function bounded(what: string, promise: Promise<unknown>, ms = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms);
  });
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** user@host:port of a stored contact, whether it is kept as a bare URI or as a name-addr. */
function contactUri(contact: string): SipUri {
  return contact.includes('<') ? parseNameAddr(contact).uri : parseUri(contact);
}

function contactKey(contact: string): string {
  const uri = contactUri(contact);
  return `${uri.user ?? ''}@${uri.host}:${uri.port ?? 5060}`;
}

/** Who the authenticator let in, and with which algorithm, in order. */
function accepted(server: RegistrarUnderTest): { username: string; realm: string; algorithm: DigestAlgorithm }[] {
  return server.outcomes.flatMap((o) => (o.ok ? [{ username: o.username, realm: o.realm, algorithm: o.algorithm }] : []));
}

function describeBindings(bindings: StoredBinding[]): string {
  return bindings.map((b) => `  ${b.contact} (Call-ID ${b.callId}, CSeq ${b.cseq}, expires at ${b.expiresAt})`).join('\n') || '  (none)';
}

// ---------------------------------------------------------------------------------------------
// A registrar DUM on its own stack
// ---------------------------------------------------------------------------------------------

interface RegistrarUnderTest {
  stack: SipStack;
  dum: DialogUsageManager;
  registrar: Registrar;
  authenticator: DigestAuthenticator | undefined;
  port: number;
  /** Every outcome of authenticator.authenticate, in order. */
  outcomes: AuthOutcome[];
  /** Every 'bindings' event: [aor, number of bindings]. */
  changes: [string, number][];
  /** The registrar's side of a failure message. */
  describe(): Promise<string>;
  stop(): Promise<void>;
}

async function startRegistrar(options: { algorithms?: DigestAlgorithm[]; authenticate: boolean }): Promise<RegistrarUnderTest> {
  const stack = new SipStack({ transports: [`udp:${HOST}:0`] });
  await stack.start();
  const dum = new DialogUsageManager(stack);
  const outcomes: AuthOutcome[] = [];
  let authenticator: DigestAuthenticator | undefined;
  if (options.authenticate) {
    const credentials = new MemoryCredentialStore();
    credentials.add(ALICE, DOMAIN, ALICE_PASSWORD);
    authenticator = new DigestAuthenticator({
      realm: DOMAIN,
      credentials,
      ...(options.algorithms === undefined ? {} : { algorithms: options.algorithms }),
    });
    // Record what the authenticator decided for every REGISTER the registrar asked it about.
    const authenticate = authenticator.authenticate.bind(authenticator);
    authenticator.authenticate = async (request, authOptions) => {
      const outcome = await authenticate(request, authOptions);
      outcomes.push(outcome);
      return outcome;
    };
  }
  const registrar = new Registrar(dum, {
    domains: [DOMAIN],
    store: new MemoryLocationStore(),
    ...(authenticator === undefined ? {} : { authenticator }),
  });
  const changes: [string, number][] = [];
  registrar.on('bindings', (aor, bindings) => changes.push([aor, bindings.length]));
  const port = stack.transports[0]!.local.port;
  return {
    stack,
    dum,
    registrar,
    authenticator,
    port,
    outcomes,
    changes,
    async describe() {
      const ok = outcomes.filter((o) => o.ok).length;
      const refused = outcomes.filter((o) => !o.ok).map((o) => (o.ok ? '' : `${o.status} ${o.reason}`));
      let bindings: string;
      try {
        bindings = describeBindings(await registrar.lookup(ALICE_AOR));
      } catch (error) {
        bindings = `  lookup failed: ${(error as Error).message}`;
      }
      return [
        `\nregistrar udp:${HOST}:${port}: ${changes.length} 'bindings' events`,
        `authenticate(): ${ok} accepted, ${refused.length} refused${refused.length > 0 ? ` (first: ${refused.slice(0, 3).join('; ')})` : ''}`,
        `bindings of ${ALICE_AOR}:\n${bindings}`,
      ].join('\n');
    },
    async stop() {
      try {
        await bounded('registrar dum.close()', dum.close());
      } finally {
        await stack.stop();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 1. SIPp registers with MD5 digest
// ---------------------------------------------------------------------------------------------

describe('DUM interop: SIPp registers with MD5 digest at a DUM Registrar (UDP)', function () {
  this.timeout(90_000);
  const CALLS = 20;
  let server: RegistrarUnderTest | undefined;

  before(function () {
    requireSipp(this, 'SIPp DUM interop tests');
    requireWorkDir();
  });

  afterEach(keepLogsOnFailure);
  afterEach(async function () {
    await killAll();
    await server?.stop();
    server = undefined;
  });
  after(releaseWorkDir);

  /** Runs `scenario` as alice with `password`, 20 calls at once, from a known local port. */
  async function register(scenario: string, password: string, name: string): Promise<{ run: ScenarioRun; sippPort: number }> {
    const sippPort = await freePort(HOST);
    const run = await runScenario({
      workDir: workDir!,
      name: `${++runNumber}-${name}`,
      killAfterMs: 60_000,
      args: [
        '-sf', scenario, `${HOST}:${server!.port}`,
        '-t', 'u1', '-i', HOST, '-p', String(sippPort),
        '-s', ALICE, '-au', ALICE, '-ap', password,
        '-key', 'domain', DOMAIN,
        // The digest uri must be the Request-URI (sip:parley.test); SIPp's default is
        // sip:[remote_ip]:[remote_port].
        '-auth_uri', DOMAIN,
        '-m', String(CALLS), '-r', '1000', '-rp', '1000',
        '-default_behaviors', 'abortunexp',
        '-recv_timeout', '10000',
        '-timeout', '45s', '-timeout_error',
      ],
    });
    summary(name, run);
    return { run, sippPort };
  }

  /** alice's 20 contacts are bound, one per call, exactly as SIPp registered them. */
  async function expectTwentyBindings(run: ScenarioRun, sippPort: number): Promise<void> {
    const report = `${run.report}${await server!.describe()}`;
    const bindings = await server!.registrar.lookup(ALICE_AOR);
    const expected = Array.from({ length: CALLS }, (_, i) => `${ALICE}-${i + 1}@${HOST}:${sippPort}`).sort();
    expect(bindings.map((b) => contactKey(b.contact)).sort(), `the contacts bound for ${ALICE_AOR}\n${report}`).to.deep.equal(expected);
    // Each call is its own registration (Call-ID) and its binding came from the authenticated
    // REGISTER (CSeq 2); the expiry is the requested hour, in the future.
    expect(new Set(bindings.map((b) => b.callId)).size, report).to.equal(CALLS);
    expect(bindings.map((b) => b.cseq), report).to.deep.equal(Array(CALLS).fill(2));
    // The stacks run on the system clock (no clock option), so expiresAt is on its scale.
    const now = systemClock.now();
    for (const b of bindings) {
      expect(b.expiresAt - now, `${b.contact} expires in ${b.expiresAt - now} ms\n${report}`).to.be.within(3_500_000, 3_600_000);
    }
    // Looking up the same AOR in another form finds the same bindings.
    expect(await server!.registrar.lookup(parseUri(ALICE_AOR)), report).to.have.length(CALLS);
    expect(await server!.registrar.lookup(`sip:bob@${DOMAIN}`), report).to.deep.equal([]);
  }

  it(`MD5 only: ${CALLS} REGISTER → 401 → REGISTER with Authorization → 200 calls all succeed, and ${CALLS} contacts are bound`, async function () {
    server = await startRegistrar({ authenticate: true, algorithms: ['MD5'] });
    const { run, sippPort } = await register(REGISTER_UAC, ALICE_PASSWORD, 'register-md5');
    const report = `${run.report}${await server.describe()}`;
    expectAllSucceeded(run, CALLS, await server.describe());
    // Steps: 0 REGISTER, 1 100?, 2 401, 3 REGISTER with Authorization, 4 100?, 5 200.
    expect(count(run, '0_REGISTER_Sent'), report).to.equal(CALLS);
    expect(count(run, '2_401_Recv'), report).to.equal(CALLS);
    expect(count(run, '3_REGISTER_Sent'), report).to.equal(CALLS);
    expect(count(run, '5_200_Recv'), report).to.equal(CALLS);
    // The authenticator accepted SIPp's MD5 credentials once per call, for alice in our realm.
    expect(accepted(server), report).to.deep.equal(Array(CALLS).fill({ username: ALICE, realm: DOMAIN, algorithm: 'MD5' }));
    await expectTwentyBindings(run, sippPort);
    // One change of alice's binding set per successful REGISTER, each adding one binding (the
    // registrar handles one AOR's requests one at a time).
    expect(server.changes.map(([, n]) => n), report).to.deep.equal(Array.from({ length: CALLS }, (_, i) => i + 1));
    expect(new Set(server.changes.map(([aor]) => aor)).size, report).to.equal(1);
    expect(server.changes[0]![0], report).to.include(`${ALICE}@${DOMAIN}`);
  });

  it(`wrong password (scenario expecting 200): every call fails on the second 401, sipp exits 1, nothing is bound`, async function () {
    server = await startRegistrar({ authenticate: true, algorithms: ['MD5'] });
    const { run } = await register(REGISTER_UAC, 'not-the-password', 'register-md5-wrong-password');
    const report = `${run.report}${await server.describe()}`;
    expectAllFailedUnexpected(run, CALLS, await server.describe());
    // The first 401 came and SIPp answered it; what failed the call is the answer to that.
    expect(count(run, '2_401_Recv'), report).to.equal(CALLS);
    expect(count(run, '3_REGISTER_Sent'), report).to.equal(CALLS);
    expect(count(run, '5_200_Recv'), report).to.equal(0);
    expect(accepted(server), report).to.deep.equal([]);
    expect(await server.registrar.lookup(ALICE_AOR), report).to.deep.equal([]);
    expect(server.changes, report).to.deep.equal([]);
  });

  it(`wrong password (register-md5-rejected-uac.xml): the authenticated REGISTER is challenged again in all ${CALLS} calls`, async function () {
    server = await startRegistrar({ authenticate: true, algorithms: ['MD5'] });
    const { run } = await register(REGISTER_REJECTED_UAC, 'not-the-password', 'register-md5-rejected');
    const report = `${run.report}${await server.describe()}`;
    expectAllSucceeded(run, CALLS, await server.describe());
    // Steps: 0 REGISTER, 1 100?, 2 401, 3 REGISTER with Authorization, 4 100?, 5 401.
    expect(count(run, '2_401_Recv'), report).to.equal(CALLS);
    expect(count(run, '3_REGISTER_Sent'), report).to.equal(CALLS);
    expect(count(run, '5_401_Recv'), report).to.equal(CALLS);
    expect(accepted(server), report).to.deep.equal([]);
    expect(await server.registrar.lookup(ALICE_AOR), report).to.deep.equal([]);
    expect(server.changes, report).to.deep.equal([]);
  });

  it(`three challenges, MD5 first (MD5, SHA-256, SHA-512-256): SIPp answers the MD5 one, ${CALLS} calls succeed`, async function () {
    const algorithms: DigestAlgorithm[] = ['MD5', 'SHA-256', 'SHA-512-256'];
    server = await startRegistrar({ authenticate: true, algorithms });
    // The 401 SIPp gets carries one WWW-Authenticate per algorithm, in this order (RFC 8760 §2.4).
    const probe = createRequest({ method: 'REGISTER', uri: `sip:${DOMAIN}`, from: `<${ALICE_AOR}>`, to: `<${ALICE_AOR}>`, contact: `<sip:${ALICE}@${HOST}:5060>` });
    const challenge = server.authenticator!.challenge(probe);
    expect(challenge.status).to.equal(401);
    expect(challenge.wwwAuthenticate.map((c) => c.params.algorithm)).to.deep.equal(algorithms);
    expect(challenge.wwwAuthenticate.map((c) => c.scheme.toLowerCase())).to.deep.equal(['digest', 'digest', 'digest']);

    const { run, sippPort } = await register(REGISTER_UAC, ALICE_PASSWORD, 'register-md5-first-of-three');
    const report = `${run.report}${await server.describe()}`;
    expectAllSucceeded(run, CALLS, await server.describe());
    expect(count(run, '5_200_Recv'), report).to.equal(CALLS);
    expect(accepted(server), report).to.deep.equal(Array(CALLS).fill({ username: ALICE, realm: DOMAIN, algorithm: 'MD5' }));
    await expectTwentyBindings(run, sippPort);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. MESSAGE to a registered DUM client
// ---------------------------------------------------------------------------------------------

interface Seen {
  callId: string;
  requestUri: string;
  to: string;
  text: string;
}

describe('DUM interop: SIPp sends MESSAGE to a DUM client at its registered contact (UDP)', function () {
  this.timeout(120_000);
  const CALLS = 50;
  let server: RegistrarUnderTest | undefined;
  let clientStack: SipStack | undefined;
  let client: DialogUsageManager | undefined;
  let registration: ClientRegistration | undefined;
  /** The contact bob registered, as the registrar stored it. */
  let contact = '';
  let clientPort = 0;
  /** What bob's onMessage answers. */
  let answer = 200;
  let seen: Seen[] = [];

  before(async function () {
    requireSipp(this, 'SIPp DUM interop tests');
    requireWorkDir();
    server = await startRegistrar({ authenticate: false });
    clientStack = new SipStack({ transports: [`udp:${HOST}:0`] });
    await clientStack.start();
    clientPort = clientStack.transports[0]!.local.port;
    client = new DialogUsageManager(clientStack, { aor: BOB_AOR, outboundProxy: `sip:${HOST}:${server.port}` });
    client.onMessage((message: IncomingMessage) => {
      seen.push({
        callId: message.request.callId,
        requestUri: message.request.requestUri.toString(),
        to: message.to.uri.toString(),
        text: message.text,
      });
      return answer;
    });
    registration = client.register({ expires: 600 });
    await bounded(`bob's registration through udp:${HOST}:${server.port}`, registration.ready, 15_000);
    const bindings = await server.registrar.lookup(BOB_AOR);
    expect(bindings, `bob's bindings after registering:\n${describeBindings(bindings)}`).to.have.length(1);
    contact = bindings[0]!.contact;
    // The registered contact points at the client's UDP transport: that is where SIPp sends.
    const uri = contactUri(contact);
    expect(uri.host, contact).to.equal(HOST);
    expect(uri.port, contact).to.equal(clientPort);
    expect(uri.user, contact).to.equal('bob');
  });

  beforeEach(function () {
    seen = [];
    answer = 200;
  });

  afterEach(keepLogsOnFailure);

  after(async function () {
    await killAll();
    try {
      if (registration !== undefined && registration.state === 'registered') await bounded('unregister()', registration.unregister());
      if (client !== undefined) await bounded('client dum.close()', client.close());
    } finally {
      await clientStack?.stop();
      await server?.stop();
      clientStack = undefined;
      client = undefined;
      registration = undefined;
      server = undefined;
      await releaseWorkDir();
    }
  });

  async function sendMessages(name: string, extra: string[] = [], killAfterMs = 60_000): Promise<ScenarioRun> {
    const sippPort = await freePort(HOST);
    const run = await runScenario({
      workDir: workDir!,
      name: `${++runNumber}-${name}`,
      killAfterMs,
      args: [
        '-sf', MESSAGE_TO_CLIENT_UAC, `${HOST}:${clientPort}`,
        '-t', 'u1', '-i', HOST, '-p', String(sippPort),
        '-key', 'contact', contactUri(contact).toString(),
        '-key', 'aor', BOB_AOR,
        '-m', String(CALLS),
        ...extra,
        '-default_behaviors', 'abortunexp',
      ],
    });
    summary(name, run);
    return run;
  }

  function describeSeen(): string {
    return `\nclient udp:${HOST}:${clientPort} (contact ${contact}): onMessage saw ${seen.length} MESSAGEs\n${seen
      .slice(0, 5)
      .map((s) => `  ${s.callId} ${s.requestUri} To ${s.to}: ${JSON.stringify(s.text)}`)
      .join('\n')}`;
  }

  /** The handler saw each of SIPp's calls exactly once, addressed as SIPp addressed it. */
  function expectEachSeenOnce(run: ScenarioRun): void {
    const report = `${run.report}${describeSeen()}`;
    expect(seen, `onMessage calls\n${report}`).to.have.length(CALLS);
    expect(new Set(seen.map((s) => s.callId)).size, `distinct Call-IDs at onMessage\n${report}`).to.equal(CALLS);
    const numbers = seen.map((s) => /^Message (\d+) from SIPp to a registered Parley client\.\r?\n?$/.exec(s.text)?.[1]).map(Number);
    expect(numbers.sort((a, b) => a - b), `message numbers at onMessage\n${report}`).to.deep.equal(Array.from({ length: CALLS }, (_, i) => i + 1));
    const target = contactUri(contact).toString();
    for (const s of seen) {
      expect(parseUri(s.requestUri).toString(), report).to.equal(target);
      expect(parseUri(s.to).toString(), report).to.equal(BOB_AOR);
    }
  }

  for (const status of [200, 202]) {
    it(`onMessage answers ${status}: ${CALLS} MESSAGEs to the registered contact, SIPp sees ${CALLS} × ${status}, the handler sees each once`, async function () {
      answer = status;
      const run = await sendMessages(`message-${status}`, ['-r', '200', '-rp', '1000', '-recv_timeout', '10000', '-timeout', '45s', '-timeout_error']);
      const report = `${run.report}${describeSeen()}`;
      expectAllSucceeded(run, CALLS, describeSeen());
      // Steps: 0 MESSAGE, 1 100?, 2 202?, 3 200.
      expect(count(run, '0_MESSAGE_Sent'), report).to.equal(CALLS);
      expect(count(run, '2_202_Recv'), report).to.equal(status === 202 ? CALLS : 0);
      expect(count(run, '3_200_Recv'), report).to.equal(status === 200 ? CALLS : 0);
      expectEachSeenOnce(run);
    });
  }

  it(`onMessage answers 486: every call fails, sipp exits 1 (the test can fail), the handler still sees each once`, async function () {
    answer = 486;
    const run = await sendMessages('message-486', ['-r', '200', '-rp', '1000', '-recv_timeout', '10000', '-timeout', '45s', '-timeout_error']);
    const report = `${run.report}${describeSeen()}`;
    expectAllFailedUnexpected(run, CALLS, describeSeen());
    expect(count(run, '3_200_Recv') + count(run, '2_202_Recv'), report).to.equal(0);
    expectEachSeenOnce(run);
  });

  it(`-lost 10: SIPp drops 10% both ways and retransmits; all ${CALLS} calls succeed and the handler still sees each MESSAGE exactly once`, async function () {
    answer = 200;
    // A lost MESSAGE or 200 costs SIPp a retransmission at 500, 1000, 2000… ms (7 for a
    // non-INVITE): a call fails only if all 8 attempts lose the request or the response
    // (0.19^8 ≈ 2e-6 per call). Each retransmission reaching the client is answered by its
    // server transaction (Timer J = 64·T1 over UDP) and never reaches onMessage.
    const run = await sendMessages('message-lost-10', ['-r', '25', '-rp', '1000', '-lost', '10', '-timeout', '100s', '-timeout_error'], 110_000);
    const report = `${run.report}${describeSeen()}`;
    expectAllSucceeded(run, CALLS, describeSeen());
    expect(count(run, '3_200_Recv'), report).to.equal(CALLS);
    // The loss was real (P(nothing lost in 50 calls) ≈ 0.81^50 ≈ 3e-5).
    expect(sumCounts(run.counts, /_Lost$/), `SIPp lost nothing: -lost had no effect\n${report}`).to.be.greaterThan(0);
    expect(stat(run, 'Retransmissions'), `no retransmissions under 10% loss\n${report}`).to.be.greaterThan(0);
    expectEachSeenOnce(run);
  });
});
