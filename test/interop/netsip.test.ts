// Interoperability with a SIP user agent Parley did not write: Perl's Net::SIP (Debian package
// libnet-sip-perl), driven by test/interop/netsip-ua.pl over UDP. A ParleyServer runs in-process
// with alice and carol; alice is a ParleyClient over TCP, carol is the Perl UA. Checked:
//  - Net::SIP registers carol with digest (it answers the MD5 challenge of the three the server
//    offers: SHA-512-256, SHA-256, MD5) and the server keeps its Contact as carol's binding;
//  - Net::SIP's text/plain MESSAGE to alice (digest-challenged like the REGISTER) is answered 202,
//    stored, and reaches alice's client as a message from carol@localhost with the exact text;
//  - alice's send() reaches the Perl UA as a MESSAGE to its Contact with the stored message/cpim
//    body (From/To of the original, inner text/plain with the exact text), which it answers 200:
//    the server reports the delivery to that device and alice gets the IMDN delivery notification;
//    a message alice sent before the Perl UA registered is delivered too, first (log order);
//  - the Perl UA unregisters (Expires: 0) and the binding is gone;
//  - a MESSAGE to an account that does not exist is answered 404;
//  - the wrong password fails to register (401) and leaves no binding.
//
// Without Net::SIP (`perl -MNet::SIP -e1` fails) the suite is skipped, except on CI (CI=true)
// where it fails, like the SIPp interop tests.
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ParleyClient, ParleyServer, digestHa1, type ChatMessage } from '../../src/index.js';
import { repoRoot } from '../support/parley-responder.js';
import { onCi } from '../support/sipp.js';
import { within } from '../support/waiting.js';

const UA = join(repoRoot, 'test', 'interop', 'netsip-ua.pl');
const HOST = '127.0.0.1';
const DOMAIN = 'localhost';
// Each test has its own Perl-side user, so one failing leaves nothing behind for the next.
const PASSWORDS = { alice: 'alice-pw-7', carol: 'carol pw with spaces 9', dave: 'dave-pw', erin: 'erin-pw' };
const FROM_PERL = 'Grüße aus Perl ✓ — Net::SIP';
const FROM_ALICE = 'hello Perl, from Parley: ünïcødé ✓';
const FROM_ALICE_EARLIER = 'sent while carol had no device registered';
const IO_MS = 15_000;
const PERL_TIMEOUT_S = 15;

/** What a run of netsip-ua.pl printed, and a way to wait for a line of it. */
interface PerlUa {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** The first line matching `pattern` (already printed or still to come). */
  line(pattern: RegExp, what: string): Promise<RegExpMatchArray>;
  exit: Promise<number | null>;
  /** Everything printed, for assertion messages. */
  transcript(): string;
}

const running = new Set<ChildProcess>();

function startPerlUa(args: Record<string, string | number>): PerlUa {
  const argv = [UA];
  for (const [key, value] of Object.entries(args)) argv.push(`--${key}`, String(value));
  const child = spawn('perl', argv, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  const exit = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      running.delete(child);
      if (partial !== '') lines.push(partial);
      partial = '';
      for (const wake of waiters.splice(0)) wake();
      resolve(code);
    }),
  );
  let closed = false;
  void exit.then(() => (closed = true));
  const transcript = () => `netsip-ua.pl ${argv.slice(1).join(' ')}\nstdout:\n${lines.join('\n')}\nstderr:\n${stderr}`;
  const line = (pattern: RegExp, what: string) =>
    within(
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const look = () => {
          for (const text of lines) {
            const match = pattern.exec(text);
            if (match) return resolve(match);
          }
          if (closed) return reject(new Error(`${what}: the Perl UA exited without printing it\n${transcript()}`));
          waiters.push(look);
        };
        look();
      }),
      `${what}\n${transcript()}`,
      IO_MS,
    );
  return { child, lines, stderr: () => stderr, line, exit, transcript };
}

