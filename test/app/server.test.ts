// The Parley server and client end to end (docs/server.md), in process, on real loopback sockets.
//
// Every test starts its own ParleyServer (udp+tcp on 127.0.0.1, port 0, domain `localhost`, a
// fresh data directory) and creates its accounts in `server.store`. People are ParleyClients over
// TCP, each with its own state directory (its device identity). What a client library would never
// send — the same CPIM message twice, someone else's From, replayed credentials, bodies the server
// must refuse — comes from a bare DialogUsageManager (docs/dum.md) on its own SipStack with
// alice's credentials, or as raw bytes from a UdpSipPeer.
//
// The helper stacks run on a ManualClock that no test advances, so they never retransmit over
// UDP: "answered once, stored once" is exact. The server and the clients run on real time; no
// test waits for a protocol timer, only for I/O (until/within, capped in real time), and absence
// ("nothing more arrived") is asserted after a short real-time drain.
//
// What went on the wire is read from the diagnostics channel 'parley:message:out' ({ bytes,
// tuple }): every stack in this process publishes there. The server's deliveries to a device are
// the MESSAGE requests sent to a port that is not one of the server's own.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ClientError,
  DialogUsageManager,
  digestHa1,
  DumError,
  ManualClock,
  ParleyClient,
  ParleyServer,
  parseMessage,
  SipStack,
  type SipMessage,
  type Tuple,
} from '../../src/index.js';
import { token, UdpSipPeer } from '../support/udp-sip.js';
import { drain, until, within } from '../support/waiting.js';

type ServerConfig = ParleyServer['config'];
type AccountHashes = Parameters<ParleyServer['store']['addAccount']>[1];
type StoredMessage = ReturnType<ParleyServer['store']['pending']>[number];
type DumOptions = NonNullable<ConstructorParameters<typeof DialogUsageManager>[1]>;

/** What the tests read of a ChatMessage (docs/server.md). */
interface Chat {
  from: string;
  to: string;
  messageId: string;
  time: Date;
  contentType: string;
  text: string;
}

const HOST = '127.0.0.1';
const DOMAIN = 'localhost';
const PASSWORD = 'pw';
const TEXT_PLAIN = 'text/plain;charset=utf-8';
/** A device name nobody registers: `pending` for it lists every retained message of a recipient. */
const PROBE_DEVICE = 'urn:uuid:00000000-0000-4000-8000-00000000beef';
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

// ---------------------------------------------------------------------------------------------
// The wire
// ---------------------------------------------------------------------------------------------

interface Out {
  bytes: Buffer;
  tuple: Tuple;
  message: SipMessage;
}

const wireOut: Out[] = [];
/** Every message a stack of this process received ('parley:message:in'). */
const wireIn: SipMessage[] = [];

function onIn(data: unknown): void {
  wireIn.push((data as { message: SipMessage }).message);
}

function onOut(data: unknown): void {
  const { bytes, tuple } = data as { bytes: Buffer; tuple: Tuple };
  const copy = Buffer.from(bytes);
  let message: SipMessage;
  try {
    message = parseMessage(copy);
  } catch {
    return; // keep-alives
  }
  wireOut.push({ bytes: copy, tuple, message });
}

/** Every port a server of this test listened on (also those of servers stopped since). */
const serverPorts = new Set<number>();

/** MESSAGE requests a server sent to a device (a destination that is not a server's port) for `user`. */
function deliveriesTo(user: string): Out[] {
  return wireOut.filter((o) => o.message.isRequest && o.message.method === 'MESSAGE' && o.message.to.uri.user === user && !serverPorts.has(o.tuple.port));
}

// ---------------------------------------------------------------------------------------------
// Servers, clients, helper stacks, temp dirs — all undone in afterEach
// ---------------------------------------------------------------------------------------------

const servers: ParleyServer[] = [];
const clients: ParleyClient[] = [];
const stacks: SipStack[] = [];
const peers: UdpSipPeer[] = [];
const dirs: string[] = [];

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `parley-server-test-${label}-`));
  dirs.push(dir);
  return dir;
}

async function startServer(config: Partial<ServerConfig> = {}, data?: string): Promise<ParleyServer> {
  const server = await ParleyServer.start(
    { domains: [DOMAIN], listen: [`udp:${HOST}:0`, `tcp:${HOST}:0`], data: data ?? (await tempDir('data')), ...config },
    { logger: silent },
  );
  servers.push(server);
  for (const t of server.transports) serverPorts.add(t.local.port);
  return server;
}

async function stopServer(server: ParleyServer): Promise<void> {
  const at = servers.indexOf(server);
  if (at >= 0) servers.splice(at, 1);
  await within(server.stop(), 'server.stop()');
}

function portOf(server: ParleyServer, protocol: 'udp' | 'tcp'): number {
  const transport = server.transports.find((t) => t.protocol === protocol);
  if (!transport) throw new Error(`the server has no ${protocol} transport`);
  return transport.local.port;
}

