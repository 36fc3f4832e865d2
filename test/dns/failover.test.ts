// RFC 3263 §4.3 failover in SipStack.request (docs/dns.md, "The stack"), end to end on loopback:
// a real DNS server (test/support/dns-server.ts) hands out two SRV targets on 127.0.0.1, priority
// 10 then 20 so their order is fixed, and the stack under test (the UAC, T1 = 20 ms so Timer F =
// 64·T1 = 1.28 s) must
//   - send to the first; on a transport failure, a timeout or a 503, send the request again to the
//     second as a new transaction (new Via branch), and mark the first (black / grey / black for
//     Retry-After seconds, at most an hour / nothing, per the table in docs/dns.md), each mark
//     for its time (read through the resolver's clock, skewed forward);
//   - skip a blacklisted target and try a greylisted one last, also for another query (a
//     `;transport=` URI) that has no "last known good" of its own;
//   - give the TU the last failure only once every target was tried, exactly once each;
//   - answer an empty DNS answer (NXDOMAIN) with a 503 at once, sending nothing;
//   - send an INVITE's CANCEL to the target the INVITE went to (`ClientRequest.target`);
//   - (§5) send a response whose TCP connection is gone, after `received` at the sent-by port
//     failed, to the SRV target of the Via's sent-by name.
// What the UAC put on the wire is read from the `parley:message:out` diagnostics channel (first
// transmissions of requests only: retransmissions and failed sends are not published there), TCP
// connection attempts from `parley:transport:connection` (a refused connect ends in one `closed`
// event), and what the targets received from the targets themselves: a second SipStack whose TU
// answers, or a raw UDP socket that answers with a fixed status or never answers.
import { expect } from 'chai';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import {
  createRequest,
  createResponse,
  parseMessage,
  SipStack,
  systemClock,
  type ClientRequest,
  type Clock,
  type ServerRequest,
  type SipMessage,
  type Tuple,
  LocalContact,
} from '../../src/index.js';
import { startDnsServer, type TestDnsServer, type ZoneRecord } from '../support/dns-server.js';
import { until, within } from '../support/transport-harness.js';

const HOST = '127.0.0.1';
const DOMAIN = 'example.test';
const URI = `sip:bob@${DOMAIN}`;
/** Small timers: Timer E at 20, 40, 80, 160, then 300 ms (T2); Timer F (64·T1) at 1280 ms. */
const T1 = 20;
const T2 = 300;
const TIMER_F = 64 * T1;
/**
 * What a never-answering UDP target receives for one MESSAGE before Timer F: the request at 0 and
 * Timer E retransmissions at 20, 60, 140, 300, 600, 900 and 1200 ms (the next would be at 1500).
 */
const COPIES_BEFORE_F = 8;

type Protocol = 'udp' | 'tcp';

// ---------------------------------------------------------------------------------------------
// What goes out of the UAC
// ---------------------------------------------------------------------------------------------

interface OutRequest {
  message: SipMessage;
  tuple: Tuple;
}

interface ConnectionEvent {
  remote?: Tuple;
  event?: string;
}

/** Requests published on `parley:message:out` (peer stacks only send responses). */
const wire: OutRequest[] = [];
const connectionEvents: ConnectionEvent[] = [];

function onMessageOut(data: unknown): void {
  const { bytes, tuple } = data as { bytes: Buffer; tuple: Tuple };
  let message: SipMessage;
  try {
    message = parseMessage(bytes);
  } catch {
    return;
  }
  if (message.isRequest) wire.push({ message, tuple: { ...tuple } });
}

function onConnection(data: unknown): void {
  connectionEvents.push(data as ConnectionEvent);
}

/** Connection events of TCP connections to 127.0.0.1:port (a refused connect: one `closed`). */
function connectionsTo(port: number): ConnectionEvent[] {
  return connectionEvents.filter((e) => e.remote?.protocol === 'tcp' && e.remote.address === HOST && e.remote.port === port);
}