/** Splits a CPIM body (RFC 3862) into its message headers, content headers and content. */
function splitCpim(body: string): { headers: string; contentHeaders: string; content: string } {
  const blank = /\r?\n\r?\n/g;
  const first = blank.exec(body);
  if (!first) throw new Error(`not CPIM (no blank line): ${JSON.stringify(body)}`);
  const second = blank.exec(body);
  if (!second) throw new Error(`not CPIM (no second blank line): ${JSON.stringify(body)}`);
  return {
    headers: body.slice(0, first.index),
    contentHeaders: body.slice(first.index + first[0].length, second.index),
    content: body.slice(second.index + second[0].length),
  };
}

/** Checks one `RECEIVED` line of the Perl UA: alice's message `messageId` with exactly `text`. */
function expectCpimFromAlice(received: RegExpMatchArray | undefined, messageId: string, text: string): void {
  expect(received, `a RECEIVED line for ${messageId}`).to.not.equal(undefined);
  const [, from, contentType, json] = received!;
  expect(from, 'From of the delivered MESSAGE = the original sender').to.equal(`sip:alice@${DOMAIN}`);
  expect(contentType, 'the stored Content-Type, unchanged').to.equal('message/cpim');
  const body = JSON.parse(json!) as string;
  const cpim = splitCpim(body);
  expect(cpim.headers, body).to.match(new RegExp(`^From: .*<sip:alice@${DOMAIN}>\\r?$`, 'm'));
  expect(cpim.headers, body).to.match(new RegExp(`^To: .*<sip:carol@${DOMAIN}>\\r?$`, 'm'));
  expect(cpim.headers, body).to.match(new RegExp(`^imdn\\.Message-ID: ${messageId}\\r?$`, 'm'));
  expect(cpim.contentHeaders, body).to.match(/^Content-Type: text\/plain(;\s*charset=utf-8)?\r?$/im);
  expect(cpim.content, 'the CPIM content is exactly the text alice sent').to.equal(text);
}

function hashes(user: string, password: string) {
  return {
    MD5: digestHa1('MD5', user, DOMAIN, password),
    'SHA-256': digestHa1('SHA-256', user, DOMAIN, password),
    'SHA-512-256': digestHa1('SHA-512-256', user, DOMAIN, password),
  };
}

