// Pager MESSAGE (RFC 3428) and OPTIONS (RFC 3261 §11) between two DialogUsageManagers on two real
// SipStacks on 127.0.0.1, over UDP and over TCP, against docs/dum.md.
//
// Both stacks run on one ManualClock that no test advances: nothing here waits for a protocol
// timer, and no UDP retransmission can happen, so "exactly one MESSAGE on the wire" is exact. Real
// sockets still deliver: I/O is awaited by turning the event loop until a condition holds (capped
// in real time), and absence ("nothing was sent") is asserted after a short real-time drain.
//
// What went on the wire is read from the stack's diagnostics channels: `parley:message:out`
// ({ bytes, tuple }: exactly the bytes sent and where to) and `parley:message:in`
// ({ message, tuple }: what a stack received and from where). Both stacks publish to the same
// channels; tests tell the messages apart by Call-ID, method and direction.
import { expect } from 'chai';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:net';
import {
  DialogUsageManager,
  DigestAuthenticator,
  ManualClock,
  MemoryCredentialStore,
  SipStack,
  parseMessage,
  type IncomingMessage,
  type SipMessage,
  type Tuple,
} from '../../src/index.js';
import { sip } from '../support/sip-bytes.js';
import { safeCallId, token, UdpSipPeer } from '../support/udp-sip.js';
import { drain, IO_MS, until, within } from '../support/waiting.js';

type Protocol = 'udp' | 'tcp';
type DumOptions = NonNullable<ConstructorParameters<typeof DialogUsageManager>[1]>;
type AuthOutcome = Awaited<ReturnType<DigestAuthenticator['authenticate']>>;

const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------------------------
// The wire, from the diagnostics channels
// ---------------------------------------------------------------------------------------------

interface WireItem {
  dir: 'in' | 'out';
  message: SipMessage;
  /** For 'out': exactly the bytes that went on the wire. */
  bytes: Buffer;
  /** For 'out': the destination; for 'in': the source. */
  tuple: Tuple;
}

const wire: WireItem[] = [];
/** Every 'out' payload, parseable or not (for "nothing MESSAGE-shaped was sent"). */
const rawOut: Array<{ bytes: Buffer; tuple: Tuple }> = [];

function onOut(data: unknown): void {
  const { bytes, tuple } = data as { bytes: Buffer; tuple: Tuple };
  const copy = Buffer.from(bytes);
  rawOut.push({ bytes: copy, tuple });
  let message: SipMessage;
  try {
    message = parseMessage(copy);
  } catch {
    return; // keep-alives and the like
  }
  wire.push({ dir: 'out', message, bytes: copy, tuple });
}

function onIn(data: unknown): void {
  const { message, tuple } = data as { message: SipMessage; tuple: Tuple };
  wire.push({ dir: 'in', message, bytes: message.toBuffer(), tuple });
}

function requestsOut(method: string, callId?: string): WireItem[] {
  return wire.filter((w) => w.dir === 'out' && w.message.isRequest && w.message.method === method && (callId === undefined || w.message.callId === callId));
}

function requestsIn(method: string, callId?: string): WireItem[] {
  return wire.filter((w) => w.dir === 'in' && w.message.isRequest && w.message.method === method && (callId === undefined || w.message.callId === callId));
}

function responsesOut(method: string, callId: string): WireItem[] {
  return wire.filter((w) => w.dir === 'out' && !w.message.isRequest && w.message.cseq.method === method && w.message.callId === callId);
}

function responsesIn(method: string, callId: string): WireItem[] {
  return wire.filter((w) => w.dir === 'in' && !w.message.isRequest && w.message.cseq.method === method && w.message.callId === callId);
}

// ---------------------------------------------------------------------------------------------
// Waiting without sleeping on protocol timers
// ---------------------------------------------------------------------------------------------




/**
 * The final response of a sendMessage/options, once the wire shows the whole exchange: the request
 * and that final response both published on 'parley:message:out' (a response can reach the sender
 * a moment before the answering stack's send callback publishes it), then a short drain so that
 * anything extra (a retransmission, a second response) would be counted too.
 */
async function exchange(promise: Promise<SipMessage>, what: string): Promise<SipMessage> {
  const response = await within(promise, what);
  const method = response.cseq.method;
  const callId = response.callId;
  await until(
    () =>
      requestsOut(method, callId).length > 0 &&
      responsesOut(method, callId).some((w) => w.message.status === response.status && w.message.cseq.seq === response.cseq.seq),
    `the ${method} exchange of ${what} on the wire`,
  );
  await drain(20);
  return response;
}