function hashes(user: string, password = PASSWORD): AccountHashes {
  return {
    MD5: digestHa1('MD5', user, DOMAIN, password),
    'SHA-256': digestHa1('SHA-256', user, DOMAIN, password),
    'SHA-512-256': digestHa1('SHA-512-256', user, DOMAIN, password),
  } as AccountHashes;
}

function addUsers(server: ParleyServer, ...users: string[]): void {
  for (const user of users) server.store.addAccount(`sip:${user}@${DOMAIN}`, hashes(user));
}

async function connect(server: ParleyServer, user: string, options: { stateDir?: string; password?: string } = {}): Promise<ParleyClient> {
  const client = await within(
    ParleyClient.connect({
      server: `sip:${HOST}:${portOf(server, 'tcp')};transport=tcp`,
      user: `${user}@${DOMAIN}`,
      password: options.password ?? PASSWORD,
      stateDir: options.stateDir ?? (await tempDir(`state-${user}`)),
    }),
    `ParleyClient.connect(${user})`,
  );
  clients.push(client);
  return client;
}

async function closeClient(client: ParleyClient, options: { unregister?: boolean } = {}): Promise<void> {
  const at = clients.indexOf(client);
  if (at >= 0) clients.splice(at, 1);
  await within(client.close(options), 'client.close()');
}

/** Every 'message' the client emits, from now on. */
function inbox(client: ParleyClient): Chat[] {
  const got: Chat[] = [];
  client.on('message', (message) => void got.push(message));
  return got;
}

/** Every 'delivered' the client emits, from now on. */
function receipts(client: ParleyClient): Array<{ messageId: string; by: string; time: Date }> {
  const got: Array<{ messageId: string; by: string; time: Date }> = [];
  client.on('delivered', (messageId, by, time) => void got.push({ messageId, by, time }));
  return got;
}

/** Every retained message of the recipient (a device never seen starts at cursor 0). */
function storedFor(server: ParleyServer, user: string): StoredMessage[] {
  return server.store.pending(`sip:${user}@${DOMAIN}`, PROBE_DEVICE, 100_000);
}

/**
 * A bare DUM on its own stack (never-advancing ManualClock: no retransmissions) whose requests
 * all go to the server (outbound proxy), over UDP or TCP. Default: alice with her password.
 */
async function rawDum(server: ParleyServer, options: { protocol?: 'udp' | 'tcp'; dum?: DumOptions } = {}): Promise<DialogUsageManager> {
  const protocol = options.protocol ?? 'udp';
  const stack = new SipStack({ transports: [`udp:${HOST}:0`, `tcp:${HOST}:0`], clock: new ManualClock(Date.now()), dns: false });
  stacks.push(stack);
  await stack.start();
  const proxy = `sip:${HOST}:${portOf(server, protocol)}${protocol === 'tcp' ? ';transport=tcp' : ''}`;
  return new DialogUsageManager(stack, {
    aor: `sip:alice@${DOMAIN}`,
    credentials: [{ username: 'alice', password: PASSWORD }],
    outboundProxy: proxy,
    ...options.dum,
  });
}

function send(dum: DialogUsageManager, options: Parameters<DialogUsageManager['sendMessage']>[0], what = 'MESSAGE'): Promise<SipMessage> {
  return within(dum.sendMessage(options), `${what}: final response`);
}

/** A CPIM (RFC 3862) body with IMDN headers as a Parley client writes it (docs/server.md). */
function cpim(options: { from?: string; to?: string; id: string; text: string; contentType?: string; notify?: boolean }): string {
  const content = Buffer.from(options.text, 'utf8');
  const lines = [
    `From: <${options.from ?? `sip:alice@${DOMAIN}`}>`,
    `To: <${options.to ?? `sip:bob@${DOMAIN}`}>`,
    `DateTime: ${new Date().toISOString()}`,
    'NS: imdn <urn:ietf:params:imdn>',
    `imdn.Message-ID: ${options.id}`,
    ...(options.notify === false ? [] : ['imdn.Disposition-Notification: positive-delivery']),
    '',
    `Content-Type: ${options.contentType ?? TEXT_PLAIN}`,
    `Content-Length: ${content.length}`,
    '',
    options.text,
  ];
  return lines.join('\r\n');
}

function newMessageId(): string {
  return randomBytes(10).toString('hex');
}

async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await within(promise, what);
  } catch (error) {
    return error;
  }
  throw new Error(`${what}: resolved, expected a rejection`);
}

/** The media types of every Accept header value, lowercased, without parameters. */
function acceptTypes(message: SipMessage): string[] {
  return message
    .headers('accept')
    .flatMap((v) => v.split(','))
    .map((v) => v.split(';')[0]!.trim().toLowerCase())
    .filter((v) => v !== '');
}

function texts(n: number, label: string): string[] {
  return Array.from({ length: n }, (_, i) => `${label} ${i + 1}: héllo wörld ✓ «${i + 1}»`);
}

