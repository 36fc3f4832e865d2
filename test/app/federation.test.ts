// Federation between Parley servers (docs/federation.md), in process, on real loopback sockets.
//
// Every server listens on `tcp:127.0.0.1:0` then `udp:127.0.0.1:0` (so its URI for neighbours is
// `sip:127.0.0.1:<tcp port>;transport=tcp`), has one domain `<x>.example` (its name), the
// network's `federationSecret`, and short timers: pings every 200 ms, 3 misses, link retries and
// relay retries from 100 ms to 1 s. Because ports are 0, servers start one after another and only
// the later one of each pair is configured with the other as a peer: the earlier one links back
// because the SUBSCRIBE authenticates with the network's secret. A server that is restarted gets
// a temp data directory and its first ports back; the others keep everything in ':memory:'.
//
// People are ParleyClients (TCP, a state directory each) registered at their home server. What a
// neighbour would never send — Max-Forwards 0, a Parley-Path with the receiver's name, the wrong
// secret — comes from a bare DialogUsageManager on its own SipStack (a ManualClock that nobody
// advances: it never retransmits) that authenticates in realm `peers@<receiver>`.
//
// A neighbour that vanishes without a word is made with two TCP relays in the test: each server
// advertises its relay and is reached by its neighbour only through it, and a relay that
// "blackholes" accepts bytes and forwards none (no RST, no answer: only liveness can tell).
//
// What went on the wire is read from the diagnostics channel 'parley:message:out' (every stack of
// this process publishes there); what servers log from a logger per server. Waiting is polling
// with a cap in real time (no fixed sleeps standing in for events); absence is asserted after a
// short drain.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
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
import { drain, within } from '../support/waiting.js';

type ServerConfig = ParleyServer['config'];
type AccountHashes = Parameters<ParleyServer['store']['addAccount']>[1];
type StoredMessage = ReturnType<ParleyServer['store']['pending']>[number];
type LinkState = 'connecting' | 'up' | 'down' | 'refused';

const HOST = '127.0.0.1';
const PASSWORD = 'pw';
const SECRET = 'the network secret';
/** A device name nobody registers: `pending` for it lists every retained message of a recipient. */
const PROBE_DEVICE = 'urn:uuid:00000000-0000-4000-8000-00000000beef';
const PING_MS = 200;

/** Federation settings of every server here (docs/federation.md), before the test's own. */
const FEDERATION: Partial<ServerConfig> = {
  federationSecret: SECRET,
  pingIntervalMs: PING_MS,
  pingMisses: 3,
  linkRetryMs: [100, 1000],
  deliveryRetryMs: [100, 1000],
};

// ---------------------------------------------------------------------------------------------
// The wire
// ---------------------------------------------------------------------------------------------

interface Out {
  tuple: Tuple;
  message: SipMessage;
}

const wireOut: Out[] = [];

function onOut(data: unknown): void {
  const { bytes, tuple } = data as { bytes: Buffer; tuple: Tuple };
  try {
    wireOut.push({ tuple, message: parseMessage(Buffer.from(bytes)) });
  } catch {
    // keep-alives
  }
}

/** Every port a server (or a relay standing for one) of this test listened on → the server's name. */
const serverPorts = new Map<number, string>();

/** MESSAGE requests a server sent to a device (not to a server's port) for `user` (the To user part). */
function deliveriesTo(user: string): Out[] {
  return wireOut.filter((o) => o.message.isRequest && o.message.method === 'MESSAGE' && o.message.to.uri.user === user && !serverPorts.has(o.tuple.port));
}

/** Relayed MESSAGEs (from a server: Parley-Path, credentials) sent to the server `to`, for `recipient` (`sip:user@domain`). */
function relayedTo(to: string, recipient: string): Out[] {
  return wireOut.filter(
    (o) =>
      o.message.isRequest &&
      o.message.method === 'MESSAGE' &&
      serverPorts.get(o.tuple.port) === to &&
      o.message.hasHeader('authorization') &&
      o.message.hasHeader('parley-path') &&
      o.message.requestUri.toString() === recipient,
  );
}

// ---------------------------------------------------------------------------------------------
// Servers, clients, helper stacks, relays, temp dirs — all undone in afterEach
// ---------------------------------------------------------------------------------------------

const servers: ParleyServer[] = [];
const clients: ParleyClient[] = [];
const stacks: SipStack[] = [];
const relays: TcpRelay[] = [];
const dirs: string[] = [];
/** How each server was started (to start it again on the same ports and data). */
const started = new Map<ParleyServer, { config: Partial<ServerConfig>; t1: number | undefined; tcp: number; udp: number }>();
/** Log lines per server name, across restarts. */
const logs = new Map<string, string[]>();

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `parley-federation-test-${label}-`));
  dirs.push(dir);
  return dir;
}

function logOf(name: string): string[] {
  let lines = logs.get(name);
  if (!lines) logs.set(name, (lines = []));
  return lines;
}

/**
 * A federated server whose name (and only domain, unless `config.domains` says otherwise) is
 * `name`; `config` adds to and overrides the defaults above. `t1`: the stack's T1 (a small one
 * makes requests into a blackhole time out quickly, so stop() does not wait for them).
 */
async function startServer(name: string, config: Partial<ServerConfig> = {}, options: { t1?: number } = {}): Promise<ParleyServer> {
  const full: Partial<ServerConfig> = {
    domains: [name],
    listen: [`tcp:${HOST}:0`, `udp:${HOST}:0`],
    data: ':memory:',
    ...FEDERATION,
    ...config,
  };
  const log = logOf(name);
  const logger = {
    info: (line: string): void => void log.push(line),
    warn: (line: string): void => void log.push(line),
    error: (line: string): void => void log.push(line),
  };
  const server = await ParleyServer.start(full, { logger, ...(options.t1 !== undefined ? { stack: { t1: options.t1 } } : {}) });
  servers.push(server);
  started.set(server, { config: full, t1: options.t1, tcp: portOf(server, 'tcp'), udp: portOf(server, 'udp') });
  for (const t of server.transports) serverPorts.set(t.local.port, name);
  return server;
}

async function stopServer(server: ParleyServer): Promise<void> {
  const at = servers.indexOf(server);
  if (at >= 0) servers.splice(at, 1);
  await within(server.stop(), 'server.stop()', 10_000);
}

/** The same server again (a stopped one): same configuration, same data, the ports it had. */
async function restartServer(old: ParleyServer): Promise<ParleyServer> {
  const before = started.get(old);
  if (!before) throw new Error('not a server of this test');
  if (before.config.data === ':memory:') throw new Error('restart a server with a data directory');
  const listen = [`tcp:${HOST}:${before.tcp}`, `udp:${HOST}:${before.udp}`];
  return startServer(old.config.domains[0]!, { ...before.config, listen }, before.t1 !== undefined ? { t1: before.t1 } : {});
}

function portOf(server: ParleyServer, protocol: 'udp' | 'tcp'): number {
  const transport = server.transports.find((t) => t.protocol === protocol);
  if (!transport) throw new Error(`the server has no ${protocol} transport`);
  return transport.local.port;
}

/** The server's URI for neighbours (and clients); the same after it stopped. */
function uriOf(server: ParleyServer): string {
  return `sip:${HOST}:${started.get(server)?.tcp ?? portOf(server, 'tcp')};transport=tcp`;
}

/** What waits at the server for a next hop: the view's `relaying` (docs/federation.md "The admin view"). */
function relaying(server: ParleyServer): number {
  return server.federation.view().relaying;
}

function peer(server: ParleyServer): { domain: string; uri: string } {
  return { domain: server.config.domains[0]!, uri: uriOf(server) };
}

function hashes(user: string, domain: string, password = PASSWORD): AccountHashes {
  return {
    MD5: digestHa1('MD5', user, domain, password),
    'SHA-256': digestHa1('SHA-256', user, domain, password),
    'SHA-512-256': digestHa1('SHA-512-256', user, domain, password),
  } as AccountHashes;
}

/** Accounts `user@domain` on their home server. */
function addUsers(server: ParleyServer, ...aors: string[]): void {
  for (const aor of aors) {
    const [user, domain] = aor.split('@') as [string, string];
    server.store.addAccount(`sip:${aor}`, hashes(user, domain));
  }
}