/** `METHOD PROTO:PORT` of each request the UAC sent (first transmissions), from index `from` on. */
function sentRequests(from = 0): string[] {
  return wire.slice(from).map((o) => `${o.message.method} ${o.tuple.protocol}:${o.tuple.address}:${o.tuple.port}`);
}

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

const cleanups: Array<() => Promise<void>> = [];

/** A TCP port nothing listens on: bound, noted, closed. */
async function closedTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Peer {
  stack: SipStack;
  port: number;
  /** Every request its TU got (ACKs to 2xx included), in order. */
  requests: SipMessage[];
  /** performance.now() when each of `requests` reached the TU. */
  arrivals: number[];
  /** Every response its TU sent. */
  responses: SipMessage[];
}

/** A second SipStack on 127.0.0.1:0 whose TU answers each request (but ACK) with `answer`. */
async function startPeer(protocol: Protocol, answer: (request: ServerRequest, peer: Peer) => SipMessage | undefined = (r) => r.respond(200)): Promise<Peer> {
  const stack = new SipStack({ transports: [`${protocol}:${HOST}:0`], t1: T1, t2: T2, dns: false });
  await stack.start();
  cleanups.push(() => stack.stop());
  const peer: Peer = { stack, port: stack.transports[0]!.local.port, requests: [], arrivals: [], responses: [] };
  stack.setDefaultTu({
    onRequest(request) {
      peer.requests.push(request.message);
      peer.arrivals.push(performance.now());
      if (request.message.method === 'ACK') return;
      const response = answer(request, peer);
      if (response) peer.responses.push(response);
    },
  });
  return peer;
}

interface RawUdp {
  port: number;
  received: Array<{ at: number; message: SipMessage }>;
  /** Received requests of `method`. */
  of(method: string): SipMessage[];
}

/**
 * A bare UDP socket on 127.0.0.1:0 that records every SIP datagram; with `status`, it answers each
 * request but ACK with that status (the same To tag every time, so retransmissions get the same
 * response), else it never answers.
 */
async function startRawUdp(status?: number, headers: Record<string, string> = {}): Promise<RawUdp> {
  const socket: DgramSocket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, HOST, () => resolve());
  });
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  const raw: RawUdp = {
    port: socket.address().port,
    received: [],
    of: (method) => raw.received.filter((r) => r.message.isRequest && r.message.method === method).map((r) => r.message),
  };
  socket.on('message', (bytes, rinfo) => {
    let message: SipMessage;
    try {
      message = parseMessage(bytes);
    } catch {
      return;
    }
    raw.received.push({ at: performance.now(), message });
    if (status === undefined || !message.isRequest || message.method === 'ACK') return;
    const response = createResponse(message, status, undefined, { toTag: 'raw-udp', headers });
    socket.send(response.toBuffer(), rinfo.port, rinfo.address);
  });
  return raw;
}

/** Does something accept TCP connections on 127.0.0.1:port? */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, HOST);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface RawTcp {
  port: number;
  connections: number;
  /** The bytes of the first complete SIP message (head and Content-Length body) received. */
  firstMessage: Promise<string>;
}

/** A bare TCP server on 127.0.0.1:0 that only listens. */
async function startRawTcp(): Promise<RawTcp> {
  let resolveFirst!: (text: string) => void;
  const raw: RawTcp = { port: 0, connections: 0, firstMessage: new Promise<string>((resolve) => (resolveFirst = resolve)) };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    raw.connections++;
    sockets.add(socket);
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/^content-length:\s*(\d+)/im.exec(text.slice(0, end))?.[1] ?? 0);
      if (text.length >= end + 4 + length) resolveFirst(text.slice(0, end + 4 + length));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  raw.port = (server.address() as AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return raw;
}

// ---------------------------------------------------------------------------------------------
// DNS and the stack under test
// ---------------------------------------------------------------------------------------------

/**
 * example.test: one NAPTR to `_sip._PROTO.example.test`, whose SRV records are one.example.test
 * (priority 10) at `first` and two.example.test (priority 20) at `second`, both A 127.0.0.1.
 */