// ---------------------------------------------------------------------------------------------

describe('Parley server and client end to end (docs/server.md)', function () {
  this.timeout(20_000);

  before(() => {
    subscribe('parley:message:out', onOut);
    subscribe('parley:message:in', onIn);
  });
  after(() => {
    unsubscribe('parley:message:out', onOut);
    unsubscribe('parley:message:in', onIn);
  });

  beforeEach(() => {
    wireOut.length = 0;
    wireIn.length = 0;
    serverPorts.clear();
  });

  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => within(c.close(), 'client.close() in afterEach')));
    await Promise.allSettled(stacks.splice(0).map((s) => s.stop()));
    await Promise.allSettled(peers.splice(0).map((p) => p.close()));
    await Promise.allSettled(servers.splice(0).map((s) => within(s.stop(), 'server.stop() in afterEach')));
    await Promise.allSettled(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  describe('store and forward', () => {
    it('5 messages to an offline bob: each answered 202 after it is stored; bob connects and gets exactly those 5, in order, once each', async () => {
      const server = await startServer();
      expect(server.transports.map((t) => t.protocol).sort()).to.deep.equal(['tcp', 'udp']);
      expect(server.transports.every((t) => t.local.port > 0), 'bound ports').to.equal(true);
      addUsers(server, 'alice', 'bob');
      const alice = await connect(server, 'alice');
      expect(alice.aor).to.equal('alice@localhost');
      const aliceReceipts = receipts(alice);

      const storedEvents: StoredMessage[] = [];
      server.on('stored', (message) => void storedEvents.push(message));
      const sent = texts(5, 'offline');
      const startedAt = Date.now();
      const ids: string[] = [];
      for (const text of sent) {
        const result = await within(alice.send('bob@localhost', text), `alice.send(${text})`);
        expect(result.status, `status of ${text}`).to.equal(202);
        expect(result.reason).to.equal('Accepted');
        expect(result.messageId).to.be.a('string').and.not.equal('');
        // Answered 202 only after the commit: already in the store.
        expect(storedFor(server, 'bob').map((m) => m.messageId), `stored when ${text} was answered`).to.include(result.messageId);
        ids.push(result.messageId);
      }
      expect(new Set(ids).size, 'distinct Message-IDs').to.equal(5);
      expect(storedEvents.map((m) => m.messageId), "'stored' events").to.deep.equal(ids);

      const stored = storedFor(server, 'bob');
      expect(stored.map((m) => m.messageId), 'the store, in log order').to.deep.equal(ids);
      for (const m of stored) {
        expect(m.recipient).to.equal('sip:bob@localhost');
        expect(m.sender).to.equal('sip:alice@localhost');
        expect(m.contentType.toLowerCase()).to.match(/^message\/cpim\b/);
        expect(m.notify, 'positive-delivery asked by default').to.equal(true);
      }
      expect(stored.map((m) => m.id), 'increasing ids').to.deep.equal([...stored.map((m) => m.id)].sort((a, b) => a - b));
      expect(new Set(stored.map((m) => m.id)).size).to.equal(5);
      expect(deliveriesTo('bob'), 'nothing forwarded while bob is offline').to.have.length(0);

      const bob = await connect(server, 'bob');
      const got = inbox(bob);
      await until(() => got.length >= 5, 'bob receiving 5 messages');
      await drain(300);
      expect(got.map((m) => m.text), 'texts, in order').to.deep.equal(sent);
      expect(got.map((m) => m.messageId), 'Message-IDs = those send() returned').to.deep.equal(ids);
      for (const m of got) {
        expect(m.from).to.equal('alice@localhost');
        expect(m.to).to.equal('bob@localhost');
        expect(m.contentType).to.equal(TEXT_PLAIN);
        expect(m.time).to.be.instanceOf(Date);
        expect(m.time.getTime()).to.be.within(startedAt - 2000, Date.now() + 1000);
      }
      // The server sent each exactly once to bob's one device (a 2xx moved the cursor).
      expect(deliveriesTo('bob'), 'MESSAGEs forwarded to bob').to.have.length(5);
      // Each asked for positive-delivery (the default): alice, online, hears of every one.
      await until(() => aliceReceipts.length >= 5, "alice's 5 'delivered'");
      await drain(200);
      expect(aliceReceipts.map((r) => r.messageId), "alice's 'delivered', in order").to.deep.equal(ids);
      expect(aliceReceipts.every((r) => r.by === 'bob@localhost'), "'delivered' by bob@localhost").to.equal(true);
    });

    it('two devices of bob online (two state directories): each device gets every message exactly once', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      /** The server's 'delivered' events for bob's messages (alice's notifications are delivered too). */
      const delivered: Array<[string, string]> = [];
      server.on('delivered', (message, device) => {
        if (message.recipient === 'sip:bob@localhost') delivered.push([message.messageId, device]);
      });

      const phone = await connect(server, 'bob', { stateDir: await tempDir('bob-phone') });
      const laptop = await connect(server, 'bob', { stateDir: await tempDir('bob-laptop') });
      expect(phone.instanceId).to.be.a('string').and.not.equal('');
      expect(phone.instanceId).to.not.equal(laptop.instanceId);
      const phoneGot = inbox(phone);
      const laptopGot = inbox(laptop);
      await until(() => server.store.get('sip:bob@localhost').length === 2, 'two bindings of bob in the location store');
      const instances = server.store.get('sip:bob@localhost').map((b) => b.instance);
      expect(new Set(instances).size, 'two distinct +sip.instance').to.equal(2);

      const alice = await connect(server, 'alice');
      const aliceReceipts = receipts(alice);
      const sent = texts(3, 'two devices');
      const ids: string[] = [];
      for (const text of sent) {
        const result = await within(alice.send('bob@localhost', text), 'alice.send');
        expect(result.status).to.equal(202);
        ids.push(result.messageId);
      }
      await until(() => phoneGot.length >= 3 && laptopGot.length >= 3, 'both devices receiving 3 messages');
      await until(() => delivered.length >= 6, "the server's 6 'delivered' events");
      await drain(300);
      for (const [name, got] of [['phone', phoneGot], ['laptop', laptopGot]] as const) {
        expect(got.map((m) => m.text), `${name}: texts`).to.deep.equal(sent);
        expect(got.map((m) => m.messageId), `${name}: Message-IDs`).to.deep.equal(ids);
        expect(got.every((m) => m.from === 'alice@localhost'), `${name}: from`).to.equal(true);
      }
      expect(deliveriesTo('bob'), 'MESSAGEs forwarded to bob (3 per device)').to.have.length(6);
      expect(delivered, "the server's 'delivered' events").to.have.length(6);
      expect(new Set(delivered.map(([id, device]) => `${id} ${device}`)).size, 'one per (message, device)').to.equal(6);
      expect(new Set(delivered.map(([, device]) => device)).size, 'two devices').to.equal(2);
      // A notification when the FIRST device acknowledges: one per message, not one per device.
      await until(() => aliceReceipts.length >= 3, "alice's 3 'delivered'");
      await drain(300);
      expect(aliceReceipts.map((r) => r.messageId).sort(), "alice's 'delivered' (one per message)").to.deep.equal([...ids].sort());
      expect(storedFor(server, 'alice'), 'notifications stored for alice').to.have.length(3);
    });

    it('a CPIM message sent twice with the same imdn.Message-ID: both answered 202, stored once, forwarded once, emitted once', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const storedEvents: StoredMessage[] = [];
      server.on('stored', (message) => void storedEvents.push(message));
      const dum = await rawDum(server);
      const id = newMessageId();
      const body = cpim({ id, text: 'only once, please' });

      const first = await send(dum, { to: 'sip:bob@localhost', body, contentType: 'message/cpim' }, 'first MESSAGE');
      const second = await send(dum, { to: 'sip:bob@localhost', body, contentType: 'message/cpim' }, 'second MESSAGE');
      expect([first.status, second.status], 'answers').to.deep.equal([202, 202]);
      expect(first.callId, 'two transactions, two Call-IDs').to.not.equal(second.callId);

      const stored = storedFor(server, 'bob').filter((m) => m.messageId === id);
      expect(stored, 'stored copies').to.have.length(1);
      expect(stored[0]!.sender).to.equal('sip:alice@localhost');
      expect(stored[0]!.recipient).to.equal('sip:bob@localhost');
      expect(stored[0]!.contentType.toLowerCase()).to.match(/^message\/cpim\b/);
      expect(stored[0]!.notify).to.equal(true);
      expect(stored[0]!.body.equals(Buffer.from(body, 'utf8')), 'stored body = the body sent').to.equal(true);
      expect(storedFor(server, 'bob'), 'nothing else stored').to.have.length(1);
      expect(storedEvents.map((m) => m.messageId), "'stored' events").to.deep.equal([id]);

      const bob = await connect(server, 'bob');
      const got = inbox(bob);
      await until(() => got.length >= 1, 'bob receiving the message');
      await drain(300);
      expect(got.map((m) => [m.messageId, m.text, m.from]), 'emitted').to.deep.equal([[id, 'only once, please', 'alice@localhost']]);
      const forwarded = deliveriesTo('bob');
      expect(forwarded, 'MESSAGEs forwarded to bob').to.have.length(1);
      // Forwarded: From = the original sender, To = the recipient, Date, the stored body and type unchanged.
      const m = forwarded[0]!.message;
      expect(m.from.uri.toString()).to.equal('sip:alice@localhost');
      expect(m.to.uri.toString()).to.equal('sip:bob@localhost');
      expect(m.hasHeader('date'), 'Date').to.equal(true);
      expect((m.contentType ?? '').toLowerCase()).to.match(/^message\/cpim\b/);
      expect(m.body.equals(Buffer.from(body, 'utf8')), 'forwarded body = the body sent').to.equal(true);
    });
  });

  describe('delivery notifications (RFC 5438)', () => {
    it("alice online: 'delivered' with that messageId once bob's device acknowledged it; the notification is a stored message/cpim for alice", async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const bob = await connect(server, 'bob');
      const bobGot = inbox(bob);
      const alice = await connect(server, 'alice');
      const aliceReceipts = receipts(alice);

      const result = await within(alice.send('bob@localhost', 'did you get it?'), 'alice.send');
      expect(result.status).to.equal(202);
      await until(() => bobGot.length >= 1, 'bob receiving it');
      await until(() => aliceReceipts.length >= 1, "alice's 'delivered'");
      await drain(300);
      expect(bobGot.map((m) => m.messageId)).to.deep.equal([result.messageId]);
      expect(aliceReceipts, "alice's 'delivered' events").to.have.length(1);
      expect(aliceReceipts[0]!.messageId).to.equal(result.messageId);
      expect(aliceReceipts[0]!.by).to.equal('bob@localhost');
      expect(aliceReceipts[0]!.time).to.be.instanceOf(Date);

      const notifications = storedFor(server, 'alice');
      expect(notifications, 'notifications stored for alice').to.have.length(1);
      const n = notifications[0]!;
      expect(n.sender).to.equal('sip:bob@localhost');
      expect(n.contentType.toLowerCase()).to.match(/^message\/cpim\b/);
      const text = n.body.toString('utf8');
      expect(text).to.match(/^Content-Type:\s*message\/imdn\+xml/im);
      expect(text).to.match(/^Content-Disposition:\s*notification/im);
      const ownId = /^imdn\.Message-ID:\s*(\S+)/im.exec(text)?.[1];
      expect(ownId, 'its own imdn.Message-ID').to.be.a('string').and.not.equal(result.messageId);
      expect(n.messageId).to.equal(ownId);
      expect(text).to.include(`<message-id>${result.messageId}</message-id>`);
      expect(text).to.match(/<recipient-uri>\s*sip:bob@localhost\s*<\/recipient-uri>/);
      expect(text).to.match(/<delivered\s*\/>/);
      expect(deliveriesTo('alice'), 'notifications forwarded to alice').to.have.length(1);
    });

    it("alice offline when bob acknowledged: she gets 'delivered' after reconnecting (same state directory, same device)", async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const aliceState = await tempDir('alice-device');
      const alice = await connect(server, 'alice', { stateDir: aliceState });
      const instanceId = alice.instanceId;
      const result = await within(alice.send('bob@localhost', 'read this later'), 'alice.send');
      expect(result.status).to.equal(202);
      await closeClient(alice, { unregister: true });

      const bob = await connect(server, 'bob');
      const bobGot = inbox(bob);
      await until(() => bobGot.length >= 1, 'bob receiving it');
      expect(bobGot[0]!.messageId).to.equal(result.messageId);
      await until(() => storedFor(server, 'alice').length === 1, 'the notification stored for alice');
      expect(storedFor(server, 'alice')[0]!.sender).to.equal('sip:bob@localhost');
      expect(deliveriesTo('alice'), 'nothing forwarded to alice while she is offline').to.have.length(0);

      const again = await connect(server, 'alice', { stateDir: aliceState });
      expect(again.instanceId, 'the device identity is stable per state directory').to.equal(instanceId);
      const aliceReceipts = receipts(again);
      await until(() => aliceReceipts.length >= 1, "alice's 'delivered' after reconnecting");
      await drain(300);
      expect(aliceReceipts.map((r) => r.messageId)).to.deep.equal([result.messageId]);
      expect(aliceReceipts[0]!.by).to.equal('bob@localhost');
    });

    it("a client with no 'delivered' listener when a notification arrives: close() still resolves promptly", async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const bob = await connect(server, 'bob');
      const bobGot = inbox(bob);
      const alice = await connect(server, 'alice');
      const result = await within(alice.send('bob@localhost', 'nobody listens for the receipt'), 'alice.send');
      expect(result.status).to.equal(202);
      await until(() => bobGot.length >= 1, 'bob receiving it');
      await until(() => deliveriesTo('alice').length >= 1, 'the notification forwarded to alice');
      await drain(100);
      const started = performance.now();
      await closeClient(alice, { unregister: true });
      expect(performance.now() - started, 'ms alice.close() took').to.be.below(3000);
    });

    it('notify: false asks for no notification: bob gets the message, nothing is stored for alice', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const bob = await connect(server, 'bob');
      const bobGot = inbox(bob);
      const alice = await connect(server, 'alice');
      const aliceReceipts = receipts(alice);
      const result = await within(alice.send('bob@localhost', 'no receipt', { notify: false }), 'alice.send');
      expect(result.status).to.equal(202);
      expect(storedFor(server, 'bob').find((m) => m.messageId === result.messageId)?.notify, 'stored with notify false').to.equal(false);
      await until(() => bobGot.length >= 1, 'bob receiving it');
      await drain(400);
      expect(bobGot.map((m) => m.text)).to.deep.equal(['no receipt']);
      expect(storedFor(server, 'alice'), 'stored for alice').to.have.length(0);
      expect(aliceReceipts, "alice's 'delivered'").to.have.length(0);
    });
  });

  describe('authentication and authorization', () => {
    it('a wrong password, or an unknown user: connect rejects with ClientError CLIENT_AUTH_FAILED', async () => {
      const server = await startServer();
      addUsers(server, 'alice');
      for (const [user, password] of [['alice', 'wrong'], ['nobody', PASSWORD]] as const) {
        const error = await rejection(
          ParleyClient.connect({
            server: `sip:${HOST}:${portOf(server, 'tcp')};transport=tcp`,
            user: `${user}@${DOMAIN}`,
            password,
            stateDir: await tempDir(`state-${user}`),
          }),
          `connect as ${user}/${password}`,
        );
        expect(error, `${user}/${password}`).to.be.instanceOf(ClientError);
        expect((error as ClientError).code, `${user}/${password}`).to.equal('CLIENT_AUTH_FAILED');
      }
      expect(server.store.get('sip:alice@localhost'), "alice's bindings").to.have.length(0);
    });

    it("registering someone else's address with one's own credentials: 403, no binding", async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const dum = await rawDum(server);
      const registration = dum.register({ aor: 'sip:bob@localhost', expires: 600 });
      const error = await rejection(registration.ready, 'REGISTER bob with alice credentials');
      expect(error).to.be.instanceOf(DumError);
      expect((error as DumError).response?.status, 'final status').to.equal(403);
      expect(server.store.get('sip:bob@localhost'), "bob's bindings").to.have.length(0);
    });

    it('sending as someone else: SIP From bob with alice credentials → 403; CPIM From bob under SIP From alice → 403; nothing stored', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob', 'carol');
      const dum = await rawDum(server);
      const forged = await send(dum, { to: 'sip:carol@localhost', from: 'sip:bob@localhost', text: 'I am bob' }, 'From bob');
      expect(forged.status, 'From bob').to.equal(403);
      const inner = await send(
        dum,
        { to: 'sip:carol@localhost', body: cpim({ from: 'sip:bob@localhost', to: 'sip:carol@localhost', id: newMessageId(), text: 'I am bob too' }), contentType: 'message/cpim' },
        'CPIM From bob',
      );
      expect(inner.status, 'CPIM From bob').to.equal(403);
      const honest = await send(dum, { to: 'sip:carol@localhost', text: 'I am alice' }, 'From alice');
      expect(honest.status, 'From alice (the same credentials)').to.equal(202);
      expect(storedFor(server, 'carol').map((m) => m.sender), 'stored for carol').to.deep.equal(['sip:alice@localhost']);
    });

    it('replayed Authorization: the same request on a new branch → 482 (merged, §8.2.2.2); with a new Call-ID → 401, not stale; a retransmission → the same 202; stored once', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const udpPort = portOf(server, 'udp');
      const dum = await rawDum(server);
      const ok = await send(dum, { to: 'sip:bob@localhost', text: 'replay me' }, 'MESSAGE');
      expect(ok.status).to.equal(202);
      const authorized = wireOut.filter(
        (o) => o.message.isRequest && o.message.method === 'MESSAGE' && o.message.callId === ok.callId && o.message.hasHeader('authorization') && o.tuple.port === udpPort,
      );
      expect(authorized, 'the authorized MESSAGE on the wire').to.have.length(1);
      const captured = authorized[0]!.bytes;
      const isReplayMe = (m: StoredMessage): boolean => m.body.toString('utf8') === 'replay me';
      expect(storedFor(server, 'bob').filter(isReplayMe), 'stored after the genuine request').to.have.length(1);

      const peer = await UdpSipPeer.bind(HOST);
      peers.push(peer);
      /** The captured request with our own top Via (new branch, rport) and optionally a new Call-ID. */
      const replay = (callId: string | undefined): Buffer => {
        const split = captured.indexOf('\r\n\r\n');
        const head = captured.subarray(0, split).toString('utf8');
        const lines = head.split('\r\n').map((line) => {
          if (/^(via|v)\s*:/i.test(line)) return `Via: SIP/2.0/UDP ${HOST}:${peer.port};branch=z9hG4bK-${token()};rport`;
          if (callId !== undefined && /^(call-id|i)\s*:/i.test(line)) return `Call-ID: ${callId}`;
          return line;
        });
        return Buffer.concat([Buffer.from(lines.join('\r\n'), 'utf8'), captured.subarray(split)]);
      };
      const answer = async (bytes: Buffer, callId: string, what: string): Promise<SipMessage> => {
        const from = peer.received.length;
        await peer.send(bytes, udpPort, HOST);
        const got = await peer.waitFor((r) => r.message !== undefined && !r.message.isRequest && r.message.status >= 200 && r.message.callId === callId, 5000, from);
        if (!got?.message) throw new Error(`${what}: no final response`);
        return got.message;
      };

      // RFC 3261 §8.2.2.2: the genuine request's transaction is still there (Timer J), so the same
      // From tag, Call-ID and CSeq on another branch is a merged request, refused by the UAS core
      // with 482 before any digest check.
      const sameCallId = await answer(replay(undefined), ok.callId, 'replay, same Call-ID');
      expect(sameCallId.status, 'replay with the same Call-ID: a merged request').to.equal(482);
      expect(sameCallId.headers('www-authenticate'), 'no challenge with a 482').to.deep.equal([]);
      const newCallId = `replay-${token()}`;
      const fresh = await answer(replay(newCallId), newCallId, 'replay, new Call-ID');
      expect(fresh.status, 'replay with a new Call-ID').to.equal(401);
      expect(fresh.headers('www-authenticate').length, 'a new challenge').to.be.greaterThan(0);
      expect(fresh.headers('www-authenticate').join(' '), 'stale').to.not.match(/stale\s*=\s*"?true/i);

      // The identical bytes again: a retransmission of the genuine request (its transaction is
      // still there): the transaction layer sends the same 202 again to where the request first
      // came from (the DUM's stack), and nothing new is stored.
      const twoHundreds = (): number => wireIn.filter((m) => !m.isRequest && m.callId === ok.callId && m.status === 202).length;
      expect(twoHundreds(), '202s the DUM received').to.equal(1);
      await peer.send(captured, udpPort, HOST);
      await until(() => twoHundreds() === 2, 'the 202 sent again for the retransmission');
      await drain(200);
      expect(storedFor(server, 'bob').filter(isReplayMe), 'stored copies after the replays').to.have.length(1);
      expect(storedFor(server, 'bob'), 'everything stored for bob').to.have.length(1);
    });
  });

  describe('refusals (the order of checks in docs/server.md)', () => {
    it('an unknown recipient: 404 (raw MESSAGE); ParleyClient.send rejects with CLIENT_SEND_FAILED status 404', async () => {
      const server = await startServer();
      addUsers(server, 'alice');
      const dum = await rawDum(server);
      const response = await send(dum, { to: 'sip:nobody@localhost', text: 'hello?' });
      expect(response.status).to.equal(404);
      const alice = await connect(server, 'alice');
      const error = await rejection(alice.send('nobody@localhost', 'hello?'), 'alice.send to nobody');
      expect(error).to.be.instanceOf(ClientError);
      expect((error as ClientError).code).to.equal('CLIENT_SEND_FAILED');
      expect((error as ClientError & { status?: number }).status).to.equal(404);
      expect(storedFor(server, 'nobody')).to.have.length(0);
    });

    it('a recipient of a domain we do not serve: 404 No route to domain', async () => {
      const server = await startServer();
      addUsers(server, 'alice');
      const dum = await rawDum(server);
      const response = await send(dum, { to: 'sip:bob@elsewhere.example', text: 'far away' });
      expect(response.status).to.equal(404);
      expect(response.reason).to.equal('No route to domain');
    });

    it('a body over maxMessageBytes (1000, over TCP): 413; exactly 1000 bytes: 202', async () => {
      const server = await startServer({ maxMessageBytes: 1000 });
      expect(server.config.maxMessageBytes).to.equal(1000);
      addUsers(server, 'alice', 'bob');
      const dum = await rawDum(server, { protocol: 'tcp' });
      const tooBig = await send(dum, { to: 'sip:bob@localhost', body: 'x'.repeat(1001), contentType: 'text/plain' }, '1001 bytes');
      expect(tooBig.status, '1001 bytes').to.equal(413);
      const fits = await send(dum, { to: 'sip:bob@localhost', body: 'y'.repeat(1000), contentType: 'text/plain' }, '1000 bytes');
      expect(fits.status, '1000 bytes').to.equal(202);
      expect(storedFor(server, 'bob').map((m) => m.body.length)).to.deep.equal([1000]);
    });

    it('a content type not accepted (outer, or inside CPIM): 415 with Accept listing the accepted types', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const dum = await rawDum(server);
      const outer = await send(dum, { to: 'sip:bob@localhost', body: 'binary', contentType: 'application/octet-stream' }, 'octet-stream');
      expect(outer.status, 'application/octet-stream').to.equal(415);
      expect(acceptTypes(outer)).to.have.members(['text/*', 'message/cpim', 'message/imdn+xml', 'application/json']);
      const inner = await send(
        dum,
        { to: 'sip:bob@localhost', body: cpim({ id: newMessageId(), text: 'binary', contentType: 'application/octet-stream' }), contentType: 'message/cpim' },
        'CPIM around octet-stream',
      );
      expect(inner.status, 'CPIM inner application/octet-stream').to.equal(415);
      expect(acceptTypes(inner)).to.have.members(['text/*', 'message/cpim', 'message/imdn+xml', 'application/json']);
      const json = await send(dum, { to: 'sip:bob@localhost', body: '{"hello":1}', contentType: 'application/json' }, 'json');
      expect(json.status, 'application/json').to.equal(202);
      expect(storedFor(server, 'bob')).to.have.length(1);
    });

    it('a message/cpim body that does not parse: 400', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const dum = await rawDum(server);
      const response = await send(dum, { to: 'sip:bob@localhost', body: 'this is not CPIM at all', contentType: 'message/cpim' });
      expect(response.status).to.equal(400);
      expect(storedFor(server, 'bob')).to.have.length(0);
    });

    it('a sender of a domain we do not serve: 403 by default; 202 (stored) with acceptForeign', async () => {
      const foreign: DumOptions = { aor: 'sip:mallory@elsewhere.example', credentials: [] };
      const strict = await startServer();
      expect(strict.config.acceptForeign).to.equal(false);
      addUsers(strict, 'bob');
      const refused = await send(await rawDum(strict, { dum: foreign }), { to: 'sip:bob@localhost', text: 'from afar' }, 'foreign, strict');
      expect(refused.status, 'acceptForeign false').to.equal(403);
      expect(storedFor(strict, 'bob')).to.have.length(0);

      const open = await startServer({ acceptForeign: true });
      addUsers(open, 'bob');
      const accepted = await send(await rawDum(open, { dum: foreign }), { to: 'sip:bob@localhost', text: 'from afar' }, 'foreign, acceptForeign');
      expect(accepted.status, 'acceptForeign true').to.equal(202);
      const stored = storedFor(open, 'bob');
      expect(stored.map((m) => [m.sender, m.body.toString('utf8')])).to.deep.equal([['sip:mallory@elsewhere.example', 'from afar']]);
    });
  });

  describe('registrations', () => {
    it('a device that goes away without unregistering: its binding is removed when its flow dies; messages then wait in the store', async () => {
      const server = await startServer();
      addUsers(server, 'alice', 'bob');
      const bindingEvents: Array<[string, number]> = [];
      server.on('bindings', (aor, count) => void bindingEvents.push([aor, count]));
      const bob = await connect(server, 'bob');
      await until(() => server.store.get('sip:bob@localhost').length === 1, "bob's binding");
      expect(server.store.get('sip:bob@localhost')[0]!.instance, '+sip.instance').to.be.a('string');
      await closeClient(bob, { unregister: false });
      await until(() => server.store.get('sip:bob@localhost').length === 0, "bob's binding removed with its flow");
      expect(bindingEvents.at(-1)?.[1], "the last 'bindings' count").to.equal(0);
      expect(bindingEvents.at(-1)?.[0]).to.match(/bob@localhost$/);

      const alice = await connect(server, 'alice');
      const result = await within(alice.send('bob@localhost', 'are you there?'), 'alice.send');
      expect(result.status).to.equal(202);
      await drain(200);
      expect(deliveriesTo('bob'), 'nothing forwarded to the dead flow').to.have.length(0);
      expect(storedFor(server, 'bob').map((m) => m.messageId)).to.deep.equal([result.messageId]);
    });

    it('a restart drops the bindings bound to flows of the previous process (the devices register again)', async () => {
      const data = await tempDir('flows');
      const first = await startServer({}, data);
      addUsers(first, 'bob');
      await connect(first, 'bob');
      await until(() => first.store.get('sip:bob@localhost').length === 1, "bob's binding");
      await stopServer(first);
      const second = await startServer({}, data);
      expect(second.store.get('sip:bob@localhost'), "bob's bindings after the restart").to.have.length(0);
    });
  });

  describe('durability', () => {
    it('messages stored while bob is offline survive stop() and a new server on the same data directory: bob gets them all exactly once', async () => {
      const data = await tempDir('durable');
      const first = await startServer({}, data);
      addUsers(first, 'alice', 'bob');
      const alice = await connect(first, 'alice');
      const sent = texts(4, 'durable');
      const ids: string[] = [];
      for (const text of sent) {
        const result = await within(alice.send('bob@localhost', text), 'alice.send');
        expect(result.status).to.equal(202);
        ids.push(result.messageId);
      }
      await closeClient(alice, { unregister: true });
      await stopServer(first);

      const second = await startServer({}, data);
      expect(second.store.account('sip:bob@localhost'), "bob's account after the restart").to.not.equal(undefined);
      expect(storedFor(second, 'bob').map((m) => m.messageId), 'stored after the restart').to.deep.equal(ids);
      const bob = await connect(second, 'bob');
      const got = inbox(bob);
      await until(() => got.length >= 4, 'bob receiving the 4 messages');
      await drain(300);
      expect(got.map((m) => m.text)).to.deep.equal(sent);
      expect(got.map((m) => m.messageId)).to.deep.equal(ids);
      expect(got.every((m) => m.from === 'alice@localhost')).to.equal(true);
      expect(deliveriesTo('bob'), 'MESSAGEs forwarded to bob').to.have.length(4);
    });
  });
});