// ---------------------------------------------------------------------------------------------
// Stacks and DUMs
// ---------------------------------------------------------------------------------------------

const stacks: SipStack[] = [];
const peers: UdpSipPeer[] = [];

async function freeTcpPort(): Promise<number> {
  const server = createServer();
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A started stack listening on UDP and TCP on 127.0.0.1. With `samePort`, both on one port (as a
 * UA on 5060 would be): RFC 3261 §18.1.1's switch to TCP keeps the URI's port, so a large request
 * to a transport-less URI reaches this stack over TCP only when its TCP port is its UDP port.
 */
async function startStack(clock: ManualClock, samePort = false): Promise<SipStack> {
  for (let attempt = 0; ; attempt++) {
    const port = samePort ? await freeTcpPort() : 0;
    const stack = new SipStack({ transports: [`udp:${HOST}:${port}`, `tcp:${HOST}:${port}`], clock, dns: false });
    try {
      await stack.start();
      stacks.push(stack);
      return stack;
    } catch (error) {
      await stack.stop().catch(() => undefined);
      if (!samePort || attempt >= 5) throw error;
    }
  }
}

function portOf(stack: SipStack, protocol: Protocol): number {
  const transport = stack.transports.find((t) => t.protocol === protocol);
  if (!transport) throw new Error(`no ${protocol} transport`);
  return transport.local.port;
}

/** `sip:user@127.0.0.1:PORT` for UDP, with `;transport=tcp` for TCP. */
function uriOf(stack: SipStack, user: string, protocol: Protocol): string {
  const port = portOf(stack, protocol);
  return protocol === 'udp' ? `sip:${user}@${HOST}:${port}` : `sip:${user}@${HOST}:${port};transport=tcp`;
}

interface Pair {
  clock: ManualClock;
  aliceStack: SipStack;
  bobStack: SipStack;
  /** Sends. */
  alice: DialogUsageManager;
  /** Receives. */
  bob: DialogUsageManager;
  /** (method, status) of every 'stray' on bob. */
  bobStrays: Array<[string, number]>;
}

async function pair(options: { alice?: DumOptions; bob?: DumOptions; bobSamePort?: boolean } = {}): Promise<Pair> {
  const clock = new ManualClock();
  const aliceStack = await startStack(clock);
  const bobStack = await startStack(clock, options.bobSamePort ?? false);
  const alice = new DialogUsageManager(aliceStack, { aor: `sip:alice@${HOST}`, ...options.alice });
  const bob = new DialogUsageManager(bobStack, { aor: `sip:bob@${HOST}`, ...options.bob });
  const bobStrays: Array<[string, number]> = [];
  bob.on('stray', (request: SipMessage, status: number) => void bobStrays.push([request.method, status]));
  return { clock, aliceStack, bobStack, alice, bob, bobStrays };
}

/** The Accept values without parameters, lowercased. */
function acceptTypes(message: SipMessage): string[] {
  return message.headers('accept').map((v) => v.split(';')[0]!.trim().toLowerCase());
}

// ---------------------------------------------------------------------------------------------

describe('DUM pager MESSAGE (RFC 3428) and OPTIONS (RFC 3261 §11)', function () {
  this.timeout(15_000);

  before(() => {
    subscribe('parley:message:out', onOut);
    subscribe('parley:message:in', onIn);
  });

  after(() => {
    unsubscribe('parley:message:out', onOut);
    unsubscribe('parley:message:in', onIn);
  });

  beforeEach(() => {
    wire.length = 0;
    rawOut.length = 0;
  });

  afterEach(async () => {
    await Promise.all(stacks.splice(0).map((s) => s.stop()));
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  for (const protocol of ['udp', 'tcp'] as const) {
    describe(`between two DUMs over ${protocol.toUpperCase()}`, () => {
      it('a handler answering 200: sendMessage resolves with exactly 200; one MESSAGE and one 200 crossed, neither with Contact (RFC 3428 §4, §7)', async () => {
        const { alice, bob, bobStack } = await pair();
        const got: IncomingMessage[] = [];
        bob.onMessage((message) => {
          got.push(message);
          return 200;
        });
        const to = uriOf(bobStack, 'bob', protocol);
        const response = await exchange(alice.sendMessage({ to, text: 'hello' }), 'sendMessage');
        expect(response.status).to.equal(200);
        expect(got).to.have.length(1);
        expect(got[0]!.source.protocol).to.equal(protocol);
        expect(got[0]!.from.uri.user).to.equal('alice');
        expect(got[0]!.to.uri.user).to.equal('bob');

        const callId = response.callId;
        const sent = requestsOut('MESSAGE', callId);
        expect(sent, 'MESSAGEs sent').to.have.length(1);
        const message = sent[0]!.message;
        expect(sent[0]!.tuple.protocol).to.equal(protocol);
        expect(sent[0]!.tuple.port).to.equal(portOf(bobStack, protocol));
        // §4: "User Agents MUST NOT insert Contact header fields into MESSAGE requests."
        expect(message.hasHeader('contact'), 'Contact in the MESSAGE').to.equal(false);
        // docs/dum.md: From = aor with a fresh tag, To = the target (no tag), Max-Forwards 70, User-Agent.
        expect(message.from.uri.toString()).to.equal(`sip:alice@${HOST}`);
        expect(message.from.tag).to.be.a('string').and.not.equal('');
        expect(message.to.tag).to.equal(undefined);
        expect(message.to.uri.user).to.equal('bob');
        expect(message.to.uri.port).to.equal(portOf(bobStack, protocol));
        expect(message.maxForwards).to.equal(70);
        expect(message.header('user-agent')).to.match(/^Parley\/\S+/);
        expect(message.body.toString('utf8')).to.equal('hello');

        const answered = responsesOut('MESSAGE', callId);
        expect(answered.map((w) => w.message.status), 'responses sent').to.deep.equal([200]);
        // §7: "A UAS MUST NOT insert a Contact header field into a 2xx response." and no body.
        expect(answered[0]!.message.hasHeader('contact'), 'Contact in the 2xx').to.equal(false);
        expect(answered[0]!.message.body.length).to.equal(0);
        expect(answered[0]!.message.to.tag).to.be.a('string').and.not.equal('');
        // The same, as each side received it.
        expect(requestsIn('MESSAGE', callId)).to.have.length(1);
        expect(requestsIn('MESSAGE', callId)[0]!.message.hasHeader('contact')).to.equal(false);
        expect(responsesIn('MESSAGE', callId).map((w) => w.message.status)).to.deep.equal([200]);
        expect(responsesIn('MESSAGE', callId)[0]!.message.hasHeader('contact')).to.equal(false);
      });

      it('a handler answering 202: sendMessage resolves with exactly 202 (RFC 3428 §7)', async () => {
        const { alice, bob, bobStack } = await pair();
        bob.onMessage(() => 202);
        const response = await exchange(alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text: 'stored?' }), 'sendMessage');
        expect(response.status).to.equal(202);
        const answered = responsesOut('MESSAGE', response.callId);
        expect(answered.map((w) => w.message.status)).to.deep.equal([202]);
        expect(answered[0]!.message.hasHeader('contact'), 'Contact in the 202').to.equal(false);
      });

      it("a handler answering { status: 486, reason: 'Busy Here' }: 486 Busy Here", async () => {
        const { alice, bob, bobStack } = await pair();
        bob.onMessage(() => ({ status: 486, reason: 'Busy Here' }));
        const response = await exchange(alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text: 'busy?' }), 'sendMessage');
        expect(response.status).to.equal(486);
        expect(response.reason).to.equal('Busy Here');
        expect(responsesOut('MESSAGE', response.callId).map((w) => w.message.status)).to.deep.equal([486]);
      });

      it('an Answer with its own reason phrase and headers: both reach the sender as given', async () => {
        const { alice, bob, bobStack } = await pair();
        bob.onMessage(() => ({ status: 480, reason: 'Gone Fishing', headers: { 'Retry-After': '120', 'X-Parley-Why': ['one', 'two'] } }));
        const response = await exchange(alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text: 'there?' }), 'sendMessage');
        expect(response.status).to.equal(480);
        expect(response.reason).to.equal('Gone Fishing');
        expect(response.header('retry-after')).to.equal('120');
        expect(response.headers('x-parley-why')).to.deep.equal(['one', 'two']);
      });

      it('a handler that throws, and one whose promise rejects: 500; each send has a fresh Call-ID', async () => {
        const { alice, bob, bobStack } = await pair();
        let calls = 0;
        bob.onMessage((message) => {
          calls++;
          if (message.text === 'sync') throw new Error('handler failed');
          return Promise.reject(new Error('handler failed later'));
        });
        const to = uriOf(bobStack, 'bob', protocol);
        const first = await exchange(alice.sendMessage({ to, text: 'sync' }), 'sendMessage (throws)');
        const second = await exchange(alice.sendMessage({ to, text: 'async' }), 'sendMessage (rejects)');
        expect(first.status).to.equal(500);
        expect(second.status).to.equal(500);
        expect(calls).to.equal(2);
        expect(first.callId).to.not.equal(second.callId);
        expect(responsesOut('MESSAGE', first.callId).map((w) => w.message.status)).to.deep.equal([500]);
        expect(responsesOut('MESSAGE', second.callId).map((w) => w.message.status)).to.deep.equal([500]);
      });

      it('an async handler: no final response goes out until its promise resolves, then exactly its answer', async () => {
        const { alice, bob, bobStack } = await pair();
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let entered = 0;
        bob.onMessage(async () => {
          entered++;
          await gate;
          return 202;
        });
        let settled = false;
        const pending = alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text: 'later' });
        void pending.then(
          () => (settled = true),
          () => (settled = true),
        );
        await until(() => entered === 1, 'the handler to be called');
        await drain(60);
        expect(settled, 'sendMessage settled before the handler answered').to.equal(false);
        const callId = requestsIn('MESSAGE')[0]!.message.callId;
        expect(responsesOut('MESSAGE', callId).filter((w) => w.message.status >= 200), 'final responses before the answer').to.have.length(0);
        release();
        const response = await exchange(pending, 'sendMessage');
        expect(response.status).to.equal(202);
        expect(entered).to.equal(1);
        expect(responsesOut('MESSAGE', callId).filter((w) => w.message.status >= 200).map((w) => w.message.status)).to.deep.equal([202]);
      });

      it('text: text/plain;charset=utf-8, non-ASCII text arrives byte-exact and message.text decodes it', async () => {
        const { alice, bob, bobStack } = await pair();
        const got: IncomingMessage[] = [];
        bob.onMessage((message) => {
          got.push(message);
          return 200;
        });
        const text = 'Grüße aus Köln — 日本語のテキスト 👋 ñ';
        const bytes = Buffer.from(text, 'utf8');
        expect(bytes.length).to.be.greaterThan(text.length); // the test means something only if they differ
        const response = await exchange(alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text }), 'sendMessage');
        expect(response.status).to.equal(200);
        expect(got).to.have.length(1);
        const message = got[0]!;
        expect(message.text).to.equal(text);
        expect(message.body.equals(bytes), 'body bytes').to.equal(true);
        const media = message.request.mediaType!;
        expect([media.type, media.subtype, media.params.charset?.toLowerCase()]).to.deep.equal(['text', 'plain', 'utf-8']);
        expect(message.contentType).to.equal(message.request.contentType);
        // Content-Length counts bytes, not characters (RFC 3261 §20.14).
        const sent = requestsOut('MESSAGE', response.callId)[0]!.message;
        expect(sent.contentLength).to.equal(bytes.length);
        expect(sent.body.equals(bytes)).to.equal(true);
      });

      it('body + contentType application/json: the same bytes and content type arrive', async () => {
        const { alice, bob, bobStack } = await pair();
        const got: IncomingMessage[] = [];
        bob.onMessage((message) => {
          got.push(message);
          return 200;
        });
        const json = JSON.stringify({ room: 'général', seq: 42, text: 'naïve café ☕', nested: { ok: true } });
        const response = await within(
          alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), body: json, contentType: 'application/json' }),
          'sendMessage',
        );
        expect(response.status).to.equal(200);
        expect(got).to.have.length(1);
        expect(got[0]!.contentType).to.equal('application/json');
        expect(got[0]!.body.equals(Buffer.from(json, 'utf8')), 'body bytes').to.equal(true);
        expect(got[0]!.text).to.equal(json);
        expect(JSON.parse(got[0]!.text)).to.deep.equal(JSON.parse(json));
      });

      it('a binary body (application/octet-stream, bytes 0..255): byte-exact, Content-Length 256', async () => {
        const { alice, bob, bobStack } = await pair();
        const got: IncomingMessage[] = [];
        bob.onMessage((message) => {
          got.push(message);
          return 200;
        });
        const bytes = new Uint8Array(256);
        for (let i = 0; i < 256; i++) bytes[i] = i;
        const response = await within(
          alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), body: bytes, contentType: 'application/octet-stream' }),
          'sendMessage',
        );
        expect(response.status).to.equal(200);
        expect(got).to.have.length(1);
        expect(got[0]!.contentType).to.equal('application/octet-stream');
        expect(got[0]!.body.length).to.equal(256);
        expect(got[0]!.body.equals(Buffer.from(bytes)), 'body bytes').to.equal(true);
        const sent = requestsOut('MESSAGE', response.callId)[0]!;
        expect(sent.message.contentLength).to.equal(256);
        // The last 256 bytes on the wire are the body itself.
        expect(sent.bytes.subarray(sent.bytes.length - 256).equals(Buffer.from(bytes))).to.equal(true);
      });

      it('no onMessage handler: 405 with an Allow that lists OPTIONS and not MESSAGE; a stray (MESSAGE, 405)', async () => {
        const { alice, bobStack, bobStrays } = await pair();
        const response = await exchange(alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text: 'anyone?' }), 'sendMessage');
        expect(response.status).to.equal(405);
        expect(response.hasHeader('allow'), 'Allow on the 405').to.equal(true);
        expect(response.allow).to.include('OPTIONS');
        expect(response.allow).to.not.include('MESSAGE');
        expect(bobStrays).to.deep.equal([['MESSAGE', 405]]);
      });

      it('a body type outside acceptedTypes: 415 with Accept, handler not called; a type with parameters inside it is taken', async () => {
        const { alice, bob, bobStack } = await pair({ bob: { acceptedTypes: ['text/plain'] } });
        let calls = 0;
        bob.onMessage(() => {
          calls++;
          return 200;
        });
        const to = uriOf(bobStack, 'bob', protocol);
        const refused = await exchange(alice.sendMessage({ to, body: '{"a":1}', contentType: 'application/json' }), 'sendMessage (json)');
        expect(refused.status).to.equal(415);
        expect(acceptTypes(refused)).to.include('text/plain');
        expect(acceptTypes(refused)).to.not.include('application/json');
        expect(calls).to.equal(0);
        const taken = await exchange(alice.sendMessage({ to, text: 'plain text' }), 'sendMessage (text)');
        expect(taken.status).to.equal(200);
        expect(calls).to.equal(1);
      });

      it('OPTIONS to a DUM with MESSAGE, SUBSCRIBE and INVITE handlers: 200, Allow lists them, Accept and Supported present, no body', async () => {
        const { alice, bob, bobStack } = await pair();
        bob.onMessage(() => 200);
        bob.onSubscribe('presence', (subscription) => subscription.accept());
        bob.onInvite((session) => session.reject(486));
        const response = await exchange(alice.options(uriOf(bobStack, 'bob', protocol)), 'options');
        expect(response.status).to.equal(200);
        expect(response.allow).to.include.members(['OPTIONS', 'MESSAGE', 'SUBSCRIBE', 'INVITE']);
        expect(response.hasHeader('accept'), 'Accept').to.equal(true);
        expect(response.headers('accept').length).to.be.greaterThan(0);
        expect(response.hasHeader('supported'), 'Supported').to.equal(true);
        expect(response.body.length).to.equal(0);
        expect(response.contentLength).to.equal(0);
        const sent = requestsOut('OPTIONS', response.callId);
        expect(sent).to.have.length(1);
        expect(sent[0]!.tuple.protocol).to.equal(protocol);
        expect(responsesOut('OPTIONS', response.callId).map((w) => w.message.status)).to.deep.equal([200]);
      });

      it('OPTIONS to a DUM with only onMessage and acceptedTypes: Allow lists MESSAGE but not INVITE or SUBSCRIBE; Accept lists those types', async () => {
        const { alice, bob, bobStack } = await pair({ bob: { acceptedTypes: ['text/plain', 'application/json'] } });
        bob.onMessage(() => 200);
        const response = await exchange(alice.options(uriOf(bobStack, 'bob', protocol)), 'options');
        expect(response.status).to.equal(200);
        expect(response.allow).to.include.members(['OPTIONS', 'MESSAGE']);
        expect(response.allow).to.not.include('INVITE');
        expect(response.allow).to.not.include('SUBSCRIBE');
        expect(acceptTypes(response)).to.include.members(['text/plain', 'application/json']);
        expect(acceptTypes(response)).to.not.include('*/*');
        expect(response.hasHeader('supported'), 'Supported').to.equal(true);
        expect(response.body.length).to.equal(0);
      });

      it('digest: the receiver challenges with a DigestAuthenticator; the sender retries once with credentials and the app sees only the 200', async () => {
        const { alice, bob, bobStack, clock: shared } = await pair({ alice: { credentials: [{ username: 'alice', password: 'secret' }] } });
        const store = new MemoryCredentialStore();
        store.add('alice', 'example.com', 'secret');
        const authenticator = new DigestAuthenticator({ realm: 'example.com', credentials: store, clock: shared });
        const outcomes: AuthOutcome[] = [];
        const texts: string[] = [];
        bob.onMessage(async (message) => {
          const outcome = await authenticator.authenticate(message.request);
          outcomes.push(outcome);
          // The challenge the authenticator built is the answer as it stands (docs/dum.md Answer).
          if (!outcome.ok) return outcome.response;
          texts.push(message.text);
          return 200;
        });
        const response = await exchange(alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text: 'secret note' }), 'sendMessage');
        expect(response.status).to.equal(200);
        expect(outcomes.map((o) => o.ok)).to.deep.equal([false, true]);
        expect(outcomes[0]!.ok === false && outcomes[0]!.status).to.equal(401);
        const ok = outcomes[1]!;
        expect(ok.ok && [ok.username, ok.realm, ok.algorithm]).to.deep.equal(['alice', 'example.com', 'SHA-512-256']);
        expect(texts).to.deep.equal(['secret note']);

        const sent = requestsOut('MESSAGE', response.callId);
        expect(sent, 'MESSAGEs sent (one challenged, one retried)').to.have.length(2);
        const [first, second] = [sent[0]!.message, sent[1]!.message];
        expect(first.hasHeader('authorization')).to.equal(false);
        expect(second.cseq.seq).to.equal(first.cseq.seq + 1);
        expect(second.via[0]!.branch).to.not.equal(first.via[0]!.branch);
        expect(second.hasHeader('contact'), 'Contact in the retried MESSAGE').to.equal(false);
        expect(second.authorization).to.have.length(1);
        const credentials = second.authorization[0]!;
        expect(credentials.scheme.toLowerCase()).to.equal('digest');
        expect(credentials.params.username).to.equal('alice');
        expect(credentials.params.realm).to.equal('example.com');
        expect(credentials.params.algorithm).to.equal('SHA-512-256');
        expect(credentials.params.qop).to.equal('auth');
        expect(credentials.params.uri).to.equal(second.requestUriText);
        expect(responsesOut('MESSAGE', response.callId).map((w) => w.message.status)).to.deep.equal([401, 200]);
      });

      it('digest with a wrong password: exactly one retry, then the 401 is the final response', async () => {
        const { alice, bob, bobStack, clock } = await pair({ alice: { credentials: [{ username: 'alice', password: 'wrong' }] } });
        const store = new MemoryCredentialStore();
        store.add('alice', 'example.com', 'secret');
        const authenticator = new DigestAuthenticator({ realm: 'example.com', credentials: store, clock });
        let calls = 0;
        bob.onMessage(async (message) => {
          calls++;
          const outcome = await authenticator.authenticate(message.request);
          if (!outcome.ok) return { status: outcome.status, headers: { 'WWW-Authenticate': outcome.response.headers('WWW-Authenticate') } };
          return 200;
        });
        const response = await exchange(alice.sendMessage({ to: uriOf(bobStack, 'bob', protocol), text: 'let me in' }), 'sendMessage');
        expect(response.status).to.equal(401);
        await drain(60);
        expect(calls).to.equal(2);
        expect(requestsOut('MESSAGE', response.callId), 'MESSAGEs sent').to.have.length(2);
        expect(responsesOut('MESSAGE', response.callId).map((w) => w.message.status)).to.deep.equal([401, 401]);
      });
    });
  }

  describe('size (RFC 3428 §6, RFC 3261 §18.1.1)', () => {
    it('a 2000-byte MESSAGE to a URI without a transport parameter goes over TCP (same port), and arrives byte-exact', async () => {
      const { alice, bob, bobStack } = await pair({ bobSamePort: true });
      const port = portOf(bobStack, 'udp');
      expect(portOf(bobStack, 'tcp')).to.equal(port);
      const got: IncomingMessage[] = [];
      bob.onMessage((message) => {
        got.push(message);
        return 200;
      });
      const text = 'ü'.repeat(500) + 'x'.repeat(1000); // 2000 bytes of body
      expect(Buffer.byteLength(text)).to.equal(2000);
      const response = await exchange(alice.sendMessage({ to: `sip:bob@${HOST}:${port}`, text }), 'sendMessage');
      expect(response.status).to.equal(200);
      const sent = requestsOut('MESSAGE', response.callId);
      expect(sent).to.have.length(1);
      expect(sent[0]!.bytes.length).to.be.greaterThan(1300);
      expect(sent[0]!.tuple.protocol).to.equal('tcp');
      expect(sent[0]!.tuple.port).to.equal(port);
      expect(sent[0]!.message.via[0]!.transport).to.equal('TCP');
      expect(rawOut.filter((o) => o.tuple.protocol === 'udp' && o.bytes.subarray(0, 8).toString('latin1') === 'MESSAGE '), 'MESSAGE bytes over UDP').to.have.length(0);
      expect(got).to.have.length(1);
      expect(got[0]!.source.protocol).to.equal('tcp');
      expect(got[0]!.text).to.equal(text);
    });

    it('a 2000-byte MESSAGE to an explicit ;transport=udp URI: a local 513 and nothing MESSAGE-shaped is sent; a 600-byte one still goes over UDP', async () => {
      const { alice, bob, bobStack } = await pair();
      let calls = 0;
      bob.onMessage(() => {
        calls++;
        return 200;
      });
      const to = `sip:bob@${HOST}:${portOf(bobStack, 'udp')};transport=udp`;
      const refused = await within(alice.sendMessage({ to, text: 'y'.repeat(2000) }), 'sendMessage (2000 bytes)');
      expect(refused.status).to.equal(513);
      await drain(60);
      expect(rawOut.filter((o) => o.bytes.subarray(0, 8).toString('latin1') === 'MESSAGE '), 'MESSAGE bytes on the wire').to.have.length(0);
      expect(rawOut, 'anything on the wire').to.have.length(0);
      expect(requestsIn('MESSAGE')).to.have.length(0);
      expect(calls).to.equal(0);

      const small = await exchange(alice.sendMessage({ to, text: 'z'.repeat(600) }), 'sendMessage (600 bytes)');
      expect(small.status).to.equal(200);
      const sent = requestsOut('MESSAGE', small.callId);
      expect(sent).to.have.length(1);
      expect(sent[0]!.tuple.protocol).to.equal('udp');
      expect(sent[0]!.bytes.length).to.be.at.most(1300);
      expect(calls).to.equal(1);
    });
  });

  describe('requests the DUM answers itself', () => {
    it('a MESSAGE with a To tag matching no dialog: exactly one 481, the handler is not called, a stray (MESSAGE, 481) (RFC 3261 §12.2.2)', async () => {
      const { bob, bobStack, bobStrays } = await pair();
      let calls = 0;
      bob.onMessage(() => {
        calls++;
        return 200;
      });
      const peer = await UdpSipPeer.bind(HOST);
      peers.push(peer);
      const port = portOf(bobStack, 'udp');
      const callId = `no-dialog-${token()}`;
      await peer.send(
        sip(
          [
            `MESSAGE sip:bob@${HOST}:${port} SIP/2.0`,
            `Via: SIP/2.0/UDP ${HOST}:${peer.port};branch=z9hG4bK-${token()};rport`,
            'Max-Forwards: 70',
            `From: <sip:mallory@${HOST}:${peer.port}>;tag=${token(4)}`,
            `To: <sip:bob@${HOST}:${port}>;tag=no-such-dialog`,
            `Call-ID: ${callId}`,
            'CSeq: 7 MESSAGE',
            'Content-Type: text/plain',
            'Content-Length: {CL}',
          ],
          'in a dialog that does not exist',
        ),
        port,
      );
      const answer = await peer.waitFor((r) => r.message !== undefined && !r.message.isRequest && safeCallId(r.message) === callId, IO_MS);
      expect(answer, 'a response').to.not.equal(undefined);
      expect(answer!.message!.status).to.equal(481);
      await drain(60);
      expect(peer.received.filter((r) => r.message !== undefined && safeCallId(r.message) === callId)).to.have.length(1);
      expect(calls).to.equal(0);
      expect(bobStrays).to.deep.equal([['MESSAGE', 481]]);
    });
  });
});