function zone(protocol: Protocol, first: number, second: number): ZoneRecord[] {
  const srv = `_sip._${protocol}.${DOMAIN}`;
  return [
    { type: 'SOA', name: DOMAIN, minimum: 60 },
    { type: 'NAPTR', name: DOMAIN, order: 10, preference: 10, flags: 's', service: protocol === 'tcp' ? 'SIP+D2T' : 'SIP+D2U', regexp: '', replacement: srv },
    { type: 'SRV', name: srv, priority: 10, weight: 0, port: first, target: `one.${DOMAIN}` },
    { type: 'SRV', name: srv, priority: 20, weight: 0, port: second, target: `two.${DOMAIN}` },
    { type: 'A', name: `one.${DOMAIN}`, address: HOST },
    { type: 'A', name: `two.${DOMAIN}`, address: HOST },
  ];
}

let dns: TestDnsServer;

/**
 * The UAC's resolver clock: real time plus `skew`, so a test can look at the marks as they will be
 * N seconds later (the DNS layer's marks and cache read `now()`; nothing else uses this clock).
 */
let skew = 0;
const skewedClock: Clock = {
  now: () => performance.now() + skew,
  setTimer: (ms, fire) => systemClock.setTimer(ms, fire),
};

/** The mark of 127.0.0.1:port as it will be `ms` from now. */
function markIn(stack: SipStack, ms: number, protocol: Protocol, port: number): string | undefined {
  const saved = skew;
  skew = ms;
  try {
    return stack.resolver!.marks.markOf(tuple(protocol, port));
  } finally {
    skew = saved;
  }
}

async function startUac(): Promise<SipStack> {
  const stack = new SipStack({
    transports: [`udp:${HOST}:0`, `tcp:${HOST}:0`],
    t1: T1,
    t2: T2,
    dns: { nameservers: [dns.nameserver], hostsFile: false, clock: skewedClock },
  });
  await stack.start();
  cleanups.push(() => stack.stop());
  return stack;
}

function message(uri = URI): SipMessage {
  return createRequest({ method: 'MESSAGE', uri, from: '<sip:alice@client.test>', to: `<${uri}>`, contentType: 'text/plain', body: 'hello' });
}

function invite(uri = URI): SipMessage {
  return createRequest({ method: 'INVITE', uri, from: '<sip:alice@client.test>', to: `<${uri}>`, contact: new LocalContact('alice') });
}

function tuple(protocol: Protocol, port: number): { transport: Protocol; address: string; port: number } {
  return { transport: protocol, address: HOST, port };
}

function branchOf(m: SipMessage): string | undefined {
  return m.via[0]?.branch;
}

/** `ClientRequest.target`, as the stack's Target: where the current transaction went. */
function sentTo(handle: ClientRequest): { protocol: string; address: string; port: number } | undefined {
  const t = handle.target;
  return t === undefined ? undefined : { protocol: t.protocol, address: t.address, port: t.port };
}

function at(protocol: Protocol, port: number): { protocol: Protocol; address: string; port: number } {
  return { protocol, address: HOST, port };
}