describe('interop: Perl Net::SIP user agent through the Parley server', function () {
  this.timeout(60_000);

  let dir: string;
  let server: ParleyServer;
  let alice: ParleyClient | undefined;
  let udpPort: number;
  let tcpPort: number;
  const serverLog: string[] = [];
  const logger = {
    info: (message: string) => void serverLog.push(`info: ${message}`),
    warn: (message: string) => void serverLog.push(`warn: ${message}`),
    error: (message: string) => void serverLog.push(`error: ${message}`),
  };

  before(async function () {
    const probe = spawnSync('perl', ['-MNet::SIP', '-e1'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      const why = `libnet-sip-perl is missing: "perl -MNet::SIP -e1" failed (${probe.error?.message ?? probe.stderr.trim().split('\n')[0] ?? `exit ${probe.status}`})`;
      if (onCi()) throw new Error(`${why}; CI is set, so the Net::SIP interop tests cannot be skipped`);
      // mocha's skip() takes no reason, so say it here.
      process.stderr.write(`Net::SIP interop tests skipped: ${why}\n`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'parley-netsip-'));
    server = await ParleyServer.start(
      { domains: [DOMAIN], listen: [`udp:${HOST}:0`, `tcp:${HOST}:0`], data: join(dir, 'data') },
      { logger },
    );
    for (const [user, password] of Object.entries(PASSWORDS)) server.store.addAccount(`sip:${user}@${DOMAIN}`, hashes(user, password));
    const port = (protocol: string) => {
      const transport = server.transports.find((t) => t.protocol === protocol);
      if (!transport) throw new Error(`the server has no ${protocol} transport`);
      return transport.local.port;
    };
    udpPort = port('udp');
    tcpPort = port('tcp');
  });

  afterEach(function () {
    for (const child of running) child.kill('SIGKILL');
    if (this.currentTest?.state === 'failed') process.stderr.write(`server log:\n${serverLog.join('\n')}\n`);
    serverLog.length = 0;
  });

  after(async function () {
    await alice?.close().catch(() => undefined);
    await server?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('registers with digest, sends a MESSAGE to a Parley client and receives its messages, the one stored while offline first', async function () {
    alice = await ParleyClient.connect({
      server: `sip:${HOST}:${tcpPort};transport=tcp`,
      user: `alice@${DOMAIN}`,
      password: PASSWORDS.alice,
      stateDir: join(dir, 'alice'),
    });
    const aliceGot: ChatMessage[] = [];
    alice.on('message', (message) => aliceGot.push(message));
    const notified: { messageId: string; by: string }[] = [];
    alice.on('delivered', (messageId, by) => notified.push({ messageId, by }));
    const stored: { sender: string; recipient: string; contentType: string }[] = [];
    server.on('stored', (message) => stored.push(message));
    const delivered: { recipient: string; sender: string; device: string }[] = [];
    server.on('delivered', (message, device) => delivered.push({ recipient: message.recipient, sender: message.sender, device }));

    // Stored for carol before she has any device: delivered when the Perl UA registers.
    const earlier = await within(alice.send(`carol@${DOMAIN}`, FROM_ALICE_EARLIER), 'alice sending to offline carol', IO_MS);
    expect(earlier.status, `alice's send: ${earlier.status} ${earlier.reason}`).to.equal(202);

    const ua = startPerlUa({
      server: `${HOST}:${udpPort}`,
      user: 'carol',
      password: PASSWORDS.carol,
      domain: DOMAIN,
      to: `sip:alice@${DOMAIN}`,
      text: FROM_PERL,
      expect: 2,
      timeout: PERL_TIMEOUT_S,
    });
    const [, perlAddress] = await ua.line(/^LISTENING (\S+)$/, 'the Perl UA bound its socket');
    const perlContact = `sip:carol@${perlAddress}`;

    // Net::SIP's REGISTER: 401 with three challenges, it answers MD5, then 200.
    await ua.line(/^REGISTER(ED|-FAILED) /, 'the Perl UA registered');
    expect(ua.lines, ua.transcript()).to.include('REGISTERED 200');
    const bindings = server.store.get(`sip:carol@${DOMAIN}`);
    expect(bindings, 'carol has one binding, the Perl UA').to.have.length(1);
    expect(JSON.stringify(bindings[0]), 'the binding is the Perl UA Contact').to.include(perlContact);

    // Net::SIP → alice: 202 Accepted, stored, then alice's client emits it.
    await ua.line(/^SENT/, "the Perl UA's MESSAGE got a final answer");
    expect(ua.lines, ua.transcript()).to.include('SENT 202');
    expect(stored.map((m) => [m.sender, m.recipient]), 'stored for alice').to.deep.include([`sip:carol@${DOMAIN}`, `sip:alice@${DOMAIN}`]);
    await within(
      (async () => {
        while (aliceGot.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      "alice's client emitting the Perl UA's message",
      IO_MS,
    );
    expect(aliceGot, 'exactly one message for alice').to.have.length(1);
    const fromPerl = aliceGot[0]!;
    expect(fromPerl.from).to.equal(`carol@${DOMAIN}`);
    expect(fromPerl.to).to.equal(`alice@${DOMAIN}`);
    expect(fromPerl.text).to.equal(FROM_PERL);
    expect(fromPerl.contentType, 'the Content-Type Net::SIP sent, unchanged').to.equal('text/plain;charset=utf-8');
    expect(fromPerl.body.equals(Buffer.from(FROM_PERL, 'utf8')), 'the body bytes unchanged').to.equal(true);
    expect(fromPerl.messageId).to.be.a('string').and.not.equal('');

    // alice → Net::SIP: accepted, delivered to the Perl UA's Contact as message/cpim, answered 200.
    const sent = await within(alice.send(`carol@${DOMAIN}`, FROM_ALICE), 'alice sending to carol', IO_MS);
    expect(sent.status, `alice's send: ${sent.status} ${sent.reason}`).to.equal(202);
    await ua.line(/^(DONE|TIMEOUT) /, 'the Perl UA receiving both of alice’s MESSAGEs');
    const received = ua.lines.map((l) => /^RECEIVED (\S+) (\S+) (".*")$/.exec(l)).filter((m) => m !== null);
    expect(received, `two MESSAGEs delivered to the Perl UA\n${ua.transcript()}`).to.have.length(2);
    expectCpimFromAlice(received[0], earlier.messageId, FROM_ALICE_EARLIER);
    expectCpimFromAlice(received[1], sent.messageId, FROM_ALICE);

    expect(await within(ua.exit, 'the Perl UA exiting', IO_MS), ua.transcript()).to.equal(0);
    expect(ua.lines, ua.transcript()).to.include.members(['DONE 2', 'UNREGISTERED 200']);

    // The Perl UA's 200 is the delivery: to its device (its Contact: Net::SIP sends no +sip.instance),
    // then alice gets the IMDN delivery notification for that message.
    expect(
      delivered.filter((d) => d.recipient === `sip:carol@${DOMAIN}`),
      'server delivered events for carol: both to the Perl UA',
    ).to.deep.equal([
      { recipient: `sip:carol@${DOMAIN}`, sender: `sip:alice@${DOMAIN}`, device: perlContact },
      { recipient: `sip:carol@${DOMAIN}`, sender: `sip:alice@${DOMAIN}`, device: perlContact },
    ]);
    await within(
      (async () => {
        while (notified.length < 2) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      "alice's two delivery notifications",
      IO_MS,
    );
    expect(
      notified.map((n) => ({ messageId: n.messageId, by: n.by.replace(/^sip:/, '') })),
      'delivery notifications, by carol',
    ).to.have.deep.members([
      { messageId: earlier.messageId, by: `carol@${DOMAIN}` },
      { messageId: sent.messageId, by: `carol@${DOMAIN}` },
    ]);
    expect(aliceGot, 'the notification is not a chat message').to.have.length(1);

    // Unregistered (Expires: 0): no binding left.
    expect(server.store.get(`sip:carol@${DOMAIN}`), 'carol has no binding after Expires: 0').to.have.length(0);
  });

  it('gets 404 for a MESSAGE to an account that does not exist', async function () {
    const ua = startPerlUa({
      server: `${HOST}:${udpPort}`,
      user: 'erin',
      password: PASSWORDS.erin,
      domain: DOMAIN,
      to: `sip:nobody@${DOMAIN}`,
      text: 'anyone there?',
      expect: 0,
      timeout: PERL_TIMEOUT_S,
    });
    expect(await within(ua.exit, 'the Perl UA exiting', IO_MS), ua.transcript()).to.equal(3);
    expect(ua.lines, ua.transcript()).to.include.members(['REGISTERED 200', 'SENT 404', 'UNREGISTERED 200']);
  });

  it('fails to register with the wrong password (401) and leaves no binding', async function () {
    const ua = startPerlUa({
      server: `${HOST}:${udpPort}`,
      user: 'dave',
      password: `${PASSWORDS.dave}-wrong`,
      domain: DOMAIN,
      timeout: PERL_TIMEOUT_S,
    });
    expect(await within(ua.exit, 'the Perl UA exiting', IO_MS), ua.transcript()).to.equal(1);
    expect(ua.lines.filter((l) => /^REGISTER/.test(l)), ua.transcript()).to.deep.equal(['REGISTER-FAILED 401']);
    expect(server.store.get(`sip:dave@${DOMAIN}`), 'no binding for dave').to.have.length(0);
  });
});
