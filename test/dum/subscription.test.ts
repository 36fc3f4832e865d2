// Subscriptions (RFC 6665) through the dialog usage manager (docs/dum.md, "Subscriptions"), over
// real sockets on 127.0.0.1:
//
//  1. Per transport (UDP, then TCP, same cases): a subscriber DUM (alice, dum.subscribe) and a
//     notifier DUM (bob, dum.onSubscribe + ServerSubscription). Both stacks share one ManualClock,
//     so protocol time moves only when a test advances it: the refresh instant max(e/2, e−60)
//     (§4.1.2.2, docs/dum.md), the notifier's expiry (§4.2.1.4), "time left" in Subscription-State.
//     For the expiry case the subscriber's stack gets a clock of its own that never moves, so it
//     never refreshes and the notifier's subscription runs out.
//  2. Against a raw UDP notifier (test/support/udp-sip.ts) that the test scripts message by
//     message: a NOTIFY before the SUBSCRIBE's 200 (§4.1.2.4), NOTIFYs from two forks (§4.1.4),
//     Timer N (§4.1.2.4), a 202 treated as a 200 (§8.3.1), a refresh answered 481 (§4.1.2.2), a
//     lower CSeq in the dialog (RFC 3261 §12.2.2), a NOTIFY for nothing we have (§4.1.3).
//  3. Hand-written SUBSCRIBEs from a raw UDP subscriber to a notifier DUM: 423 below 60 s, the
//     86,400 s ceiling, a NOTIFY answered 481 ending the subscription (§4.2.2).
//
// Real I/O is awaited by turning the event loop until a condition holds (capped in real time);
// "nothing happened" is asserted after a short real-time drain while the ManualClock stands still.
// What went on the wire is read from the diagnostics channels `parley:message:out` and
// `parley:message:in` (every stack in this process publishes there; tests pick messages by Call-ID
// and method). Before a test moves the clock it waits until every request of the dialog has had
// its final response received (allAnswered), or Timer F would end a NOTIFY whose 200 is still on
// loopback.
import { expect } from 'chai';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  DialogUsageManager,
  DumError,
  ManualClock,
  SipStack,
  createResponse,
  parseMessage,
  type ResponseInit,
  type SipMessage,
  type SubscriptionState,
  type Tuple,
} from '../../src/index.js';
import { sip } from '../support/sip-bytes.js';
import { safeCallId, token, UdpSipPeer, type Received } from '../support/udp-sip.js';
import { drain, IO_MS, until, within } from '../support/waiting.js';

type Protocol = 'udp' | 'tcp';
type ClientSubscription = ReturnType<DialogUsageManager['subscribe']>;
type ServerSubscription = Parameters<Parameters<DialogUsageManager['onSubscribe']>[1]>[0];
/** What a test reads of a docs/dum.md Notification. */
interface Notified {
  request: SipMessage;
  state: SubscriptionState;
  body: Buffer;
  contentType: string | undefined;
}

const HOST = '127.0.0.1';
/** RFC 3261 default T1; Timer N is 64·T1 (§4.1.2.4). */
const T1 = 500;

// ---------------------------------------------------------------------------------------------
// The wire
// ---------------------------------------------------------------------------------------------

interface Sent {
  message: SipMessage;
  tuple: Tuple;
}

const sentLog: Sent[] = [];
/** What stacks received ('parley:message:in'). */
const receivedLog: Sent[] = [];

function onOut(data: unknown): void {
  const { bytes, tuple } = data as { bytes: Buffer; tuple: Tuple };
  try {
    sentLog.push({ message: parseMessage(Buffer.from(bytes)), tuple });
  } catch {
    // keep-alives
  }
}

function onIn(data: unknown): void {
  const { message, tuple } = data as { message: SipMessage; tuple: Tuple };
  receivedLog.push({ message, tuple });
}

/**
 * Every request a stack sent with this Call-ID has had its final response received by the stack
 * that sent it: no transaction of the dialog is still waiting. Before moving the clock a test waits
 * for this, or Timer F (32 s) would end a NOTIFY whose 200 is still crossing loopback.
 */
function allAnswered(callId: string): boolean {
  const requests = sentLog.filter((s) => s.message.isRequest && s.message.method !== 'ACK' && s.message.callId === callId).map((s) => s.message);
  return requests.every((request) =>
    receivedLog.some(
      ({ message: m }) =>
        !m.isRequest &&
        m.status >= 200 &&
        m.callId === callId &&
        m.cseq.method === request.method &&
        m.cseq.seq === request.cseq.seq &&
        m.via[0]?.branch === request.via[0]?.branch,
    ),
  );
}

function sentRequests(method: string, callId: string): Sent[] {
  return sentLog.filter((s) => s.message.isRequest && s.message.method === method && s.message.callId === callId);
}

/** SUBSCRIBEs sent inside the dialog (with a To tag): refreshes and unsubscribes. */
function inDialogSubscribes(callId: string): SipMessage[] {
  return sentRequests('SUBSCRIBE', callId)
    .map((s) => s.message)
    .filter((m) => m.to.tag !== undefined);
}

function sentResponses(method: string, callId: string, cseq?: number): SipMessage[] {
  return sentLog
    .map((s) => s.message)
    .filter((m) => !m.isRequest && m.callId === callId && m.cseq.method === method && (cseq === undefined || m.cseq.seq === cseq));
}