describe('DNS failover in SipStack.request (RFC 3263 §4.3)', function () {
  this.timeout(15_000);

  before(async () => {
    subscribe('parley:message:out', onMessageOut);
    subscribe('parley:transport:connection', onConnection);
    dns = await startDnsServer();
  });

  after(async () => {
    unsubscribe('parley:message:out', onMessageOut);
    unsubscribe('parley:transport:connection', onConnection);
    await dns.close();
  });

  beforeEach(() => {
    wire.length = 0;
    connectionEvents.length = 0;
    skew = 0;
    dns.queries.length = 0;
    dns.records = [];
  });

  afterEach(async () => {
    // Stacks first (their transactions end), then the raw sockets.
    const run = cleanups.splice(0).reverse();
    for (const cleanup of run) await cleanup();
  });

  it('a refused TCP connection: the request goes again, with a new branch, to the second target; the next request goes straight there', async () => {
    const dead = await closedTcpPort();
    const peer = await startPeer('tcp');
    dns.records = zone('tcp', dead, peer.port);
    const stack = await startUac();

    const first = message();
    const firstBranch = branchOf(first);
    const handle = stack.request(first);
    const final = await within(handle.final, 'the final response');

    expect(final.status).to.equal(200);
    expect(final.to.tag).to.equal(peer.responses[0]!.to.tag);
    expect(peer.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
    // One connection attempt to the closed port, refused; the MESSAGE reached only the peer.
    expect(connectionsTo(dead).map((e) => e.event)).to.deep.equal(['closed']);
    expect(sentRequests()).to.deep.equal([`MESSAGE tcp:${HOST}:${peer.port}`]);
    // §4.3: "a new client transaction" — so a new branch.
    const peerBranch = branchOf(peer.requests[0]!);
    expect(peerBranch).to.match(/^z9hG4bK/);
    expect(peerBranch).to.not.equal(firstBranch);
    expect(sentTo(handle)).to.deep.equal(at('tcp', peer.port));
    expect(stack.resolver!.marks.markOf(tuple('tcp', dead))).to.equal('black');
    expect(stack.resolver!.marks.markOf(tuple('tcp', peer.port))).to.equal('white');

    // The second request: the closed port is blacklisted (no connection attempt at all), and the
    // DNS answers come from the cache (TTL 300 s): no query on the wire.
    const queries = dns.queries.length;
    const mark = wire.length;
    const again = stack.request(message());
    const final2 = await within(again.final, 'the second final response');
    expect(final2.status).to.equal(200);
    expect(peer.requests.map((r) => r.method)).to.deep.equal(['MESSAGE', 'MESSAGE']);
    expect(connectionsTo(dead).map((e) => e.event)).to.deep.equal(['closed']);
    expect(sentRequests(mark)).to.deep.equal([`MESSAGE tcp:${HOST}:${peer.port}`]);
    expect(sentTo(again)).to.deep.equal(at('tcp', peer.port));
    expect(dns.queries.length).to.equal(queries);

    // Another query over the same SRV records (`;transport=tcp`: no last known good of its own):
    // the blacklisted target is skipped, not merely tried after the one that answered.
    const mark3 = wire.length;
    const third = stack.request(message(`${URI};transport=tcp`));
    const final3 = await within(third.final, 'the third final response');
    expect(final3.status).to.equal(200);
    expect(sentRequests(mark3)).to.deep.equal([`MESSAGE tcp:${HOST}:${peer.port}`]);
    expect(connectionsTo(dead).map((e) => e.event)).to.deep.equal(['closed']);
    expect(peer.requests.map((r) => r.method)).to.deep.equal(['MESSAGE', 'MESSAGE', 'MESSAGE']);

    // Blacklisted for blacklistMs, 32 s by default.
    expect(markIn(stack, 31_000, 'tcp', dead)).to.equal('black');
    expect(markIn(stack, 33_000, 'tcp', dead)).to.equal(undefined);
  });

  it('a UDP target that never answers: after Timer F the MESSAGE goes to the second; the next request tries the silent one last', async () => {
    const silent = await startRawUdp();
    const peer = await startPeer('udp');
    dns.records = zone('udp', silent.port, peer.port);
    const stack = await startUac();

    const handle = stack.request(message());
    const final = await within(handle.final, 'the final response', TIMER_F + 3000);
    expect(final.status).to.equal(200);
    expect(final.to.tag).to.equal(peer.responses[0]!.to.tag);

    // The silent target got the request and its Timer E retransmissions, all one transaction.
    const atSilent = silent.of('MESSAGE');
    expect(atSilent).to.have.length(COPIES_BEFORE_F);
    expect(new Set(atSilent.map(branchOf)).size).to.equal(1);
    expect(silent.received).to.have.length(COPIES_BEFORE_F);
    // The peer: one MESSAGE, a new transaction, sent only once Timer F had fired at the first.
    expect(peer.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
    expect(branchOf(peer.requests[0]!)).to.not.equal(branchOf(atSilent[0]!));
    expect(peer.arrivals[0]! - silent.received[0]!.at).to.be.at.least(TIMER_F - 5);
    expect(sentRequests()).to.deep.equal([`MESSAGE udp:${HOST}:${silent.port}`, `MESSAGE udp:${HOST}:${peer.port}`]);
    expect(sentTo(handle)).to.deep.equal(at('udp', peer.port));
    expect(stack.resolver!.marks.markOf(tuple('udp', silent.port))).to.equal('grey');
    expect(stack.resolver!.marks.markOf(tuple('udp', peer.port))).to.equal('white');

    // Next request: greylisted means tried after every other target, so the peer comes first and
    // answers; the silent one gets nothing more.
    const mark = wire.length;
    const again = stack.request(message());
    const final2 = await within(again.final, 'the second final response');
    expect(final2.status).to.equal(200);
    expect(sentRequests(mark)).to.deep.equal([`MESSAGE udp:${HOST}:${peer.port}`]);
    expect(peer.requests.map((r) => r.method)).to.deep.equal(['MESSAGE', 'MESSAGE']);
    expect(silent.received).to.have.length(COPIES_BEFORE_F);

    // Another query over the same SRV records (`;transport=udp`: no last known good of its own):
    // the greylisted target, first by priority, now comes after the other one.
    const mark3 = wire.length;
    const third = stack.request(message(`${URI};transport=udp`));
    const final3 = await within(third.final, 'the third final response');
    expect(final3.status).to.equal(200);
    expect(sentRequests(mark3)).to.deep.equal([`MESSAGE udp:${HOST}:${peer.port}`]);
    expect(silent.received).to.have.length(COPIES_BEFORE_F);

    // Greylisted for greylistMs, 32 s by default.
    expect(markIn(stack, 31_000, 'udp', silent.port)).to.equal('grey');
    expect(markIn(stack, 33_000, 'udp', silent.port)).to.equal(undefined);
  });

  it('503 with Retry-After: 120 from the first: sent again to the second, which answers; the first is blacklisted', async () => {
    const busy = await startPeer('udp', (r) => r.respond(503, undefined, { headers: { 'Retry-After': '120' } }));
    const peer = await startPeer('udp');
    dns.records = zone('udp', busy.port, peer.port);
    const stack = await startUac();

    const handle = stack.request(message());
    const final = await within(handle.final, 'the final response');
    expect(final.status).to.equal(200);
    expect(final.to.tag).to.equal(peer.responses[0]!.to.tag);
    expect(busy.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
    expect(peer.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
    expect(sentRequests()).to.deep.equal([`MESSAGE udp:${HOST}:${busy.port}`, `MESSAGE udp:${HOST}:${peer.port}`]);
    expect(branchOf(wire[1]!.message)).to.not.equal(branchOf(wire[0]!.message));
    expect(branchOf(busy.requests[0]!)).to.equal(branchOf(wire[0]!.message));
    expect(branchOf(peer.requests[0]!)).to.equal(branchOf(wire[1]!.message));
    expect(stack.resolver!.marks.markOf(tuple('udp', busy.port))).to.equal('black');
    expect(stack.resolver!.marks.markOf(tuple('udp', peer.port))).to.equal('white');

    const mark = wire.length;
    const final2 = await within(stack.request(message()).final, 'the second final response');
    expect(final2.status).to.equal(200);
    expect(sentRequests(mark)).to.deep.equal([`MESSAGE udp:${HOST}:${peer.port}`]);
    expect(busy.requests).to.have.length(1);
    // Another query over the same SRV records: the blacklisted target is skipped there too.
    const mark3 = wire.length;
    const final3 = await within(stack.request(message(`${URI};transport=udp`)).final, 'the third final response');
    expect(final3.status).to.equal(200);
    expect(sentRequests(mark3)).to.deep.equal([`MESSAGE udp:${HOST}:${peer.port}`]);
    expect(busy.requests).to.have.length(1);

    // Blacklisted for the Retry-After's 120 s, not the default 32 s.
    expect(markIn(stack, 119_000, 'udp', busy.port)).to.equal('black');
    expect(markIn(stack, 121_000, 'udp', busy.port)).to.equal(undefined);
  });

  it('503 with Retry-After: 7200: blacklisted for one hour at most', async () => {
    const busy = await startPeer('udp', (r) => r.respond(503, undefined, { headers: { 'Retry-After': '7200' } }));
    const peer = await startPeer('udp');
    dns.records = zone('udp', busy.port, peer.port);
    const stack = await startUac();

    const final = await within(stack.request(message()).final, 'the final response');
    expect(final.status).to.equal(200);
    expect(sentRequests()).to.deep.equal([`MESSAGE udp:${HOST}:${busy.port}`, `MESSAGE udp:${HOST}:${peer.port}`]);
    expect(markIn(stack, 3_599_000, 'udp', busy.port)).to.equal('black');
    expect(markIn(stack, 3_601_000, 'udp', busy.port)).to.equal(undefined);
  });

  it('503 without Retry-After: also sent again to the second, but the first is left unmarked', async () => {
    const busy = await startPeer('udp', (r) => r.respond(503));
    const peer = await startPeer('udp');
    dns.records = zone('udp', busy.port, peer.port);
    const stack = await startUac();

    const final = await within(stack.request(message()).final, 'the final response');
    expect(final.status).to.equal(200);
    expect(final.to.tag).to.equal(peer.responses[0]!.to.tag);
    expect(busy.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
    expect(peer.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
    expect(sentRequests()).to.deep.equal([`MESSAGE udp:${HOST}:${busy.port}`, `MESSAGE udp:${HOST}:${peer.port}`]);
    expect(branchOf(wire[1]!.message)).to.not.equal(branchOf(wire[0]!.message));
    expect(stack.resolver!.marks.markOf(tuple('udp', busy.port))).to.equal(undefined);
    expect(stack.resolver!.marks.markOf(tuple('udp', peer.port))).to.equal('white');

    // The peer is now the query's last known good: tried first.
    const mark = wire.length;
    const final2 = await within(stack.request(message()).final, 'the second final response');
    expect(final2.status).to.equal(200);
    expect(sentRequests(mark)).to.deep.equal([`MESSAGE udp:${HOST}:${peer.port}`]);
    expect(busy.requests).to.have.length(1);
    // Another query over the same SRV records: the unmarked 503 target is first by priority again.
    const mark3 = wire.length;
    const final3 = await within(stack.request(message(`${URI};transport=udp`)).final, 'the third final response');
    expect(final3.status).to.equal(200);
    expect(sentRequests(mark3)).to.deep.equal([`MESSAGE udp:${HOST}:${busy.port}`, `MESSAGE udp:${HOST}:${peer.port}`]);
    expect(busy.requests.map((r) => r.method)).to.deep.equal(['MESSAGE', 'MESSAGE']);
  });

  describe('every target failing: the TU hears the last failure once all were tried, each once', () => {
    it('two refused TCP connections → 503, both blacklisted', async () => {
      const dead1 = await closedTcpPort();
      const dead2 = await closedTcpPort();
      dns.records = zone('tcp', dead1, dead2);
      const stack = await startUac();

      const handle = stack.request(message());
      const final = await within(handle.final, 'the final response');
      expect(final.status).to.equal(503);
      expect(connectionsTo(dead1).map((e) => e.event)).to.deep.equal(['closed']);
      expect(connectionsTo(dead2).map((e) => e.event)).to.deep.equal(['closed']);
      expect(sentRequests()).to.deep.equal([]);
      expect(stack.resolver!.marks.markOf(tuple('tcp', dead1))).to.equal('black');
      expect(stack.resolver!.marks.markOf(tuple('tcp', dead2))).to.equal('black');
    });

    it('two silent UDP targets → 408 after two Timer F, both greylisted', async () => {
      const silent1 = await startRawUdp();
      const silent2 = await startRawUdp();
      dns.records = zone('udp', silent1.port, silent2.port);
      const stack = await startUac();

      const started = performance.now();
      const handle = stack.request(message());
      const final = await within(handle.final, 'the final response', 2 * TIMER_F + 3000);
      const elapsed = performance.now() - started;
      expect(final.status).to.equal(408);
      expect(elapsed).to.be.at.least(2 * TIMER_F - 5);
      expect(silent1.of('MESSAGE')).to.have.length(COPIES_BEFORE_F);
      expect(silent2.of('MESSAGE')).to.have.length(COPIES_BEFORE_F);
      const branches1 = new Set(silent1.of('MESSAGE').map(branchOf));
      const branches2 = new Set(silent2.of('MESSAGE').map(branchOf));
      expect(branches1.size).to.equal(1);
      expect(branches2.size).to.equal(1);
      expect([...branches2][0]).to.not.equal([...branches1][0]);
      // The second target only after the first's Timer F.
      expect(silent2.received[0]!.at - silent1.received[0]!.at).to.be.at.least(TIMER_F - 5);
      expect(sentRequests()).to.deep.equal([`MESSAGE udp:${HOST}:${silent1.port}`, `MESSAGE udp:${HOST}:${silent2.port}`]);
      expect(stack.resolver!.marks.markOf(tuple('udp', silent1.port))).to.equal('grey');
      expect(stack.resolver!.marks.markOf(tuple('udp', silent2.port))).to.equal('grey');
    });

    it('two 503s without Retry-After → the TU gets the second server\'s 503', async () => {
      const busy1 = await startPeer('udp', (r) => r.respond(503, 'First Unavailable'));
      const busy2 = await startPeer('udp', (r) => r.respond(503, 'Second Unavailable'));
      dns.records = zone('udp', busy1.port, busy2.port);
      const stack = await startUac();

      const final = await within(stack.request(message()).final, 'the final response');
      expect(final.status).to.equal(503);
      expect(final.reason).to.equal('Second Unavailable');
      expect(final.to.tag).to.equal(busy2.responses[0]!.to.tag);
      expect(busy1.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
      expect(busy2.requests.map((r) => r.method)).to.deep.equal(['MESSAGE']);
      expect(sentRequests()).to.deep.equal([`MESSAGE udp:${HOST}:${busy1.port}`, `MESSAGE udp:${HOST}:${busy2.port}`]);
      expect(stack.resolver!.marks.markOf(tuple('udp', busy1.port))).to.equal(undefined);
      expect(stack.resolver!.marks.markOf(tuple('udp', busy2.port))).to.equal(undefined);
    });
  });

  it('NXDOMAIN: 503 at once, nothing on the wire', async () => {
    dns.records = [{ type: 'SOA', name: 'test', minimum: 60 }];
    const stack = await startUac();

    const started = performance.now();
    const final = await within(stack.request(message('sip:bob@nowhere.test')).final, 'the final response', 2000);
    expect(final.status).to.equal(503);
    expect(performance.now() - started).to.be.below(1000);
    expect(sentRequests()).to.deep.equal([]);
    expect(dns.queries[0]).to.deep.equal({ name: 'nowhere.test', type: 'NAPTR' });
    expect(dns.queries.every((q) => q.name.endsWith('nowhere.test'))).to.equal(true);
  });

  it('an INVITE that failed over: its CANCEL goes to the target the INVITE went to (ClientRequest.target)', async () => {
    // The first target answers 503 (no Retry-After, so it stays unmarked): a CANCEL that looked up
    // the Request-URI again would go there first.
    const busy = await startRawUdp(503);
    let pendingInvite: ServerRequest | undefined;
    const cancelMatched: boolean[] = [];
    const peer = await startPeer('udp', (r) => {
      if (r.message.method === 'INVITE') {
        pendingInvite = r;
        return r.respond(180);
      }
      if (r.message.method === 'CANCEL') {
        cancelMatched.push(r.cancels !== undefined);
        return pendingInvite?.respond(487);
      }
      return r.respond(200);
    });
    dns.records = zone('udp', busy.port, peer.port);
    const stack = await startUac();

    const handle = stack.request(invite());
    const ringing = await within(
      new Promise<SipMessage>((resolve) => handle.onProvisional(resolve)),
      'the 180 from the second target',
    );
    expect(ringing.status).to.equal(180);
    expect(sentTo(handle)).to.deep.equal(at('udp', peer.port));
    handle.cancel();
    const final = await within(handle.final, 'the final response to the INVITE');
    expect(final.status).to.equal(487);

    expect(peer.requests.map((r) => r.method)).to.deep.equal(['INVITE', 'CANCEL']);
    expect(cancelMatched, 'the CANCEL matched the INVITE server transaction').to.deep.equal([true]);
    // §9.1: the CANCEL's top Via (branch included) is the INVITE's, as that target saw it.
    expect(branchOf(peer.requests[1]!)).to.equal(branchOf(peer.requests[0]!));
    expect(busy.of('CANCEL')).to.deep.equal([]);
    expect(new Set(busy.of('INVITE').map(branchOf)).size).to.equal(1);
    expect(branchOf(busy.of('INVITE')[0]!)).to.not.equal(branchOf(peer.requests[0]!));
    expect(sentRequests().filter((s) => !s.startsWith('ACK '))).to.deep.equal([
      `INVITE udp:${HOST}:${busy.port}`,
      `INVITE udp:${HOST}:${peer.port}`,
      `CANCEL udp:${HOST}:${peer.port}`,
    ]);
    expect(sentTo(handle)).to.deep.equal(at('udp', peer.port));
  });
  it('RFC 3263 §5: a response whose TCP connection is gone, with a sent-by name and no port, goes to the SRV target of the Via', async function () {
    // The first place §18.2.2 names is `received` (127.0.0.1) at the default port 5060; this
    // test needs that refused.
    if (await accepts(5060)) {
      process.stderr.write('      (skipped: something accepts TCP on 127.0.0.1:5060)\n');
      this.skip();
    }
    const back = await startRawTcp();
    dns.records = [
      { type: 'SOA', name: 'client.test', minimum: 60 },
      { type: 'SRV', name: '_sip._tcp.client.test', priority: 10, weight: 0, port: back.port, target: 'back.client.test' },
      { type: 'A', name: 'back.client.test', address: HOST },
    ];
    const uas = new SipStack({ transports: [`tcp:${HOST}:0`], t1: T1, t2: T2, dns: { nameservers: [dns.nameserver], hostsFile: false } });
    await uas.start();
    cleanups.push(() => uas.stop());
    const got: ServerRequest[] = [];
    uas.setDefaultTu({ onRequest: (r) => void got.push(r) });

    const branch = `z9hG4bK-gone-${Math.random().toString(36).slice(2)}`;
    const uasPort = uas.transports[0]!.local.port;
    const client = connect(uasPort, HOST);
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    client.end(
      [
        `MESSAGE sip:uas@${HOST}:${uasPort} SIP/2.0`,
        `Via: SIP/2.0/TCP client.test;branch=${branch}`,
        'Max-Forwards: 70',
        'From: <sip:alice@client.test>;tag=a1',
        `To: <sip:uas@${HOST}>`,
        `Call-ID: gone-${branch}`,
        'CSeq: 1 MESSAGE',
        'Content-Type: text/plain',
        'Content-Length: 5',
        '',
        'hello',
      ].join('\r\n'),
    );
    await within(new Promise<void>((resolve) => client.once('close', () => resolve())), 'the client connection closing');
    await until(() => got.length === 1, 'the MESSAGE reaching the TU');
    const request = got[0]!;
    await until(() => !uas.transports[0]!.hasConnection(request.connectionId!), 'the UAS seeing the connection gone');

    request.respond(200);
    const text = await within(back.firstMessage, 'the 200 at the SRV target');
    const response = parseMessage(Buffer.from(text));
    expect(response.status).to.equal(200);
    expect(response.via[0]!.branch).to.equal(branch);
    expect(response.via[0]!.received).to.equal(HOST);
    // received:5060 was tried first and refused; then SRV for the Via's transport.
    expect(connectionsTo(5060).map((e) => e.event)).to.deep.equal(['closed']);
    expect(dns.queries).to.deep.include({ name: '_sip._tcp.client.test', type: 'SRV' });
    expect(back.connections).to.equal(1);
  });
});