async function connect(server: ParleyServer, aor: string, stateDir?: string): Promise<ParleyClient> {
  const client = await within(
    ParleyClient.connect({ server: uriOf(server), user: aor, password: PASSWORD, stateDir: stateDir ?? (await tempDir(`state-${aor}`)) }),
    `ParleyClient.connect(${aor})`,
  );
  clients.push(client);
  return client;
}

async function closeClient(client: ParleyClient): Promise<void> {
  const at = clients.indexOf(client);
  if (at >= 0) clients.splice(at, 1);
  await within(client.close({ unregister: true }), 'client.close()');
}

interface Chat {
  from: string;
  to: string;
  messageId: string;
  text: string;
}

function inbox(client: ParleyClient): Chat[] {
  const got: Chat[] = [];
  client.on('message', (message) => void got.push(message));
  return got;
}

function receipts(client: ParleyClient): Array<{ messageId: string; by: string }> {
  const got: Array<{ messageId: string; by: string }> = [];
  client.on('delivered', (messageId, by) => void got.push({ messageId, by }));
  return got;
}

/** The server's 'forwarded' events: [messageId, recipient, nextHop]. */
function forwardedBy(server: ParleyServer): Array<{ messageId: string; recipient: string; nextHop: string }> {
  const got: Array<{ messageId: string; recipient: string; nextHop: string }> = [];
  server.federation.on('forwarded', (message, nextHop) => void got.push({ messageId: message.messageId, recipient: message.recipient, nextHop }));
  return got;
}

function linkEvents(server: ParleyServer, name: string): LinkState[] {
  const got: LinkState[] = [];
  server.federation.on('link', (neighbour, state) => {
    if (neighbour === name) got.push(state);
  });
  return got;
}

/** Every retained message of a recipient at a server (a device never seen starts at cursor 0). */
function storedFor(server: ParleyServer, aor: string): StoredMessage[] {
  return server.store.pending(`sip:${aor}`, PROBE_DEVICE, 100_000);
}

async function sendAll(client: ParleyClient, to: string, texts: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const text of texts) {
    const result = await within(client.send(to, text), `send(${to}, ${text})`);
    expect(result.status, `answer to "${text}"`).to.equal(202);
    ids.push(result.messageId);
  }
  return ids;
}

function texts(n: number, label: string): string[] {
  return Array.from({ length: n }, (_, i) => `${label} ${i + 1}: héllo wörld ✓ «${i + 1}»`);
}

/** Polls `condition` (every 5 ms) until it holds; fails after `ms` with `state()` in the message. */
async function eventually(condition: () => boolean, what: string, ms = 5000, state?: () => unknown): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out (${ms} ms) waiting for ${what}${state ? `; now: ${JSON.stringify(state())}` : ''}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}

// ---- routes ----------------------------------------------------------------------------------

/** One route as text: `b.example [b.example c.example]`, or `none`. */
function routeText(server: ParleyServer, domain: string): string {
  const route = server.federation.route(domain);
  return route ? `${route.nextHop} [${route.path.join(' ')}]` : 'none';
}

/** `{ 'a.example → c.example': 'b.example [b.example c.example]', … }` for the pairs of `expected`. */
function routeTable(network: Record<string, ParleyServer>, expected: Record<string, string>): Record<string, string> {
  const table: Record<string, string> = {};
  for (const key of Object.keys(expected)) {
    const [from, domain] = key.split(' → ') as [string, string];
    const server = network[from];
    if (!server) throw new Error(`no server ${from}`);
    table[key] = routeText(server, domain);
  }
  return table;
}

/** Waits until every route of `expected` is as written; fails with the whole table otherwise. */
async function converge(network: Record<string, ParleyServer>, expected: Record<string, string>, what: string, ms = 5000): Promise<void> {
  try {
    await eventually(() => JSON.stringify(routeTable(network, expected)) === JSON.stringify(expected), what, ms);
  } catch {
    expect(routeTable(network, expected), `${what}: routes after ${ms} ms`).to.deep.equal(expected);
  }
}

// ---- raw requests as a neighbour -------------------------------------------------------------

/**
 * A bare DUM on its own stack whose requests all go to `server` over TCP (outbound proxy),
 * authenticating as `username` in realm `peers@<server name>` (the neighbour credentials), or as
 * given.
 */
async function rawDum(server: ParleyServer, options: { aor: string; credentials: Array<{ username: string; password: string; realm?: string }> }): Promise<DialogUsageManager> {
  const stack = new SipStack({ transports: [`udp:${HOST}:0`, `tcp:${HOST}:0`], clock: new ManualClock(Date.now()), dns: false });
  stacks.push(stack);
  await stack.start();
  return new DialogUsageManager(stack, { aor: options.aor, credentials: options.credentials, outboundProxy: uriOf(server) });
}

function neighbourDum(server: ParleyServer, name: string, secret = SECRET): Promise<DialogUsageManager> {
  return rawDum(server, { aor: `sip:parley@${name}`, credentials: [{ username: name, password: secret, realm: `peers@${server.config.domains[0]!}` }] });
}

/** A CPIM body as a Parley client writes it. */
function cpim(options: { from: string; to: string; id: string; text: string }): string {
  const content = Buffer.from(options.text, 'utf8');
  return [
    `From: <${options.from}>`,
    `To: <${options.to}>`,
    `DateTime: ${new Date().toISOString()}`,
    'NS: imdn <urn:ietf:params:imdn>',
    `imdn.Message-ID: ${options.id}`,
    '',
    'Content-Type: text/plain;charset=utf-8',
    `Content-Length: ${content.length}`,
    '',
    options.text,
  ].join('\r\n');
}

/**
 * A MESSAGE as a relaying neighbour sends it (docs/federation.md): `to` and `from` are `sip:` AORs,
 * a CPIM body whose imdn.Message-ID is the Parley-Message-ID; `maxForwards` replaces the header.
 * Resolves with the final response (a refusal after the challenge included).
 */
async function relayMessage(dum: DialogUsageManager, options: { to: string; from: string; path: string; maxForwards?: number; id?: string; text?: string }): Promise<SipMessage> {
  const id = options.id ?? randomBytes(10).toString('hex');
  const request = dum.newRequest('MESSAGE', options.to, {
    from: options.from,
    headers: { 'Parley-Path': options.path, 'Parley-Message-ID': id, Date: new Date().toUTCString() },
    body: cpim({ from: options.from, to: options.to, id, text: options.text ?? 'relayed' }),
    contentType: 'message/cpim',
  });
  if (options.maxForwards !== undefined) request.setHeader('Max-Forwards', String(options.maxForwards));
  try {
    return await within(dum.send(request).final, `MESSAGE ${options.to} (Parley-Path ${options.path}): final response`);
  } catch (error) {
    if (error instanceof DumError && error.response) return error.response;
    throw error;
  }
}

// ---- a TCP relay that can blackhole ---------------------------------------------------------

/**
 * Accepts TCP connections and pipes each to `127.0.0.1:target`. `blackhole()`: every byte, on
 * existing and new connections, in either direction, is dropped without a word (a vanished host
 * behind a silent firewall). `heal()`: the blackholed connections are reset, new ones pass again.
 */