/** NOTIFYs sent with Subscription-State terminated. */
function terminatingNotifies(callId: string): SipMessage[] {
  return sentRequests('NOTIFY', callId)
    .map((s) => s.message)
    .filter((m) => m.subscriptionState?.state === 'terminated');
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------




/**
 * Moves a ManualClock to an absolute time, then lets whatever the timers sent cross the wire.
 * With `callId`, first waits until every request of that dialog has been answered (allAnswered).
 */
async function advanceTo(clock: ManualClock, at: number, callId?: string): Promise<void> {
  if (at < clock.now()) throw new Error(`advanceTo(${at}): the clock is at ${clock.now()}`);
  if (callId !== undefined) await until(() => allAnswered(callId), `every request of ${callId} answered before the clock moves`);
  clock.advance(at - clock.now());
  await drain();
}

/**
 * The SUBSCRIBE's final response. docs/dum.md: `ready` is "the SUBSCRIBE's final response (2xx,
 * or the failure)"; a rejection with a DumError carrying the response is taken as the same thing.
 */
async function finalOf(ready: Promise<SipMessage>, what = 'ready'): Promise<SipMessage> {
  try {
    return await within(ready, what);
  } catch (error) {
    if (error instanceof DumError && error.response !== undefined) return error.response;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Stacks, DUMs and what their usages report
// ---------------------------------------------------------------------------------------------

const stacks: SipStack[] = [];
const peers: UdpSipPeer[] = [];

async function startStack(clock: ManualClock): Promise<SipStack> {
  const stack = new SipStack({ transports: [`udp:${HOST}:0`, `tcp:${HOST}:0`], clock, dns: false });
  stacks.push(stack);
  await stack.start();
  return stack;
}

async function bindPeer(): Promise<UdpSipPeer> {
  const peer = await UdpSipPeer.bind(HOST);
  peers.push(peer);
  return peer;
}

function portOf(stack: SipStack, protocol: Protocol): number {
  const transport = stack.transports.find((t) => t.protocol === protocol);
  if (!transport) throw new Error(`no ${protocol} transport`);
  return transport.local.port;
}

function uriOf(stack: SipStack, user: string, protocol: Protocol): string {
  const port = portOf(stack, protocol);
  return protocol === 'udp' ? `sip:${user}@${HOST}:${port}` : `sip:${user}@${HOST}:${port};transport=tcp`;
}

interface ClientLog {
  sub: ClientSubscription;
  notifies: Notified[];
  /** Event names in order ('notify', 'active', 'pending', 'refreshed', 'terminated', 'fork', and 'ready' when ready settled). */
  events: string[];
  refreshed: number[];
  terminated: Array<[string | undefined, number | undefined]>;
  forks: ClientLog[];
}

function watch(sub: ClientSubscription): ClientLog {
  const log: ClientLog = { sub, notifies: [], events: [], refreshed: [], terminated: [], forks: [] };
  sub.on('notify', (n: Notified) => {
    log.notifies.push(n);
    log.events.push('notify');
  });
  sub.on('active', () => void log.events.push('active'));
  sub.on('pending', () => void log.events.push('pending'));
  sub.on('refreshed', (expires: number) => {
    log.refreshed.push(expires);
    log.events.push('refreshed');
  });
  sub.on('terminated', (reason: string | undefined, retryAfter: number | undefined) => {
    log.terminated.push([reason, retryAfter]);
    log.events.push('terminated');
  });
  sub.on('fork', (other: ClientSubscription) => {
    // Listeners go on the new subscription at once, inside the event (docs/dum.md: 'notify' is
    // every NOTIFY, so the one that made the fork is heard too).
    log.forks.push(watch(other));
    log.events.push('fork');
  });
  sub.ready.then(
    () => void log.events.push('ready'),
    () => void log.events.push('ready'),
  );
  return log;
}

interface ServerLog {
  sub: ServerSubscription;
  refreshed: number[];
  terminated: string[];
}

/** Installs an onSubscribe handler for `eventPackage` that logs each ServerSubscription and hands it to `decide`. */
function serve(dum: DialogUsageManager, eventPackage: string, decide: (sub: ServerSubscription) => void): ServerLog[] {
  const logs: ServerLog[] = [];
  dum.onSubscribe(eventPackage, (sub) => {
    const log: ServerLog = { sub, refreshed: [], terminated: [] };
    sub.on('refreshed', (expires: number) => void log.refreshed.push(expires));
    sub.on('terminated', (reason: string) => void log.terminated.push(reason));
    logs.push(log);
    decide(sub);
  });
  return logs;
}

interface Pair {
  /** The notifier's clock (and the subscriber's, unless separateClocks). */
  clock: ManualClock;
  clientClock: ManualClock;
  aliceStack: SipStack;
  bobStack: SipStack;
  /** Subscriber. */
  alice: DialogUsageManager;
  /** Notifier. */
  bob: DialogUsageManager;
  bobStrays: Array<[string, number]>;
}

async function pair(options: { separateClocks?: boolean } = {}): Promise<Pair> {
  const clock = new ManualClock();
  const clientClock = options.separateClocks ? new ManualClock() : clock;
  const aliceStack = await startStack(clientClock);
  const bobStack = await startStack(clock);
  const alice = new DialogUsageManager(aliceStack, { aor: `sip:alice@${HOST}` });
  const bob = new DialogUsageManager(bobStack, { aor: `sip:bob@${HOST}` });
  const bobStrays: Array<[string, number]> = [];
  bob.on('stray', (request: SipMessage, status: number) => void bobStrays.push([request.method, status]));
  return { clock, clientClock, aliceStack, bobStack, alice, bob, bobStrays };
}

/** SUBSCRIBE presence from alice to bob with accept({ expires: 600 }); resolves once the 200 and the first NOTIFY are in. */
async function establish(p: Pair, protocol: Protocol): Promise<{ client: ClientLog; server: ServerLog; ready: SipMessage; callId: string }> {
  const servers = serve(p.bob, 'presence', (sub) => sub.accept({ expires: 600 }));
  const client = watch(p.alice.subscribe({ to: uriOf(p.bobStack, 'bob', protocol), event: 'presence', expires: 600 }));
  const ready = await within(client.sub.ready, 'ready');
  await until(() => client.notifies.length === 1, 'the first NOTIFY');
  await until(() => allAnswered(ready.callId), 'the first NOTIFY answered');
  expect(servers).to.have.length(1);
  return { client, server: servers[0]!, ready, callId: ready.callId };
}

function stateOf(n: Notified): [string, number | undefined, string | undefined, number | undefined] {
  return [n.state.state, n.state.expires, n.state.reason, n.state.retryAfter];
}

// ---------------------------------------------------------------------------------------------
// Raw UDP peers
// ---------------------------------------------------------------------------------------------

function isRequest(r: Received, method: string): boolean {
  return r.message !== undefined && r.message.isRequest && r.message.method === method;
}

function isResponse(r: Received, method: string, callId: string, seq?: number): boolean {
  const m = r.message;
  return m !== undefined && !m.isRequest && safeCallId(m) === callId && m.cseq.method === method && (seq === undefined || m.cseq.seq === seq);
}

async function expectReceived(peer: UdpSipPeer, match: (r: Received) => boolean, what: string, fromIndex = 0): Promise<Received> {
  const got = await peer.waitFor(match, IO_MS, fromIndex);
  if (!got) throw new Error(`the raw peer received no ${what} within ${IO_MS} ms of real time`);
  return got;
}

/** Answers a request the raw peer received, back to where it came from. */
async function answer(peer: UdpSipPeer, request: Received, status: number, init: ResponseInit = {}): Promise<void> {
  await peer.send(createResponse(request.message!, status, undefined, init).toBuffer(), request.from.port, request.from.address);
}

/** A NOTIFY from the raw notifier in the dialog of `subscribe` (RFC 6665 §4.4.1 matching: Call-ID, To tag = SUBSCRIBE's From tag, Event). */
function notifyBytes(peer: UdpSipPeer, subscribe: SipMessage, o: { fromTag: string; cseq: number; state: string; body?: string; callId?: string }): Buffer {
  const target = subscribe.contact[0]!.uri.toString();
  const head = [
    `NOTIFY ${target} SIP/2.0`,
    `Via: SIP/2.0/UDP ${HOST}:${peer.port};branch=z9hG4bK-${token()};rport`,
    'Max-Forwards: 70',
    `From: <sip:bob@${HOST}:${peer.port}>;tag=${o.fromTag}`,
    `To: ${subscribe.header('from')!}`,
    `Call-ID: ${o.callId ?? subscribe.callId}`,
    `CSeq: ${o.cseq} NOTIFY`,
    `Event: ${subscribe.header('event')!}`,
    `Subscription-State: ${o.state}`,
    `Contact: <sip:bob@${HOST}:${peer.port}>`,
  ];
  if (o.body !== undefined) head.push('Content-Type: text/plain');
  head.push('Content-Length: {CL}');
  return sip(head, o.body ?? '');
}

/** Sends a NOTIFY to the subscriber's Contact and resolves with the subscriber's final response to it. */
async function sendNotify(
  peer: UdpSipPeer,
  subscribe: SipMessage,
  o: { fromTag: string; cseq: number; state: string; body?: string; callId?: string },
): Promise<SipMessage> {
  const contact = subscribe.contact[0]!.uri;
  const from = peer.received.length;
  await peer.send(notifyBytes(peer, subscribe, o), contact.port ?? 5060, contact.host);
  const callId = o.callId ?? subscribe.callId;
  const got = await expectReceived(
    peer,
    (r) => isResponse(r, 'NOTIFY', callId, o.cseq) && r.message!.status >= 200 && r.message!.from.tag === o.fromTag,
    `final response to NOTIFY ${o.cseq} (From tag ${o.fromTag})`,
    from,
  );
  return got.message!;
}

function subscribeBytes(peer: UdpSipPeer, port: number, o: { callId: string; fromTag: string; expires: number; event?: string }): Buffer {
  return sip([
    `SUBSCRIBE sip:bob@${HOST}:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${HOST}:${peer.port};branch=z9hG4bK-${token()};rport`,
    'Max-Forwards: 70',
    `From: <sip:carol@${HOST}:${peer.port}>;tag=${o.fromTag}`,
    `To: <sip:bob@${HOST}:${port}>`,
    `Call-ID: ${o.callId}`,
    'CSeq: 1 SUBSCRIBE',
    `Event: ${o.event ?? 'presence'}`,
    `Expires: ${o.expires}`,
    `Contact: <sip:carol@${HOST}:${peer.port}>`,
    'Content-Length: 0',
  ]);
}

// ---------------------------------------------------------------------------------------------

describe('DUM subscriptions (RFC 6665)', function () {
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
    sentLog.length = 0;
    receivedLog.length = 0;
  });
  afterEach(async () => {
    await Promise.all(stacks.splice(0).map((s) => s.stop()));
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  for (const protocol of ['udp', 'tcp'] as const) {
    describe(`between two DUMs over ${protocol.toUpperCase()}`, () => {
      it('SUBSCRIBE → exactly 200 with Expires: 600 (never 202, §8.3.1); the NOTIFYs arrive in order, bodies exact, Subscription-State active;expires=600', async () => {
        const p = await pair();
        const { client, server, ready, callId } = await establish(p, protocol);
        expect(ready.status).to.equal(200);
        expect(ready.expires).to.equal(600);
        expect(ready.contact, 'Contact in the 2xx (dialog-creating, RFC 3261 §12.1.1)').to.have.length(1);
        expect(ready.to.tag).to.be.a('string').and.not.equal('');

        // The notifier's view.
        expect(server.sub.expires).to.equal(600);
        expect(server.sub.event.type).to.equal('presence');
        expect(server.sub.subscriber.uri.user).to.equal('alice');
        expect(server.sub.request.callId).to.equal(callId);

        const first = await within(server.sub.notify({ body: '<basic>open</basic>', contentType: 'application/pidf+xml' }), 'notify 1');
        expect(first.status).to.equal(200);
        const second = await within(server.sub.notify({ body: '<basic>closed</basic>', contentType: 'application/pidf+xml' }), 'notify 2');
        expect(second.status).to.equal(200);
        await until(() => client.notifies.length === 3, 'three NOTIFYs');
        await drain();

        expect(client.notifies.map((n) => n.body.toString('utf8'))).to.deep.equal(['', '<basic>open</basic>', '<basic>closed</basic>']);
        expect(client.notifies.slice(1).map((n) => n.contentType)).to.deep.equal(['application/pidf+xml', 'application/pidf+xml']);
        expect(client.notifies.map(stateOf)).to.deep.equal([
          ['active', 600, undefined, undefined],
          ['active', 600, undefined, undefined],
          ['active', 600, undefined, undefined],
        ]);
        expect(client.sub.state).to.equal('active');
        expect(client.events.filter((e) => e === 'active'), "'active' events").to.have.length(1);
        expect(client.forks).to.have.length(0);
        expect(client.terminated).to.deep.equal([]);

        // On the wire: one initial SUBSCRIBE (Event, Expires, Contact, no To tag), three NOTIFYs in the dialog.
        const subscribes = sentRequests('SUBSCRIBE', callId);
        expect(subscribes).to.have.length(1);
        const initial = subscribes[0]!.message;
        expect(subscribes[0]!.tuple.protocol).to.equal(protocol);
        expect(initial.event?.type).to.equal('presence');
        expect(initial.expires).to.equal(600);
        expect(initial.contact).to.have.length(1);
        expect(initial.to.tag).to.equal(undefined);
        const notifies = sentRequests('NOTIFY', callId).map((s) => s.message);
        expect(notifies).to.have.length(3);
        for (const n of notifies) {
          expect(n.event?.type).to.equal('presence');
          expect(n.from.tag).to.equal(ready.to.tag);
          expect(n.to.tag).to.equal(initial.from.tag);
          expect(n.contact).to.have.length(1);
        }
        const seqs = notifies.map((n) => n.cseq.seq);
        expect(seqs[1]).to.equal(seqs[0]! + 1);
        expect(seqs[2]).to.equal(seqs[0]! + 2);
        expect(sentResponses('SUBSCRIBE', callId).map((m) => m.status)).to.deep.equal([200]);
        expect(sentResponses('NOTIFY', callId).map((m) => m.status)).to.deep.equal([200, 200, 200]);
      });

      it('refresh at max(e/2, e−60) = 540 s: none at 539.999 s, exactly one in-dialog SUBSCRIBE at 540 s; both sides emit refreshed(600); the notifier moved its expiry', async () => {
        const p = await pair();
        const { client, server, ready, callId } = await establish(p, protocol);
        const initial = sentRequests('SUBSCRIBE', callId)[0]!.message;

        // Subscription-State carries the time left (docs/dum.md; RFC 6665 §4.2.2).
        await advanceTo(p.clock, 100_000, callId);
        await within(server.sub.notify({ body: 'at 100 s', contentType: 'text/plain' }), 'notify at 100 s');
        await until(() => client.notifies.length === 2, 'the NOTIFY at 100 s');
        expect(stateOf(client.notifies[1]!)).to.deep.equal(['active', 500, undefined, undefined]);

        await advanceTo(p.clock, 539_999, callId);
        expect(inDialogSubscribes(callId), 'refreshes at 539.999 s').to.have.length(0);
        expect(server.refreshed).to.deep.equal([]);
        expect(client.refreshed).to.deep.equal([]);

        await advanceTo(p.clock, 540_000, callId);
        await until(() => server.refreshed.length === 1 && client.refreshed.length === 1 && client.notifies.length === 3, 'the refresh, both sides');
        await drain();
        const refreshes = inDialogSubscribes(callId);
        expect(refreshes, 'refreshes at 540 s').to.have.length(1);
        const refresh = refreshes[0]!;
        expect(refresh.to.tag).to.equal(ready.to.tag);
        expect(refresh.from.tag).to.equal(initial.from.tag);
        expect(refresh.cseq.seq).to.equal(initial.cseq.seq + 1);
        expect(refresh.expires).to.equal(600);
        expect(refresh.event?.type).to.equal('presence');
        // RFC 3261 §12.2.1.1: the Request-URI is the remote target (the 2xx's Contact).
        expect(refresh.requestUri.port).to.equal(ready.contact[0]!.uri.port);
        expect(refresh.requestUri.host).to.equal(ready.contact[0]!.uri.host);
        expect(sentResponses('SUBSCRIBE', callId, refresh.cseq.seq).map((m) => m.status)).to.deep.equal([200]);
        expect(server.refreshed).to.deep.equal([600]);
        expect(client.refreshed).to.deep.equal([600]);
        // §4.2.1.2: a refresh is followed at once by a NOTIFY.
        expect(stateOf(client.notifies[2]!)).to.deep.equal(['active', 600, undefined, undefined]);

        // Past the original expiry (600 s) nothing ends: the refresh moved it to 1140 s. The next
        // refresh is 540 s after the last 2xx.
        await advanceTo(p.clock, 1_079_999, callId);
        expect(inDialogSubscribes(callId)).to.have.length(1);
        expect(server.terminated).to.deep.equal([]);
        expect(client.terminated).to.deep.equal([]);
        expect(client.sub.state).to.equal('active');
        await advanceTo(p.clock, 1_080_000, callId);
        await until(() => server.refreshed.length === 2 && client.refreshed.length === 2, 'the second refresh');
        await drain();
        expect(inDialogSubscribes(callId)).to.have.length(2);
        expect(server.refreshed).to.deep.equal([600, 600]);
      });

      it("unsubscribe(): SUBSCRIBE Expires: 0 in the dialog; the notifier ends with 'unsubscribed' and a final NOTIFY terminated;reason=timeout; the subscriber ends with 'timeout'", async () => {
        const p = await pair();
        const { client, server, ready, callId } = await establish(p, protocol);
        await within(client.sub.unsubscribe(), 'unsubscribe');
        await until(() => server.terminated.length === 1 && client.terminated.length === 1, 'both sides terminated');
        await drain();
        expect(server.terminated).to.deep.equal(['unsubscribed']);
        expect(client.terminated).to.deep.equal([['timeout', undefined]]);
        expect(client.sub.state).to.equal('terminated');

        const unsubscribes = inDialogSubscribes(callId);
        expect(unsubscribes).to.have.length(1);
        expect(unsubscribes[0]!.expires).to.equal(0);
        expect(unsubscribes[0]!.to.tag).to.equal(ready.to.tag);
        expect(sentResponses('SUBSCRIBE', callId, unsubscribes[0]!.cseq.seq).map((m) => m.status)).to.deep.equal([200]);
        const finals = terminatingNotifies(callId);
        expect(finals).to.have.length(1);
        expect(finals[0]!.subscriptionState!.reason).to.equal('timeout');
        // The subscriber heard the final NOTIFY too ('notify' is every NOTIFY).
        const last = client.notifies[client.notifies.length - 1]!;
        expect([last.state.state, last.state.reason]).to.deep.equal(['terminated', 'timeout']);

        // Nothing more: no refresh at 540 s, no second termination at 600 s.
        await advanceTo(p.clock, 600_000, callId);
        expect(inDialogSubscribes(callId)).to.have.length(1);
        expect(terminatingNotifies(callId)).to.have.length(1);
        expect(server.terminated).to.have.length(1);
        expect(client.terminated).to.have.length(1);
      });

      it("terminate('noresource'): a final NOTIFY terminated;reason=noresource; the subscriber ends with 'noresource' and never refreshes", async () => {
        const p = await pair();
        const { client, server, callId } = await establish(p, protocol);
        await within(server.sub.terminate('noresource'), 'terminate');
        await until(() => client.terminated.length === 1, 'the subscriber terminated');
        await drain();
        expect(client.terminated).to.deep.equal([['noresource', undefined]]);
        expect(server.terminated).to.deep.equal(['noresource']);
        expect(client.sub.state).to.equal('terminated');
        const finals = terminatingNotifies(callId);
        expect(finals).to.have.length(1);
        expect(finals[0]!.subscriptionState!.reason).to.equal('noresource');
        expect(finals[0]!.subscriptionState!.retryAfter).to.equal(undefined);

        await advanceTo(p.clock, 600_000, callId);
        expect(inDialogSubscribes(callId), 'SUBSCRIBEs after termination').to.have.length(0);
        expect(client.terminated).to.have.length(1);
        expect(server.terminated).to.have.length(1);
      });

      it("terminate('probation', 30): the subscriber ends with ('probation', 30) (retry-after, §4.1.3)", async () => {
        const p = await pair();
        const { client, server, callId } = await establish(p, protocol);
        await within(server.sub.terminate('probation', 30), 'terminate');
        await until(() => client.terminated.length === 1, 'the subscriber terminated');
        expect(client.terminated).to.deep.equal([['probation', 30]]);
        expect(server.terminated).to.deep.equal(['probation']);
        const finals = terminatingNotifies(callId);
        expect(finals).to.have.length(1);
        expect([finals[0]!.subscriptionState!.reason, finals[0]!.subscriptionState!.retryAfter]).to.deep.equal(['probation', 30]);
      });

      it('the notifier expires a subscription nobody refreshes: at 600 s (not 599.999) a final NOTIFY terminated;reason=timeout; both sides end with timeout', async () => {
        // The subscriber's stack runs on a clock of its own that never moves: it never refreshes.
        const p = await pair({ separateClocks: true });
        const { client, server, callId } = await establish(p, protocol);
        await advanceTo(p.clock, 599_999, callId);
        expect(server.terminated).to.deep.equal([]);
        expect(terminatingNotifies(callId)).to.have.length(0);
        await advanceTo(p.clock, 600_000, callId);
        await until(() => server.terminated.length === 1 && client.terminated.length === 1, 'both sides terminated');
        await drain();
        expect(server.terminated).to.deep.equal(['timeout']);
        expect(client.terminated).to.deep.equal([['timeout', undefined]]);
        const finals = terminatingNotifies(callId);
        expect(finals).to.have.length(1);
        expect(finals[0]!.subscriptionState!.reason).to.equal('timeout');
        expect(inDialogSubscribes(callId)).to.have.length(0);
        expect(p.clientClock.now()).to.equal(0);
      });

      it("accept({ state: 'pending' }) then notify({ state: 'active' }): 'pending' then 'active', each once", async () => {
        const p = await pair();
        const servers = serve(p.bob, 'presence', (sub) => sub.accept({ expires: 600, state: 'pending', body: 'waiting', contentType: 'text/plain' }));
        const client = watch(p.alice.subscribe({ to: uriOf(p.bobStack, 'bob', protocol), event: 'presence', expires: 600 }));
        const ready = await within(client.sub.ready, 'ready');
        expect(ready.status).to.equal(200);
        await until(() => client.notifies.length === 1, 'the first NOTIFY');
        expect(client.sub.state).to.equal('pending');
        expect(stateOf(client.notifies[0]!)).to.deep.equal(['pending', 600, undefined, undefined]);
        expect(client.notifies[0]!.body.toString('utf8')).to.equal('waiting');
        await within(servers[0]!.sub.notify({ state: 'active', body: 'granted', contentType: 'text/plain' }), 'notify');
        await until(() => client.notifies.length === 2, 'the second NOTIFY');
        await drain();
        expect(client.sub.state).to.equal('active');
        expect(stateOf(client.notifies[1]!)).to.deep.equal(['active', 600, undefined, undefined]);
        expect(client.notifies[1]!.body.toString('utf8')).to.equal('granted');
        expect(client.events.filter((e) => e === 'pending' || e === 'active')).to.deep.equal(['pending', 'active']);
      });

      it('reject(403): ready gives the 403, no NOTIFY is sent, the subscription is terminated', async () => {
        const p = await pair();
        const servers = serve(p.bob, 'presence', (sub) => sub.reject(403));
        const client = watch(p.alice.subscribe({ to: uriOf(p.bobStack, 'bob', protocol), event: 'presence', expires: 600 }));
        const final = await finalOf(client.sub.ready);
        expect(final.status).to.equal(403);
        await drain(60);
        expect(servers).to.have.length(1);
        expect(sentRequests('NOTIFY', final.callId)).to.have.length(0);
        expect(client.notifies).to.have.length(0);
        expect(client.sub.state).to.equal('terminated');
      });

      it('an event package nobody handles: 489 Bad Event with Allow-Events: presence (§4.2.1.1, §4.4.4); a stray (SUBSCRIBE, 489)', async () => {
        const p = await pair();
        const servers = serve(p.bob, 'presence', (sub) => sub.accept());
        const client = watch(p.alice.subscribe({ to: uriOf(p.bobStack, 'bob', protocol), event: 'dialog', expires: 600 }));
        const final = await finalOf(client.sub.ready);
        expect(final.status).to.equal(489);
        expect(final.headers('allow-events').map((v) => v.trim())).to.deep.equal(['presence']);
        await drain(60);
        expect(servers).to.have.length(0);
        expect(p.bobStrays).to.deep.equal([['SUBSCRIBE', 489]]);
        expect(client.notifies).to.have.length(0);
        expect(client.sub.state).to.equal('terminated');
      });

      it("any event package name, with an id parameter: 'x-parley-routes;id=7' is matched by onSubscribe('x-parley-routes') and echoed in every NOTIFY (§8.2.1)", async () => {
        const p = await pair();
        const routes = JSON.stringify({ routes: [{ prefix: 'sip:*@a.example', via: 'sip:b.example' }] });
        const servers = serve(p.bob, 'x-parley-routes', (sub) => sub.accept({ expires: 600, body: routes, contentType: 'application/json' }));
        const client = watch(p.alice.subscribe({ to: uriOf(p.bobStack, 'bob', protocol), event: 'x-parley-routes;id=7', expires: 600 }));
        const ready = await within(client.sub.ready, 'ready');
        expect(ready.status).to.equal(200);
        await until(() => client.notifies.length === 1, 'the first NOTIFY');
        expect(servers).to.have.length(1);
        expect([servers[0]!.sub.event.type, servers[0]!.sub.event.id]).to.deep.equal(['x-parley-routes', '7']);
        expect(client.notifies[0]!.body.toString('utf8')).to.equal(routes);
        expect(client.notifies[0]!.contentType).to.equal('application/json');
        const update = JSON.stringify({ routes: [] });
        await within(servers[0]!.sub.notify({ body: update, contentType: 'application/json' }), 'notify');
        await until(() => client.notifies.length === 2, 'the second NOTIFY');
        expect(client.notifies[1]!.body.toString('utf8')).to.equal(update);
        const sub = sentRequests('SUBSCRIBE', ready.callId)[0]!.message;
        expect([sub.event?.type, sub.event?.id]).to.deep.equal(['x-parley-routes', '7']);
        const notifies = sentRequests('NOTIFY', ready.callId).map((s) => s.message);
        expect(notifies).to.have.length(2);
        for (const n of notifies) expect([n.event?.type, n.event?.id]).to.deep.equal(['x-parley-routes', '7']);
      });
    });
  }

  describe('a subscriber DUM against a raw UDP notifier', () => {
    let clock: ManualClock;
    let alice: DialogUsageManager;
    let aliceStrays: Array<[string, number]>;
    let peer: UdpSipPeer;

    beforeEach(async () => {
      clock = new ManualClock();
      const stack = await startStack(clock);
      alice = new DialogUsageManager(stack, { aor: `sip:alice@${HOST}` });
      aliceStrays = [];
      alice.on('stray', (request: SipMessage, status: number) => void aliceStrays.push([request.method, status]));
      peer = await bindPeer();
    });

    /** alice subscribes to the peer; resolves with what the peer received. */
    async function subscribeToPeer(event = 'presence'): Promise<{ client: ClientLog; subscribe: Received }> {
      const client = watch(alice.subscribe({ to: `sip:bob@${HOST}:${peer.port}`, event, expires: 600 }));
      const subscribe = await expectReceived(peer, (r) => isRequest(r, 'SUBSCRIBE'), 'SUBSCRIBE');
      return { client, subscribe };
    }

    const contactOfPeer = (): string => `<sip:bob@${HOST}:${peer.port}>`;

    it('a NOTIFY before the 200 creates the dialog: answered 200, notify emitted, then the 2xx joins it (one subscription, no fork) (§4.1.2.4)', async () => {
      const { client, subscribe } = await subscribeToPeer();
      const request = subscribe.message!;
      const early = await sendNotify(peer, request, { fromTag: 'nA', cseq: 1, state: 'active;expires=600', body: 'early' });
      expect(early.status).to.equal(200);
      expect(client.notifies.map((n) => n.body.toString('utf8'))).to.deep.equal(['early']);
      expect(client.events).to.not.include('ready');

      await answer(peer, subscribe, 200, { toTag: 'nA', headers: { Expires: '600', Contact: contactOfPeer() } });
      const ready = await within(client.sub.ready, 'ready');
      expect(ready.status).to.equal(200);
      const later = await sendNotify(peer, request, { fromTag: 'nA', cseq: 2, state: 'active;expires=600', body: 'later' });
      expect(later.status).to.equal(200);
      await drain();
      expect(client.notifies.map((n) => n.body.toString('utf8'))).to.deep.equal(['early', 'later']);
      expect(client.forks, 'forks').to.have.length(0);
      expect(client.events.indexOf('notify')).to.be.lessThan(client.events.indexOf('ready'));
      expect(client.sub.state).to.equal('active');

      // The dialog is the NOTIFY's: unsubscribing goes to its Contact with To tag nA.
      const from = peer.received.length;
      const done = client.sub.unsubscribe();
      const unsubscribe = await expectReceived(peer, (r) => isRequest(r, 'SUBSCRIBE'), 'the unsubscribing SUBSCRIBE', from);
      const u = unsubscribe.message!;
      expect(u.to.tag).to.equal('nA');
      expect(u.from.tag).to.equal(request.from.tag);
      expect(u.callId).to.equal(request.callId);
      expect(u.cseq.seq).to.equal(request.cseq.seq + 1);
      expect(u.expires).to.equal(0);
      expect(u.requestUri.port).to.equal(peer.port);
      await answer(peer, unsubscribe, 200, { headers: { Expires: '0', Contact: contactOfPeer() } });
      const last = await sendNotify(peer, request, { fromTag: 'nA', cseq: 3, state: 'terminated;reason=timeout' });
      expect(last.status).to.equal(200);
      await within(done, 'unsubscribe');
      expect(client.terminated).to.deep.equal([['timeout', undefined]]);
    });

    /** alice subscribes; the peer answers 200 (To tag fA), then NOTIFYs from fA and from fB (CSeq 1 each). */
    async function forked(): Promise<{ client: ClientLog; request: SipMessage }> {
      const { client, subscribe } = await subscribeToPeer();
      const request = subscribe.message!;
      await answer(peer, subscribe, 200, { toTag: 'fA', headers: { Expires: '600', Contact: contactOfPeer() } });
      expect((await within(client.sub.ready, 'ready')).status).to.equal(200);
      expect((await sendNotify(peer, request, { fromTag: 'fA', cseq: 1, state: 'active;expires=600', body: 'a1' })).status).to.equal(200);
      expect((await sendNotify(peer, request, { fromTag: 'fB', cseq: 1, state: 'active;expires=600', body: 'b1' })).status).to.equal(200);
      await drain();
      return { client, request };
    }

    it("NOTIFYs from two forks (two From tags): the second makes one 'fork' with its own ClientSubscription; later NOTIFYs go to the right one; each ends on its own (§4.1.4)", async () => {
      const { client, request } = await forked();
      expect(client.forks, "'fork' events").to.have.length(1);
      const fork = client.forks[0]!;
      expect(fork.sub).to.not.equal(client.sub);
      expect(fork.sub.state).to.equal('active');
      expect(client.notifies.map((n) => n.body.toString('utf8'))).to.deep.equal(['a1']);

      expect((await sendNotify(peer, request, { fromTag: 'fB', cseq: 2, state: 'active;expires=600', body: 'b2' })).status).to.equal(200);
      expect((await sendNotify(peer, request, { fromTag: 'fA', cseq: 2, state: 'active;expires=600', body: 'a2' })).status).to.equal(200);
      await drain();
      expect(client.notifies.map((n) => n.body.toString('utf8'))).to.deep.equal(['a1', 'a2']);
      expect(fork.notifies.map((n) => n.body.toString('utf8')).filter((b) => b !== 'b1')).to.deep.equal(['b2']);
      expect(client.forks).to.have.length(1);
      expect(fork.forks).to.have.length(0);

      expect((await sendNotify(peer, request, { fromTag: 'fB', cseq: 3, state: 'terminated;reason=noresource' })).status).to.equal(200);
      await drain();
      expect(fork.terminated).to.deep.equal([['noresource', undefined]]);
      expect(fork.sub.state).to.equal('terminated');
      expect(client.terminated).to.deep.equal([]);
      expect(client.sub.state).to.equal('active');
    });

    it("the NOTIFY that makes a fork is heard by listeners added in the 'fork' event ('notify' is every NOTIFY)", async () => {
      const { client } = await forked();
      expect(client.forks).to.have.length(1);
      expect(client.forks[0]!.notifies.map((n) => n.body.toString('utf8'))).to.deep.equal(['b1']);
    });

    it('Timer N: a 200 and no NOTIFY within 64·T1 terminates with timeout (none at 64·T1 − 1 ms); a NOTIFY after that gets 481 (§4.1.2.4)', async () => {
      const { client, subscribe } = await subscribeToPeer();
      await answer(peer, subscribe, 200, { toTag: 'nN', headers: { Expires: '600', Contact: contactOfPeer() } });
      expect((await within(client.sub.ready, 'ready')).status).to.equal(200);
      await advanceTo(clock, 64 * T1 - 1);
      expect(client.terminated).to.deep.equal([]);
      expect(client.sub.state).to.not.equal('terminated');
      await advanceTo(clock, 64 * T1);
      await until(() => client.terminated.length === 1, 'termination by Timer N');
      expect(client.terminated).to.deep.equal([['timeout', undefined]]);
      expect(client.sub.state).to.equal('terminated');
      expect(client.notifies).to.have.length(0);

      const late = await sendNotify(peer, subscribe.message!, { fromTag: 'nN', cseq: 1, state: 'active;expires=600', body: 'too late' });
      expect(late.status).to.equal(481);
      expect(client.notifies).to.have.length(0);
    });

    it('a 202 to the SUBSCRIBE is taken exactly as a 200 (§8.3.1)', async () => {
      const { client, subscribe } = await subscribeToPeer();
      await answer(peer, subscribe, 202, { toTag: 'n2', headers: { Expires: '600', Contact: contactOfPeer() } });
      const ready = await within(client.sub.ready, 'ready');
      expect(ready.status).to.equal(202);
      expect((await sendNotify(peer, subscribe.message!, { fromTag: 'n2', cseq: 1, state: 'active;expires=600', body: 'ok' })).status).to.equal(200);
      await drain();
      expect(client.sub.state).to.equal('active');
      expect(client.notifies).to.have.length(1);
      expect(client.forks).to.have.length(0);
      expect(client.terminated).to.deep.equal([]);
    });

    it('a refresh answered 481 terminates the subscription (§4.1.2.2); the refresh went to the remote target at 540 s', async () => {
      const { client, subscribe } = await subscribeToPeer();
      const request = subscribe.message!;
      await answer(peer, subscribe, 200, { toTag: 'nR', headers: { Expires: '600', Contact: contactOfPeer() } });
      expect((await within(client.sub.ready, 'ready')).status).to.equal(200);
      expect((await sendNotify(peer, request, { fromTag: 'nR', cseq: 1, state: 'active;expires=600' })).status).to.equal(200);

      const from = peer.received.length;
      await advanceTo(clock, 539_999);
      expect(peer.received.slice(from).filter((r) => isRequest(r, 'SUBSCRIBE'))).to.have.length(0);
      await advanceTo(clock, 540_000);
      const refresh = await expectReceived(peer, (r) => isRequest(r, 'SUBSCRIBE'), 'the refresh', from);
      const r = refresh.message!;
      expect(r.to.tag).to.equal('nR');
      expect(r.callId).to.equal(request.callId);
      expect(r.cseq.seq).to.equal(request.cseq.seq + 1);
      expect(r.expires).to.equal(600);
      expect(r.requestUri.toString()).to.equal(`sip:bob@${HOST}:${peer.port}`);
      await answer(peer, refresh, 481);
      await until(() => client.terminated.length === 1, 'termination after the 481');
      await drain();
      expect(client.terminated).to.have.length(1);
      expect(client.sub.state).to.equal('terminated');
    });

    it('an in-dialog NOTIFY with a CSeq lower than the last one: 500 (RFC 3261 §12.2.2), not delivered', async () => {
      const { client, subscribe } = await subscribeToPeer();
      const request = subscribe.message!;
      await answer(peer, subscribe, 200, { toTag: 'nC', headers: { Expires: '600', Contact: contactOfPeer() } });
      await within(client.sub.ready, 'ready');
      expect((await sendNotify(peer, request, { fromTag: 'nC', cseq: 5, state: 'active;expires=600', body: 'five' })).status).to.equal(200);
      expect((await sendNotify(peer, request, { fromTag: 'nC', cseq: 4, state: 'active;expires=600', body: 'four' })).status).to.equal(500);
      await drain();
      expect(client.notifies.map((n) => n.body.toString('utf8'))).to.deep.equal(['five']);
    });

    it('a NOTIFY for a subscription we do not have: 481 and a stray (NOTIFY, 481) (§4.1.3)', async () => {
      // A SUBSCRIBE-shaped stand-in only to address alice: her Contact is her UDP listener.
      const { subscribe } = await subscribeToPeer();
      await answer(peer, subscribe, 200, { toTag: 'nX', headers: { Expires: '600', Contact: contactOfPeer() } });
      const unknown = await sendNotify(peer, subscribe.message!, {
        fromTag: 'nobody',
        cseq: 1,
        state: 'active;expires=600',
        body: 'who?',
        callId: `unknown-${token()}`,
      });
      expect(unknown.status).to.equal(481);
      expect(aliceStrays).to.deep.equal([['NOTIFY', 481]]);
    });
  });

  describe('a notifier DUM against hand-written SUBSCRIBEs (raw UDP)', () => {
    let bob: DialogUsageManager;
    let port: number;
    let peer: UdpSipPeer;
    let servers: ServerLog[];

    beforeEach(async () => {
      const stack = await startStack(new ManualClock());
      bob = new DialogUsageManager(stack, { aor: `sip:bob@${HOST}` });
      port = portOf(stack, 'udp');
      peer = await bindPeer();
      servers = serve(bob, 'presence', (sub) => sub.accept());
    });

    async function send(expires: number): Promise<{ response: SipMessage; callId: string }> {
      const callId = `raw-sub-${token()}`;
      const from = peer.received.length;
      await peer.send(subscribeBytes(peer, port, { callId, fromTag: token(4), expires }), port);
      const got = await expectReceived(peer, (r) => isResponse(r, 'SUBSCRIBE', callId) && r.message!.status >= 200, `the response to SUBSCRIBE Expires: ${expires}`, from);
      return { response: got.message!, callId };
    }

    it('Expires: 30 and 59 → 423 with Min-Expires: 60, handler not called; Expires: 60 → 200 with Expires: 60 (RFC 6665 §4.2.1.1)', async () => {
      for (const expires of [30, 59]) {
        const { response } = await send(expires);
        expect(response.status, `Expires: ${expires}`).to.equal(423);
        expect(response.header('min-expires')).to.equal('60');
      }
      expect(servers).to.have.length(0);
      const { response } = await send(60);
      expect(response.status).to.equal(200);
      expect(response.expires).to.equal(60);
      expect(servers).to.have.length(1);
      expect(servers[0]!.sub.expires).to.equal(60);
    });

    it('Expires: 100000 is lowered to 86400: sub.expires, the 200 and the first NOTIFY say 86400 (§4.2.1.1: may shorten, never lengthen)', async () => {
      const { response, callId } = await send(100_000);
      expect(response.status).to.equal(200);
      expect(response.expires).to.equal(86_400);
      expect(servers).to.have.length(1);
      expect(servers[0]!.sub.expires).to.equal(86_400);
      const notify = await expectReceived(peer, (r) => isRequest(r, 'NOTIFY') && safeCallId(r.message!) === callId, 'the first NOTIFY');
      expect(notify.message!.subscriptionState?.state).to.equal('active');
      expect(notify.message!.subscriptionState?.expires).to.equal(86_400);
    });

    it('a NOTIFY answered 481 ends the subscription: notify() resolves with the 481, terminated once (§4.2.2)', async () => {
      const { response, callId } = await send(600);
      expect(response.status).to.equal(200);
      const first = await expectReceived(peer, (r) => isRequest(r, 'NOTIFY') && safeCallId(r.message!) === callId, 'the first NOTIFY');
      await answer(peer, first, 200);
      const from = peer.received.length;
      const pending = servers[0]!.sub.notify({ body: 'update', contentType: 'text/plain' });
      const second = await expectReceived(peer, (r) => isRequest(r, 'NOTIFY') && safeCallId(r.message!) === callId, 'the second NOTIFY', from);
      expect(second.message!.body.toString('utf8')).to.equal('update');
      await answer(peer, second, 481);
      const outcome = await within(pending, 'notify()');
      expect(outcome.status).to.equal(481);
      await until(() => servers[0]!.terminated.length === 1, 'the notifier terminated');
      await drain();
      expect(servers[0]!.terminated).to.have.length(1);
    });
  });
});