class TcpRelay {
  target = 0;
  private mode: 'pass' | 'blackhole' = 'pass';
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(): Promise<TcpRelay> {
    const server = createServer();
    const relay = new TcpRelay(server);
    server.on('connection', (inbound) => relay.accept(inbound));
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    relays.push(relay);
    return relay;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  get uri(): string {
    return `sip:${HOST}:${this.port};transport=tcp`;
  }

  blackhole(): void {
    this.mode = 'blackhole';
  }

  heal(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.mode = 'pass';
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(inbound: Socket): void {
    this.sockets.add(inbound);
    inbound.on('error', () => undefined);
    inbound.on('close', () => this.sockets.delete(inbound));
    if (this.mode === 'blackhole') return; // bytes read and dropped: nothing answers
    const outbound = tcpConnect(this.target, HOST);
    this.sockets.add(outbound);
    outbound.on('error', () => inbound.destroy());
    outbound.on('close', () => {
      this.sockets.delete(outbound);
      inbound.destroy();
    });
    inbound.on('close', () => outbound.destroy());
    inbound.on('data', (bytes) => {
      if (this.mode === 'pass') outbound.write(bytes);
    });
    outbound.on('data', (bytes) => {
      if (this.mode === 'pass') inbound.write(bytes);
    });
  }
}

// ---------------------------------------------------------------------------------------------

describe('Federation between Parley servers (docs/federation.md)', function () {
  this.timeout(20_000);

  before(() => subscribe('parley:message:out', onOut));
  after(() => unsubscribe('parley:message:out', onOut));

  beforeEach(() => {
    wireOut.length = 0;
    serverPorts.clear();
    logs.clear();
    started.clear();
  });

  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => within(c.close(), 'client.close() in afterEach')));
    await Promise.allSettled(stacks.splice(0).map((s) => s.stop()));
    await Promise.allSettled(servers.splice(0).map((s) => within(s.stop(), 'server.stop() in afterEach', 10_000)));
    await Promise.allSettled(relays.splice(0).map((r) => r.close()));
    await Promise.allSettled(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  describe('a line A–B–C', () => {
    it('routes converge; 20 messages alice@a → carol@c arrive in order, exactly once, relayed hop by hop; carol replies; alice gets 20 delivery notifications', async () => {
      const a = await startServer('a.example');
      const b = await startServer('b.example', { peers: [peer(a)] });
      const c = await startServer('c.example', { peers: [peer(b)] });
      const network = { 'a.example': a, 'b.example': b, 'c.example': c };
      expect(a.federation.name).to.equal('a.example');
      await converge(
        network,
        {
          'a.example → b.example': 'b.example [b.example]',
          'a.example → c.example': 'b.example [b.example c.example]',
          'b.example → a.example': 'a.example [a.example]',
          'b.example → c.example': 'c.example [c.example]',
          'c.example → a.example': 'b.example [b.example a.example]',
          'c.example → b.example': 'b.example [b.example]',
        },
        'the line converging',
      );

      addUsers(a, 'alice@a.example');
      addUsers(c, 'carol@c.example');
      const fromA = forwardedBy(a);
      const fromB = forwardedBy(b);
      const fromC = forwardedBy(c);
      const carol = await connect(c, 'carol@c.example');
      const carolGot = inbox(carol);
      const carolReceipts = receipts(carol);
      const alice = await connect(a, 'alice@a.example');
      const aliceGot = inbox(alice);
      const aliceReceipts = receipts(alice);

      const sent = texts(20, 'across');
      const ids = await sendAll(alice, 'carol@c.example', sent);
      await eventually(() => carolGot.length >= 20, "carol's 20 messages", 10_000, () => carolGot.length);
      await eventually(() => aliceReceipts.length >= 20, "alice's 20 'delivered'", 10_000, () => aliceReceipts.length);
      await drain(300);
      expect(carolGot.map((m) => m.text), "carol's texts, in order").to.deep.equal(sent);
      expect(carolGot.map((m) => m.messageId), "carol's Message-IDs").to.deep.equal(ids);
      expect(carolGot.every((m) => m.from === 'alice@a.example' && m.to === 'carol@c.example'), 'from alice, to carol').to.equal(true);
      expect(deliveriesTo('carol'), "MESSAGEs C sent to carol's device").to.have.length(20);

      // Hop by hop: A → B → C, each 2xx'd hop a 'forwarded'.
      const toCarol = (list: typeof fromA): typeof fromA => list.filter((f) => f.recipient === 'sip:carol@c.example');
      expect(toCarol(fromA).map((f) => f.nextHop), "A's 'forwarded' next hops").to.deep.equal(Array(20).fill('b.example'));
      expect(toCarol(fromA).map((f) => f.messageId).sort(), "A's 'forwarded'").to.deep.equal([...ids].sort());
      expect(toCarol(fromB).map((f) => f.nextHop), "B's 'forwarded' next hops").to.deep.equal(Array(20).fill('c.example'));
      expect(toCarol(fromB).map((f) => f.messageId).sort(), "B's 'forwarded'").to.deep.equal([...ids].sort());
      expect(toCarol(fromC), "C forwards nothing for carol (she is local)").to.have.length(0);

      // The relayed MESSAGEs on the wire (the authorized ones; a challenged first try has no Authorization).
      const aToB = relayedTo('b.example', 'sip:carol@c.example');
      const bToC = relayedTo('c.example', 'sip:carol@c.example');
      expect(new Set(aToB.map((o) => o.message.header('parley-message-id'))).size, 'distinct messages A relayed to B').to.equal(20);
      expect(new Set(bToC.map((o) => o.message.header('parley-message-id'))).size, 'distinct messages B relayed to C').to.equal(20);
      expect([...new Set(aToB.map((o) => o.message.header('parley-message-id')))], 'A → B, first sent in order').to.deep.equal(ids);
      expect([...new Set(bToC.map((o) => o.message.header('parley-message-id')))], 'B → C, first sent in order').to.deep.equal(ids);
      for (const [hop, list, path, maxForwards, username, realm] of [
        ['A → B', aToB, 'a.example', 69, 'a.example', 'peers@b.example'],
        ['B → C', bToC, 'a.example, b.example', 68, 'b.example', 'peers@c.example'],
      ] as const) {
        for (const { message } of list) {
          expect(message.header('parley-path')?.split(',').map((s) => s.trim()).join(', '), `${hop}: Parley-Path`).to.equal(path);
          expect(message.maxForwards, `${hop}: Max-Forwards`).to.equal(maxForwards);
          expect(message.from.uri.toString(), `${hop}: From`).to.equal('sip:alice@a.example');
          expect(message.to.uri.toString(), `${hop}: To`).to.equal('sip:carol@c.example');
          expect(message.hasHeader('date'), `${hop}: Date`).to.equal(true);
          expect((message.contentType ?? '').toLowerCase(), `${hop}: Content-Type`).to.match(/^message\/cpim\b/);
          const authorization = message.header('authorization') ?? '';
          expect(authorization, `${hop}: Authorization username`).to.match(new RegExp(`username="${username.replace('.', '\\.')}"`));
          expect(authorization, `${hop}: Authorization realm`).to.match(new RegExp(`realm="${realm.replace('.', '\\.')}"`));
        }
      }
      const routeB = aToB[0]!.message.route[0]!;
      expect([routeB.uri.host, routeB.uri.port], 'A → B: Route').to.deep.equal([HOST, portOf(b, 'tcp')]);
      expect('lr' in routeB.uri.params, 'A → B: Route ;lr').to.equal(true);

      // The notifications come back C → B → A, in order.
      expect(aliceReceipts.map((r) => r.messageId), "alice's 'delivered', in order").to.deep.equal(ids);
      expect(aliceReceipts.every((r) => r.by === 'carol@c.example'), "'delivered' by carol@c.example").to.equal(true);
      expect(fromC.filter((f) => f.recipient === 'sip:alice@a.example').map((f) => f.nextHop), "C's 'forwarded' notifications").to.deep.equal(Array(20).fill('b.example'));
      expect(fromB.filter((f) => f.recipient === 'sip:alice@a.example').map((f) => f.nextHop), "B's 'forwarded' notifications").to.deep.equal(Array(20).fill('a.example'));
      expect(aliceGot, 'notifications are not messages').to.have.length(0);

      // carol replies.
      const [replyId] = await sendAll(carol, 'alice@a.example', ['got all 20 ✓']);
      await eventually(() => aliceGot.length >= 1, "alice's reply");
      await eventually(() => carolReceipts.length >= 1, "carol's 'delivered' for her reply");
      await drain(300);
      expect(aliceGot.map((m) => [m.from, m.to, m.text, m.messageId]), "alice's messages").to.deep.equal([['carol@c.example', 'alice@a.example', 'got all 20 ✓', replyId]]);
      expect(carolReceipts, "carol's 'delivered'").to.deep.equal([{ messageId: replyId, by: 'alice@a.example' }]);
      expect(carolGot, "carol's messages after the reply").to.have.length(20);
      expect(aliceReceipts, "alice's 'delivered' after the reply").to.have.length(20);
      expect([relaying(a), relaying(b), relaying(c)], 'relaying at A, B, C').to.deep.equal([0, 0, 0]);
      expect(logOf('a.example'), "a's log").to.include.members(['link b.example up', 'route c.example via b.example (2 hops)']);
      expect(logOf('c.example'), "c's log").to.include.members(['link b.example up', 'route a.example via b.example (2 hops)']);
    });

    it('B stopped: messages for carol@c wait on A (stored, relaying 5, nothing lost) and arrive exactly once, in order, when B is back on its port and data', async () => {
      const a = await startServer('a.example');
      const c = await startServer('c.example');
      const b = await startServer('b.example', { data: await tempDir('b'), peers: [peer(a), peer(c)] });
      const network = { 'a.example': a, 'c.example': c };
      const line = {
        'a.example → b.example': 'b.example [b.example]',
        'a.example → c.example': 'b.example [b.example c.example]',
        'c.example → a.example': 'b.example [b.example a.example]',
      };
      await converge({ ...network, 'b.example': b }, line, 'the line converging');
      addUsers(a, 'alice@a.example');
      addUsers(c, 'carol@c.example');
      const carol = await connect(c, 'carol@c.example');
      const carolGot = inbox(carol);
      const alice = await connect(a, 'alice@a.example');
      const aliceReceipts = receipts(alice);

      await stopServer(b);
      await converge(network, { 'a.example → b.example': 'none', 'a.example → c.example': 'none', 'c.example → a.example': 'none' }, 'routes through B withdrawn');

      const sent = texts(5, 'waiting');
      const ids = await sendAll(alice, 'carol@c.example', sent); // c.example is known: accepted, waits
      expect(storedFor(a, 'carol@c.example').map((m) => m.messageId), "on A's store, in order").to.deep.equal(ids);
      expect(storedFor(a, 'carol@c.example').every((m) => m.sender === 'sip:alice@a.example' && m.recipient === 'sip:carol@c.example')).to.equal(true);
      expect(relaying(a), 'relaying at A').to.equal(5);
      await drain(500);
      expect(carolGot, 'carol gets nothing while B is down').to.have.length(0);

      const b2 = await restartServer(b);
      await converge({ ...network, 'b.example': b2 }, line, 'the line back');
      await eventually(() => carolGot.length >= 5, "carol's 5 messages", 8000, () => carolGot.length);
      await eventually(() => aliceReceipts.length >= 5, "alice's 5 'delivered'", 8000, () => aliceReceipts.length);
      await drain(300);
      expect(carolGot.map((m) => m.text), "carol's texts, in order").to.deep.equal(sent);
      expect(carolGot.map((m) => m.messageId)).to.deep.equal(ids);
      expect(deliveriesTo('carol'), "MESSAGEs C sent to carol's device").to.have.length(5);
      expect(storedFor(c, 'carol@c.example').map((m) => m.messageId), "stored once each at C").to.deep.equal(ids);
      expect(aliceReceipts.map((r) => r.messageId), "alice's 'delivered'").to.deep.equal(ids);
      expect(relaying(a), 'relaying at A afterwards').to.equal(0);
      expect(logOf('a.example'), "a's log").to.include('route c.example withdrawn');
    });
  });

  describe('a ring A–B–C–D–A', () => {
    it('shortest paths (ties to the lower name); B stopped → A reaches C via D within a few pings and messages still arrive; B back → the first routes again', async () => {
      const a = await startServer('a.example');
      const b = await startServer('b.example', { data: await tempDir('b'), peers: [peer(a)] });
      const c = await startServer('c.example', { peers: [peer(b)] });
      const d = await startServer('d.example', { peers: [peer(c), peer(a)] });
      const ring = {
        'a.example → b.example': 'b.example [b.example]',
        'a.example → c.example': 'b.example [b.example c.example]',
        'a.example → d.example': 'd.example [d.example]',
        'b.example → a.example': 'a.example [a.example]',
        'b.example → c.example': 'c.example [c.example]',
        'b.example → d.example': 'a.example [a.example d.example]',
        'c.example → a.example': 'b.example [b.example a.example]',
        'c.example → b.example': 'b.example [b.example]',
        'c.example → d.example': 'd.example [d.example]',
        'd.example → a.example': 'a.example [a.example]',
        'd.example → b.example': 'a.example [a.example b.example]',
        'd.example → c.example': 'c.example [c.example]',
      };
      await converge({ 'a.example': a, 'b.example': b, 'c.example': c, 'd.example': d }, ring, 'the ring converging');
      addUsers(a, 'alice@a.example');
      addUsers(c, 'carol@c.example');
      const carol = await connect(c, 'carol@c.example');
      const carolGot = inbox(carol);
      const alice = await connect(a, 'alice@a.example');
      const fromA = forwardedBy(a);
      const bootBefore = b.federation.view().boot;

      await stopServer(b);
      const stoppedAt = performance.now();
      const withoutB = {
        'a.example → b.example': 'none',
        'a.example → c.example': 'd.example [d.example c.example]',
        'a.example → d.example': 'd.example [d.example]',
        'c.example → a.example': 'd.example [d.example a.example]',
        'c.example → b.example': 'none',
        'c.example → d.example': 'd.example [d.example]',
        'd.example → a.example': 'a.example [a.example]',
        'd.example → b.example': 'none',
        'd.example → c.example': 'c.example [c.example]',
      };
      await converge({ 'a.example': a, 'c.example': c, 'd.example': d }, withoutB, 'the ring without B', 5 * PING_MS);
      expect(performance.now() - stoppedAt, 'ms until A went via D').to.be.below(5 * PING_MS);

      const first = texts(5, 'around');
      const firstIds = await sendAll(alice, 'carol@c.example', first);
      await eventually(() => carolGot.length >= 5, "carol's 5 messages via D", 8000, () => carolGot.length);
      expect(fromA.filter((f) => f.recipient === 'sip:carol@c.example').map((f) => f.nextHop), "A's next hop without B").to.deep.equal(Array(5).fill('d.example'));

      const b2 = await restartServer(b);
      expect(b2.federation.view().boot, 'a new boot after the restart').to.not.equal(bootBefore);
      await converge({ 'a.example': a, 'b.example': b2, 'c.example': c, 'd.example': d }, ring, 'the ring with B back', 8000);
      const second = texts(2, 'back');
      const secondIds = await sendAll(alice, 'carol@c.example', second);
      await eventually(() => carolGot.length >= 7, "carol's 2 messages via B", 8000, () => carolGot.length);
      await drain(300);
      expect(carolGot.map((m) => m.text), "carol's texts, in order").to.deep.equal([...first, ...second]);
      expect(carolGot.map((m) => m.messageId)).to.deep.equal([...firstIds, ...secondIds]);
      expect(deliveriesTo('carol'), "MESSAGEs C sent to carol's device").to.have.length(7);
      expect(
        fromA.filter((f) => f.recipient === 'sip:carol@c.example').map((f) => f.nextHop),
        "A's next hops: via D, then via B again",
      ).to.deep.equal([...Array(5).fill('d.example'), ...Array(2).fill('b.example')]);
      expect(logOf('a.example'), "a's log").to.include.members(['route c.example via d.example (2 hops)', 'route b.example withdrawn']);
    });
  });

  describe('partitions', () => {
    it('A–B: B stopped then back, then A stopped then back: both sides learn each other again, and messages sent during each partition arrive once, in order', async () => {
      const b = await startServer('b.example', { data: await tempDir('b') });
      const a = await startServer('a.example', { data: await tempDir('a'), peers: [peer(b)] });
      const both = { 'a.example → b.example': 'b.example [b.example]', 'b.example → a.example': 'a.example [a.example]' };
      await converge({ 'a.example': a, 'b.example': b }, both, 'A and B linked');
      addUsers(a, 'alice@a.example');
      addUsers(b, 'bob@b.example');
      const aliceState = await tempDir('alice');
      const bobState = await tempDir('bob');

      // 1. B (the side not configured) goes away: alice's messages wait on A.
      let alice = await connect(a, 'alice@a.example', aliceState);
      let aliceReceipts = receipts(alice);
      await stopServer(b);
      await converge({ 'a.example': a }, { 'a.example → b.example': 'none' }, "A withdrawing B's route");
      const toBob = texts(3, 'while B is down');
      const toBobIds = await sendAll(alice, 'bob@b.example', toBob);
      expect(relaying(a), 'relaying at A').to.equal(3);
      const b2 = await restartServer(b);
      await converge({ 'a.example': a, 'b.example': b2 }, both, 'A and B linked again (A retried)', 8000);
      const bob = await connect(b2, 'bob@b.example', bobState);
      const bobGot = inbox(bob);
      await eventually(() => bobGot.length >= 3, "bob's 3 messages", 8000, () => bobGot.length);
      await eventually(() => aliceReceipts.length >= 3, "alice's 3 'delivered'", 8000, () => aliceReceipts.length);
      await drain(200);
      expect(bobGot.map((m) => m.text), "bob's texts").to.deep.equal(toBob);
      expect(bobGot.map((m) => m.messageId)).to.deep.equal(toBobIds);
      expect(aliceReceipts.map((r) => r.messageId), "alice's 'delivered'").to.deep.equal(toBobIds);
      expect(relaying(a), 'relaying at A afterwards').to.equal(0);

      // 2. A (the configured side) goes away: bob's messages wait on B.
      await closeClient(alice);
      await stopServer(a);
      await converge({ 'b.example': b2 }, { 'b.example → a.example': 'none' }, "B withdrawing A's route");
      const toAlice = texts(2, 'while A is down');
      const toAliceIds = await sendAll(bob, 'alice@a.example', toAlice);
      expect(relaying(b2), 'relaying at B').to.equal(2);
      const a2 = await restartServer(a);
      await converge({ 'a.example': a2, 'b.example': b2 }, both, 'A and B linked again (A linked at start)', 8000);
      alice = await connect(a2, 'alice@a.example', aliceState);
      const aliceGot = inbox(alice);
      aliceReceipts = receipts(alice);
      const bobReceipts = receipts(bob);
      await eventually(() => aliceGot.length >= 2, "alice's 2 messages", 8000, () => aliceGot.length);
      await eventually(() => bobReceipts.length >= 2, "bob's 2 'delivered'", 8000, () => bobReceipts.length);
      await drain(300);
      expect(aliceGot.map((m) => m.text), "alice's texts").to.deep.equal(toAlice);
      expect(aliceGot.map((m) => m.messageId)).to.deep.equal(toAliceIds);
      expect(bobReceipts.map((r) => r.messageId), "bob's 'delivered'").to.deep.equal(toAliceIds);
      expect(aliceReceipts, "no 'delivered' twice for alice's old messages (same device)").to.have.length(0);
      expect(bobGot, 'bob got nothing more').to.have.length(3);
      expect(relaying(b2), 'relaying at B afterwards').to.equal(0);
    });

    it('a neighbour that vanishes (its traffic blackholed): both links down after 3 missed pings, routes withdrawn; healed: links up again and the messages sent meanwhile arrive once, in order', async () => {
      const relayA = await TcpRelay.start();
      const relayB = await TcpRelay.start();
      // Each server is reached by the other only through its relay (its advertised URI).
      const a = await startServer('a.example', { advertise: relayA.uri }, { t1: 40 });
      relayA.target = portOf(a, 'tcp');
      serverPorts.set(relayA.port, 'a.example');
      const b = await startServer('b.example', { advertise: relayB.uri }, { t1: 40 });
      relayB.target = portOf(b, 'tcp');
      serverPorts.set(relayB.port, 'b.example');
      const aLinks = linkEvents(a, 'b.example');
      const bLinks = linkEvents(b, 'a.example');
      a.federation.addPeer({ domain: 'b.example', uri: relayB.uri });
      const network = { 'a.example': a, 'b.example': b };
      const both = { 'a.example → b.example': 'b.example [b.example]', 'b.example → a.example': 'a.example [a.example]' };
      await converge(network, both, 'A and B linked through the relays');
      expect(a.federation.view().neighbours.map((n) => [n.name, n.uri, n.state]), "A's neighbours").to.deep.equal([['b.example', relayB.uri, 'up']]);
      expect(b.federation.view().neighbours.map((n) => [n.name, n.uri, n.state]), "B's neighbours").to.deep.equal([['a.example', relayA.uri, 'up']]);
      addUsers(a, 'alice@a.example');
      addUsers(b, 'bob@b.example');
      const alice = await connect(a, 'alice@a.example');
      const aliceGot = inbox(alice);
      const bob = await connect(b, 'bob@b.example');
      const bobGot = inbox(bob);

      relayA.blackhole();
      relayB.blackhole();
      const cutAt = performance.now();
      await eventually(() => aLinks.includes('down') && bLinks.includes('down'), 'both links down', 3000, () => ({ aLinks, bLinks }));
      const elapsed = performance.now() - cutAt;
      expect(elapsed, 'ms until both links were down').to.be.within(2 * PING_MS, 6 * PING_MS);
      await converge(network, { 'a.example → b.example': 'none', 'b.example → a.example': 'none' }, 'routes withdrawn', 1000);

      const toBob = texts(3, 'partitioned a→b');
      const toAlice = texts(2, 'partitioned b→a');
      const toBobIds = await sendAll(alice, 'bob@b.example', toBob);
      const toAliceIds = await sendAll(bob, 'alice@a.example', toAlice);
      await drain(300);
      expect([bobGot.length, aliceGot.length], 'nothing crosses the partition').to.deep.equal([0, 0]);

      relayA.heal();
      relayB.heal();
      await converge(network, both, 'A and B linked again', 8000);
      expect(aLinks.at(-1), "A's link to B").to.equal('up');
      expect(bLinks.at(-1), "B's link to A").to.equal('up');
      await eventually(() => bobGot.length >= 3 && aliceGot.length >= 2, 'the messages sent during the partition', 8000, () => [bobGot.length, aliceGot.length]);
      await drain(300);
      expect(bobGot.map((m) => m.text), "bob's texts").to.deep.equal(toBob);
      expect(bobGot.map((m) => m.messageId)).to.deep.equal(toBobIds);
      expect(aliceGot.map((m) => m.text), "alice's texts").to.deep.equal(toAlice);
      expect(aliceGot.map((m) => m.messageId)).to.deep.equal(toAliceIds);
      const notification = (o: Out): boolean => /Content-Disposition:\s*notification/i.test(o.message.body.toString('utf8'));
      expect(deliveriesTo('bob').filter((o) => !notification(o)), "messages B sent to bob's device").to.have.length(3);
      expect(deliveriesTo('alice').filter((o) => !notification(o)), "messages A sent to alice's device").to.have.length(2);
      expect(logOf('a.example'), "a's log").to.include('link b.example down (3 pings missed)');
      expect(logOf('b.example'), "b's log").to.include('link a.example down (3 pings missed)');
      expect(logOf('a.example'), "a's log").to.include('route b.example withdrawn');
    });
  });

  describe('loops and hop limits', () => {
    it('static routes pointing at each other (x.example: A → B, B → A): one 482, then nothing more (no storm)', async () => {
      const a = await startServer('a.example', { routes: { 'x.example': 'b.example' } });
      const b = await startServer('b.example', { peers: [peer(a)], routes: { 'x.example': 'a.example' } });
      await converge({ 'a.example': a, 'b.example': b }, { 'a.example → b.example': 'b.example [b.example]', 'b.example → a.example': 'a.example [a.example]' }, 'A and B linked');
      addUsers(a, 'alice@a.example');
      const alice = await connect(a, 'alice@a.example');
      const fromA = forwardedBy(a);
      const fromB = forwardedBy(b);

      const [id] = await sendAll(alice, 'u@x.example', ['round and round?']);
      const loops = (): Out[] => wireOut.filter((o) => !o.message.isRequest && o.message.status === 482);
      await eventually(() => loops().length >= 1, 'a 482');
      await drain(1500); // several relay retry periods (100 ms doubling to 1 s)
      expect(loops(), '482 answers').to.have.length(1);
      const aToB = relayedTo('b.example', 'sip:u@x.example');
      const bToA = relayedTo('a.example', 'sip:u@x.example');
      expect(aToB.map((o) => [o.message.header('parley-message-id'), o.message.header('parley-path'), o.message.maxForwards]), 'A → B').to.deep.equal([[id, 'a.example', 69]]);
      expect(bToA.map((o) => [o.message.header('parley-message-id'), o.message.header('parley-path')?.split(',').map((s) => s.trim()).join(', '), o.message.maxForwards]), 'B → A').to.deep.equal([
        [id, 'a.example, b.example', 68],
      ]);
      expect(loops()[0]!.message.callId, 'the 482 answers B → A').to.equal(bToA[0]!.message.callId);
      expect(loops()[0]!.message.reason).to.equal('Loop Detected');
      expect(wireOut.filter((o) => o.message.isRequest && o.message.method === 'MESSAGE' && o.message.requestUri.toString() === 'sip:u@x.example' && serverPorts.has(o.tuple.port)).length, 'MESSAGEs for u@x.example between servers (with challenges)').to.be.at.most(4);
      expect(fromA.map((f) => [f.messageId, f.nextHop]), "A's 'forwarded'").to.deep.equal([[id, 'b.example']]);
      expect(fromB, "B's 'forwarded'").to.have.length(0);
      expect(logOf('b.example').some((line) => line.includes('482')), "B logs the 482 skip").to.equal(true);
      expect([relaying(a), relaying(b)], 'relaying at A, B').to.deep.equal([0, 0]);
      // Static routes are used, never advertised.
      const routeDocs = wireOut.filter((o) => o.message.isRequest && o.message.method === 'NOTIFY' && /^application\/parley-routes\+json\b/i.test(o.message.contentType ?? '') && o.message.body.length > 0);
      expect(routeDocs.length, 'parley-routes NOTIFYs seen').to.be.at.least(2);
      expect(routeDocs.filter((o) => o.message.body.toString('utf8').includes('x.example')), 'NOTIFYs mentioning x.example').to.have.length(0);
    });

    it("a local user's Max-Forwards: over maxForwards (70) it is capped, a lower one kept; the first hop gets one less; a 404 at the home drops the message (no retry)", async () => {
      const a = await startServer('a.example');
      const b = await startServer('b.example', { peers: [peer(a)] });
      await converge({ 'a.example': a, 'b.example': b }, { 'a.example → b.example': 'b.example [b.example]' }, 'A and B linked');
      addUsers(a, 'alice@a.example');
      addUsers(b, 'bob@b.example');
      const dum = await rawDum(a, { aor: 'sip:alice@a.example', credentials: [{ username: 'alice', password: PASSWORD }] });
      const sendWith = async (to: string, maxForwards: number, text: string): Promise<number> => {
        const request = dum.newRequest('MESSAGE', to, { body: text, contentType: 'text/plain;charset=utf-8' });
        request.setHeader('Max-Forwards', String(maxForwards));
        return (await within(dum.send(request).final, `MESSAGE ${to} Max-Forwards ${maxForwards}`)).status;
      };
      expect(await sendWith('sip:bob@b.example', 100, 'hundred'), 'Max-Forwards 100').to.equal(202);
      expect(await sendWith('sip:bob@b.example', 5, 'five'), 'Max-Forwards 5').to.equal(202);
      expect(await sendWith('sip:nobody@b.example', 70, 'to nobody'), 'to nobody@b.example (A does not know B’s users)').to.equal(202);
      await eventually(() => storedFor(b, 'bob@b.example').length >= 2, "bob's 2 messages at B");
      await eventually(() => relayedTo('b.example', 'sip:nobody@b.example').length >= 1, 'the MESSAGE for nobody relayed');
      await drain(1200); // the relay retry periods: a 404 is not retried
      expect(
        relayedTo('b.example', 'sip:bob@b.example').map((o) => [o.message.body.toString('utf8'), o.message.maxForwards]),
        'A → B Max-Forwards',
      ).to.deep.equal([
        ['hundred', 69],
        ['five', 4],
      ]);
      expect(storedFor(b, 'bob@b.example').map((m) => m.body.toString('utf8')), 'stored for bob, in order').to.deep.equal(['hundred', 'five']);
      expect(relayedTo('b.example', 'sip:nobody@b.example'), 'the MESSAGE for nobody: sent once, 404, dropped').to.have.length(1);
      expect(wireOut.filter((o) => !o.message.isRequest && o.message.status === 404 && o.message.cseq.method === 'MESSAGE'), '404 answers').to.have.length(1);
      expect(relaying(a), 'relaying at A').to.equal(0);
    });

    it('a MESSAGE from an authenticated neighbour: Max-Forwards 0 → 483; our name in Parley-Path → 482; sender of our domain → 403; no route → 480 with Retry-After; otherwise 202 and relayed', async () => {
      const b = await startServer('b.example');
      const c = await startServer('c.example', { peers: [peer(b)] });
      await converge({ 'b.example': b, 'c.example': c }, { 'b.example → c.example': 'c.example [c.example]' }, 'B and C linked');
      addUsers(b, 'bob@b.example');
      addUsers(c, 'carol@c.example');
      // "a.example" is no configured peer of B: it authenticates with the network's secret.
      const dum = await neighbourDum(b, 'a.example');

      const hops = await relayMessage(dum, { to: 'sip:carol@c.example', from: 'sip:alice@a.example', path: 'a.example', maxForwards: 0 });
      expect([hops.status, hops.reason], 'Max-Forwards 0 to carol@c.example').to.deep.equal([483, 'Too Many Hops']);
      const loop = await relayMessage(dum, { to: 'sip:carol@c.example', from: 'sip:alice@a.example', path: 'a.example, b.example', maxForwards: 10 });
      expect([loop.status, loop.reason], 'Parley-Path with b.example').to.deep.equal([482, 'Loop Detected']);
      const loopFirst = await relayMessage(dum, { to: 'sip:carol@c.example', from: 'sip:alice@a.example', path: 'b.example, a.example', maxForwards: 10 });
      expect(loopFirst.status, 'Parley-Path with b.example first').to.equal(482);
      // Check 3 says 403 after the neighbour's digest; a server that challenges a From of its own
      // domain in the users' realm (which a neighbour cannot answer) ends at 401: refused either way.
      const forged = await relayMessage(dum, { to: 'sip:carol@c.example', from: 'sip:bob@b.example', path: 'a.example', maxForwards: 10 });
      expect(forged.status, "a neighbour speaking for B's user").to.be.oneOf([401, 403]);
      const nowhere = await relayMessage(dum, { to: 'sip:u@nowhere.example', from: 'sip:alice@a.example', path: 'a.example', maxForwards: 10 });
      expect([nowhere.status, nowhere.reason], 'a domain B cannot route').to.deep.equal([480, 'No route to domain']);
      expect(nowhere.hasHeader('retry-after'), '480 with Retry-After').to.equal(true);
      expect(storedFor(b, 'carol@c.example'), 'nothing stored at B for carol').to.have.length(0);
      expect(storedFor(c, 'carol@c.example'), 'nothing relayed to C').to.have.length(0);

      // Max-Forwards 0 to one of B's own users is no forwarding: taken.
      const localId = randomBytes(10).toString('hex');
      const local = await relayMessage(dum, { to: 'sip:bob@b.example', from: 'sip:alice@a.example', path: 'a.example', maxForwards: 0, id: localId, text: 'for bob' });
      expect(local.status, 'Max-Forwards 0 to bob@b.example').to.equal(202);
      expect(storedFor(b, 'bob@b.example').map((m) => [m.messageId, m.sender]), 'stored for bob').to.deep.equal([[localId, 'sip:alice@a.example']]);

      // The same neighbour, a well-formed relay: 202 at B, relayed to C once (the same id twice is stored once).
      const id = randomBytes(10).toString('hex');
      const ok = await relayMessage(dum, { to: 'sip:carol@c.example', from: 'sip:alice@a.example', path: 'a.example', maxForwards: 10, id, text: 'from afar' });
      expect(ok.status, 'a good relay').to.equal(202);
      const again = await relayMessage(dum, { to: 'sip:carol@c.example', from: 'sip:alice@a.example', path: 'a.example', maxForwards: 10, id, text: 'from afar' });
      expect(again.status, 'the same Parley-Message-ID again').to.equal(202);
      await eventually(() => storedFor(c, 'carol@c.example').length >= 1, 'the message stored at C');
      await drain(300);
      expect(storedFor(c, 'carol@c.example').map((m) => [m.messageId, m.sender, m.body.toString('utf8').endsWith('from afar')]), 'stored at C').to.deep.equal([[id, 'sip:alice@a.example', true]]);
      const bToC = relayedTo('c.example', 'sip:carol@c.example');
      expect(new Set(bToC.map((o) => o.message.header('parley-message-id'))), 'relayed B → C').to.deep.equal(new Set([id]));
      expect(bToC[0]!.message.header('parley-path')?.split(',').map((s) => s.trim()), 'Parley-Path B → C').to.deep.equal(['a.example', 'b.example']);
      expect(bToC[0]!.message.maxForwards, 'Max-Forwards B → C').to.equal(9);
    });
  });

  describe('authentication', () => {
    it('a server with a different secret: its link is refused (and retried), no routes either way; a raw MESSAGE with the wrong secret gets 401/403 and is not stored', async () => {
      const b = await startServer('b.example');
      const a = await startServer('a.example', { federationSecret: 'not the network secret' });
      const links = linkEvents(a, 'b.example');
      a.federation.addPeer(peer(b));
      // (The first 'connecting' may come before the event is heard: only the states after it count.)
      await eventually(() => links.some((s) => s !== 'connecting'), "A's link leaving 'connecting'", 5000, () => links);
      expect(links.find((s) => s !== 'connecting'), "A's link state after the SUBSCRIBE with the wrong secret").to.equal('refused');
      expect(a.federation.view().neighbours.map((n) => [n.name, n.state]), "A's view").to.deep.equal([['b.example', 'refused']]);
      // Tried again after linkRetryMs (100 ms), refused again.
      await eventually(() => links.filter((s) => s !== 'connecting').length >= 2, 'a second attempt', 3000, () => links);
      const afterFirst = links.slice(links.indexOf('refused'));
      expect(afterFirst.slice(0, 3), "A's link states from the first refusal").to.deep.equal(['refused', 'connecting', 'refused']);
      expect(links, 'never up').to.not.include('up');
      expect(logOf('a.example').some((line) => /^link b\.example refused\b/.test(line)), "a logs 'link b.example refused'").to.equal(true);
      expect([routeText(a, 'b.example'), routeText(b, 'a.example')], 'routes').to.deep.equal(['none', 'none']);
      expect(b.federation.view().neighbours.filter((n) => n.state === 'up'), "B's neighbours up").to.have.length(0);
      expect(b.federation.view().routes.map((r) => r.domain), "B's routes").to.deep.equal(['b.example']);

      addUsers(b, 'bob@b.example');
      const wrong = await relayMessage(await neighbourDum(b, 'a.example', 'not the network secret'), { to: 'sip:bob@b.example', from: 'sip:alice@a.example', path: 'a.example' });
      expect(wrong.status, 'the wrong secret').to.be.oneOf([401, 403]);
      const ours = await relayMessage(await neighbourDum(b, 'b.example'), { to: 'sip:bob@b.example', from: 'sip:alice@a.example', path: 'a.example' });
      expect(ours.status, "B's own name as the neighbour (the right secret)").to.equal(403);
      expect(storedFor(b, 'bob@b.example'), 'nothing stored for bob').to.have.length(0);
      const right = await relayMessage(await neighbourDum(b, 'a.example'), { to: 'sip:bob@b.example', from: 'sip:alice@a.example', path: 'a.example' });
      expect(right.status, 'the right secret (control)').to.equal(202);
      expect(storedFor(b, 'bob@b.example'), 'stored for bob').to.have.length(1);
    });

    it("a peer URI where another server answers (challenged in realm peers@b.example for the link to x.example): no credentials go out, the link is refused", async () => {
      const b = await startServer('b.example');
      const a = await startServer('a.example');
      const links = linkEvents(a, 'x.example');
      a.federation.addPeer({ domain: 'x.example', uri: uriOf(b) });
      await eventually(() => links.some((s) => s !== 'connecting'), "A's link to x.example leaving 'connecting'", 5000, () => links);
      expect(links.find((s) => s !== 'connecting'), "A's link to x.example").to.equal('refused');
      expect(links, 'never up').to.not.include('up');
      expect(routeText(a, 'x.example'), 'no route to x.example').to.equal('none');
      // Issue 16: A's secrets are bound to their realms (peers@x.example here): B's realm gets no answer.
      const toB = wireOut.filter((o) => o.message.isRequest && serverPorts.get(o.tuple.port) === 'b.example' && o.message.method === 'SUBSCRIBE');
      expect(toB.length, 'SUBSCRIBEs to B').to.be.greaterThan(0);
      expect(toB.filter((o) => o.message.hasHeader('authorization')).length, 'SUBSCRIBEs to B with credentials').to.equal(0);
      await drain();
      expect(routeText(b, 'a.example'), 'B never linked back').to.equal('none');
      const neighbours = a.federation.view().neighbours.map((n) => [n.name, n.state, n.origin]);
      expect(neighbours, "A's neighbours").to.deep.equal([['x.example', 'refused', 'config']]);
    });
  });

  describe('the admin view', () => {
    it("view() is docs/federation.md's JSON: server, domains, boot, uri, neighbours (state, since, origin), routes (local ones with nextHop null), relaying; also over OPTIONS", async () => {
      const t0 = Date.now();
      const a = await startServer('a.example', { domains: ['a.example', 'a2.example'] });
      const b = await startServer('b.example', { peers: [peer(a)] });
      const c = await startServer('c.example', { peers: [peer(b)] });
      await converge(
        { 'a.example': a, 'c.example': c },
        { 'a.example → c.example': 'b.example [b.example c.example]', 'c.example → a.example': 'b.example [b.example a.example]', 'c.example → a2.example': 'b.example [b.example a.example]' },
        'the line converging',
      );
      const t1 = Date.now();
      const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
      const check = (server: ParleyServer, expected: { neighbours: Array<{ name: string; uri: string; origin: string }>; routes: Array<{ domain: string; nextHop: string | null; path: string[] }> }): void => {
        const view = server.federation.view();
        const name = server.config.domains[0]!;
        expect(JSON.parse(JSON.stringify(view)), `${name}: plain JSON`).to.deep.equal(view);
        expect(Object.keys(view).sort(), `${name}: fields`).to.deep.equal(['boot', 'domains', 'neighbours', 'relaying', 'routes', 'server', 'uri']);
        expect(view.server).to.equal(name);
        expect(view.domains).to.deep.equal(server.config.domains);
        expect(view.boot, `${name}: boot`).to.match(uuid);
        expect(view.uri, `${name}: uri`).to.equal(uriOf(server));
        expect(view.relaying, `${name}: relaying`).to.equal(0);
        for (const n of view.neighbours) {
          expect(Object.keys(n).sort(), `${name}: neighbour fields`).to.deep.equal(['name', 'origin', 'since', 'state', 'uri']);
          expect(new Date(n.since).toISOString(), `${name}: since is ISO 8601`).to.equal(n.since);
          expect(Date.parse(n.since), `${name}: since`).to.be.within(t0 - 1000, t1 + 1000);
        }
        expect(
          [...view.neighbours].sort((x, y) => x.name.localeCompare(y.name)).map((n) => ({ name: n.name, uri: n.uri, state: n.state, origin: n.origin })),
          `${name}: neighbours`,
        ).to.deep.equal(expected.neighbours.map((n) => ({ ...n, state: 'up' })));
        for (const r of view.routes) expect(Object.keys(r).sort(), `${name}: route fields`).to.deep.equal(['domain', 'nextHop', 'path']);
        expect([...view.routes].sort((x, y) => x.domain.localeCompare(y.domain)), `${name}: routes`).to.deep.equal(expected.routes);
      };
      check(a, {
        neighbours: [{ name: 'b.example', uri: uriOf(b), origin: 'inbound' }],
        routes: [
          { domain: 'a.example', nextHop: null, path: ['a.example'] },
          { domain: 'a2.example', nextHop: null, path: ['a.example'] },
          { domain: 'b.example', nextHop: 'b.example', path: ['b.example'] },
          { domain: 'c.example', nextHop: 'b.example', path: ['b.example', 'c.example'] },
        ],
      });
      check(b, {
        neighbours: [
          { name: 'a.example', uri: uriOf(a), origin: 'config' },
          { name: 'c.example', uri: uriOf(c), origin: 'inbound' },
        ],
        routes: [
          { domain: 'a.example', nextHop: 'a.example', path: ['a.example'] },
          { domain: 'a2.example', nextHop: 'a.example', path: ['a.example'] },
          { domain: 'b.example', nextHop: null, path: ['b.example'] },
          { domain: 'c.example', nextHop: 'c.example', path: ['c.example'] },
        ],
      });
      check(c, {
        neighbours: [{ name: 'b.example', uri: uriOf(b), origin: 'config' }],
        routes: [
          { domain: 'a.example', nextHop: 'b.example', path: ['b.example', 'a.example'] },
          { domain: 'a2.example', nextHop: 'b.example', path: ['b.example', 'a.example'] },
          { domain: 'b.example', nextHop: 'b.example', path: ['b.example'] },
          { domain: 'c.example', nextHop: null, path: ['c.example'] },
        ],
      });
      expect(new Set([a, b, c].map((s) => s.federation.view().boot)).size, 'a boot per server').to.equal(3);

      // The link documents on the wire: SUBSCRIBE hellos, then NOTIFYs per dialog numbered 1, 2, …
      // (the first full), paths starting with the notifier, and split horizon (nothing advertised
      // back to the neighbour it is learned from).
      const subscribes = wireOut.filter((o) => o.message.isRequest && o.message.method === 'SUBSCRIBE' && (o.message.header('event') ?? '').startsWith('parley-routes'));
      const hellos = subscribes.filter((o) => o.message.body.length > 0).map((o) => ({ to: serverPorts.get(o.tuple.port), type: o.message.contentType, expires: o.message.expires, body: JSON.parse(o.message.body.toString('utf8')) as unknown }));
      for (const [from, to] of [['a.example', 'b.example'], ['b.example', 'a.example'], ['b.example', 'c.example'], ['c.example', 'b.example']] as const) {
        const server = { 'a.example': a, 'b.example': b, 'c.example': c }[from];
        const mine = hellos.filter((h) => h.to === to && (h.body as { server?: string }).server === from);
        expect(mine.length, `SUBSCRIBEs ${from} → ${to} with a hello`).to.be.at.least(1);
        for (const h of mine) {
          expect((h.type ?? '').toLowerCase(), `${from} → ${to}: hello Content-Type`).to.match(/^application\/parley-hello\+json\b/);
          expect(h.expires, `${from} → ${to}: Expires`).to.equal(600);
          expect(h.body, `${from} → ${to}: hello`).to.deep.equal({ server: from, boot: server.federation.view().boot, uri: uriOf(server) });
        }
      }
      interface RoutesDoc {
        server: string;
        boot: string;
        uri: string;
        version: number;
        full: boolean;
        routes: Array<{ domain: string; path: string[] }>;
        withdrawn?: string[];
      }
      const notifies = wireOut.filter((o) => o.message.isRequest && o.message.method === 'NOTIFY' && o.message.body.length > 0 && /^application\/parley-routes\+json\b/i.test(o.message.contentType ?? ''));
      const byDialog = new Map<string, { to: string | undefined; docs: RoutesDoc[] }>();
      for (const o of notifies) {
        const key = `${o.message.callId} ${o.message.from.tag ?? ''}`;
        const entry = byDialog.get(key) ?? { to: serverPorts.get(o.tuple.port), docs: [] };
        entry.docs.push(JSON.parse(o.message.body.toString('utf8')) as RoutesDoc);
        byDialog.set(key, entry);
      }
      expect(byDialog.size, 'parley-routes dialogs (one per direction of each link)').to.be.at.least(4);
      for (const { to, docs } of byDialog.values()) {
        const from = docs[0]!.server;
        const what = `NOTIFYs ${from} → ${to}`;
        expect(docs[0]!.full, `${what}: the first is full`).to.equal(true);
        expect(docs.map((d) => d.version), `${what}: versions`).to.deep.equal(docs.map((_, i) => docs[0]!.version + i));
        for (const d of docs) {
          expect(d.server, `${what}: server`).to.equal(from);
          for (const r of d.routes) expect(r.path[0], `${what}: ${r.domain}'s path starts with the notifier`).to.equal(from);
          // Split horizon: what `to` itself serves, or what the notifier learned through `to`, never comes back to it.
          const learnedFromReceiver = d.routes.filter((r) => r.path.includes(to ?? '?'));
          expect(learnedFromReceiver, `${what}: routes through the receiver`).to.deep.equal([]);
        }
      }
      const bToA = [...byDialog.values()].filter((e) => e.to === 'a.example' && e.docs[0]!.server === 'b.example').flatMap((e) => e.docs);
      const advertisedToA = new Map<string, string[]>();
      for (const d of bToA) {
        if (d.full) advertisedToA.clear();
        for (const r of d.routes) advertisedToA.set(r.domain, r.path);
        for (const w of d.withdrawn ?? []) advertisedToA.delete(w);
      }
      expect(Object.fromEntries(advertisedToA), 'what B advertised to A, all told').to.deep.equal({ 'b.example': ['b.example'], 'c.example': ['b.example', 'c.example'] });

      // The same view over the wire: OPTIONS with Accept: application/parley-network+json from loopback.
      const dum = await rawDum(a, { aor: 'sip:admin@localhost', credentials: [] });
      const options = dum.newRequest('OPTIONS', uriOf(a), { headers: { Accept: 'application/parley-network+json' } });
      const response = await within(dum.send(options).final, 'OPTIONS with Accept: application/parley-network+json');
      expect(response.status, 'OPTIONS').to.equal(200);
      expect((response.contentType ?? '').toLowerCase(), 'Content-Type').to.match(/^application\/parley-network\+json\b/);
      const wire = JSON.parse(response.body.toString('utf8')) as ReturnType<ParleyServer['federation']['view']>;
      expect(wire, 'the view over OPTIONS').to.deep.equal(JSON.parse(JSON.stringify(a.federation.view())));
    });
  });

  describe('unknown domains', () => {
    it('a local user to a domain never heard of: 404 No route to domain (raw MESSAGE and ParleyClient), nothing stored', async () => {
      const a = await startServer('a.example');
      const b = await startServer('b.example', { peers: [peer(a)] });
      await converge({ 'a.example': a, 'b.example': b }, { 'a.example → b.example': 'b.example [b.example]' }, 'A and B linked');
      addUsers(a, 'alice@a.example');
      const dum = await rawDum(a, { aor: 'sip:alice@a.example', credentials: [{ username: 'alice', password: PASSWORD }] });
      const raw = await within(dum.sendMessage({ to: 'sip:u@never.example', text: 'anyone?' }), 'MESSAGE to u@never.example');
      expect([raw.status, raw.reason], 'raw MESSAGE').to.deep.equal([404, 'No route to domain']);
      const alice = await connect(a, 'alice@a.example');
      let error: unknown;
      try {
        await within(alice.send('u@never.example', 'anyone?'), 'alice.send to never.example');
      } catch (caught) {
        error = caught;
      }
      expect(error, 'send rejects').to.be.instanceOf(ClientError);
      expect((error as ClientError).code).to.equal('CLIENT_SEND_FAILED');
      expect((error as ClientError & { status?: number }).status).to.equal(404);
      expect(storedFor(a, 'u@never.example'), 'nothing stored').to.have.length(0);
      expect(relaying(a)).to.equal(0);
      // A known domain is still taken (the control).
      const known = await within(dum.sendMessage({ to: 'sip:u@b.example', text: 'known domain' }), 'MESSAGE to u@b.example');
      expect(known.status, 'a domain with a route').to.equal(202);
    });
  });
});
