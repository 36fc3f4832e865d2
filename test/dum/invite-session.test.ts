// INVITE sessions in the dialog usage manager, against docs/dum.md ("INVITE sessions") and
// RFC 3261 §9 (CANCEL), §12 (dialogs), §13 (INVITE), §14 (re-INVITE), §15 (BYE).
//
// Two DUMs on two real SipStacks on 127.0.0.1 (UDP and TCP listening on port 0), or one DUM
// against a raw UDP peer where the test has to misbehave (lose an ACK) or play a proxy's part
// (Record-Route). Every stack runs on a ManualClock (a SteppingClock, which knows its deadlines):
// real sockets still deliver, so I/O is awaited by polling on setImmediate, capped in real time,
// and protocol time only moves when a test advances the clock. What went on the wire is read
// from the `parley:message:out` / `parley:message:in` diagnostics channels.
//
// docs/dum.md names IncomingReinvite and IncomingDialogRequest without their members; the tests
// use what src/tu/dum exports: IncomingReinvite.offer / accept({ body, contentType }) / reject(),
// IncomingDialogRequest.request (only in watch() below).
import { expect } from 'chai';
import { channel } from 'node:diagnostics_channel';
import {
  DialogUsageManager,
  DumError,
  SipMessage,
  SipStack,
  parseMessage,
  type ClientInviteSession,
  type InviteSession,
  type ServerInviteSession,
} from '../../src/index.js';
import { sip } from '../support/sip-bytes.js';
import { SteppingClock } from '../support/stepping-clock.js';
import { UdpSipPeer, token, type Received } from '../support/udp-sip.js';

const T1 = 500;
const T2 = 4000;
const T4 = 5000;
const SDP = 'application/sdp';

function sdp(user: string, version: number, port: number): string {
  return [
    'v=0',
    `o=${user} 2890844526 ${2890844526 + version} IN IP4 127.0.0.1`,
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0`,
    'a=rtpmap:0 PCMU/8000',
    '',
  ].join('\r\n');
}

const OFFER_SDP = sdp('alice', 0, 49170);
const ANSWER_SDP = sdp('bob', 0, 3456);

// ---- plumbing ------------------------------------------------------------------------------

type Cleanup = () => unknown;
let cleanups: Cleanup[] = [];

async function runCleanups(): Promise<void> {
  const list = cleanups.reverse();
  cleanups = [];
  for (const step of list) {
    try {
      await step();
    } catch {
      // a failed stop must not hide the test's own failure
    }
  }
}

/** Polls on setImmediate (sockets deliver between turns) until `condition` holds, capped in real time. */
async function until(condition: () => boolean, what: string | (() => string), limitMs = 5000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`gave up after ${limitMs} ms of real time waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Waits until `count()` has not changed for `ms` of real time: the sockets have gone quiet. */
async function quiet(count: () => number, ms = 40, limitMs = 5000): Promise<void> {
  let last = count();
  let since = performance.now();
  const deadline = since + limitMs;
  for (;;) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    const now = performance.now();
    const current = count();
    if (current !== last) {
      last = current;
      since = now;
    } else if (now - since >= ms) return;
    if (now > deadline) throw new Error('the wire never went quiet');
  }
}

interface Tracked<T> {
  done: boolean;
  value: T | undefined;
  error: unknown;
}

function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { done: false, value: undefined, error: undefined };
  promise.then(
    (value) => {
      t.value = value;
      t.done = true;
    },
    (error: unknown) => {
      t.error = error;
      t.done = true;
    },
  );
  return t;
}

async function settledValue<T>(t: Tracked<T>, what: string, limitMs = 5000): Promise<T> {
  await until(() => t.done, what, limitMs);
  if (t.error !== undefined) throw t.error;
  return t.value as T;
}

// ---- the wire, as the stacks saw it --------------------------------------------------------

interface Wire {
  dir: 'out' | 'in';
  message: SipMessage;
  /** Clock time when it was sent or received. */
  at: number;
  tuple: { protocol: string; address: string; port: number };
}

function captureWire(clock: SteppingClock): Wire[] {
  const log: Wire[] = [];
  const out = channel('parley:message:out');
  const inbound = channel('parley:message:in');
  const onOut = (data: unknown): void => {
    const d = data as { bytes: Buffer; tuple: Wire['tuple'] };
    try {
      log.push({ dir: 'out', message: parseMessage(d.bytes), at: clock.now(), tuple: d.tuple });
    } catch {
      // not a SIP message (keep-alive)
    }
  };
  const onIn = (data: unknown): void => {
    const d = data as { message: SipMessage; tuple: Wire['tuple'] };
    // A copy: the layers above keep working on the object they were handed.
    log.push({ dir: 'in', message: parseMessage(d.message.toBuffer()), at: clock.now(), tuple: d.tuple });
  };
  out.subscribe(onOut);
  inbound.subscribe(onIn);
  cleanups.push(() => {
    out.unsubscribe(onOut);
    inbound.unsubscribe(onIn);
  });
  return log;
}

function callIdOf(m: SipMessage): string | undefined {
  try {
    return m.callId;
  } catch {
    return undefined;
  }
}

/** Requests sent (`out`) in one call, by method (and From tag: who sent it), retransmissions folded. */
function requestsOut(wire: Wire[], callId: string, method: string, fromTag?: string): Wire[] {
  const seen = new Set<string>();
  return wire.filter((w) => {
    const m = w.message;
    if (w.dir !== 'out' || !m.isRequest || m.method !== method || callIdOf(m) !== callId) return false;
    if (fromTag !== undefined && m.from.tag !== fromTag) return false;
    const key = `${m.via[0]?.branch ?? ''}|${m.cseq.seq}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Requests received (`in`) by a stack in one call, by method, retransmissions folded. The ACK for
 * a non-2xx is the transaction layer's (§17.1.1.3) and goes out by its retransmission path, which
 * `parley:message:out` does not report: it is seen where it arrives.
 */
function requestsIn(wire: Wire[], callId: string, method: string): Wire[] {
  const seen = new Set<string>();
  return wire.filter((w) => {
    const m = w.message;
    if (w.dir !== 'in' || !m.isRequest || m.method !== method || callIdOf(m) !== callId) return false;
    const key = `${m.via[0]?.branch ?? ''}|${m.cseq.seq}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Responses sent (`out`) in one call, by CSeq method and status (every copy, retransmissions too). */
function responsesOut(wire: Wire[], callId: string, cseqMethod: string, status?: number): Wire[] {
  return wire.filter(
    (w) =>
      w.dir === 'out' &&
      !w.message.isRequest &&
      callIdOf(w.message) === callId &&
      w.message.cseq.method === cseqMethod &&
      (status === undefined || w.message.status === status),
  );
}

// ---- stacks and DUMs -----------------------------------------------------------------------

async function bindPeer(label: string): Promise<UdpSipPeer> {
  const peer = await UdpSipPeer.bind('127.0.0.1', 0, label);
  cleanups.push(() => peer.close());
  return peer;
}

/**
 * A stack on 127.0.0.1 (UDP and TCP, port 0). Its RFC 3263 resolver asks only `dnsSink`, a UDP
 * socket that never answers: no name lookup can leave loopback, and one that is tried shows up
 * there (numeric hosts never need one).
 */
async function startStack(clock: SteppingClock, dnsSink: UdpSipPeer): Promise<SipStack> {
  const stack = new SipStack({
    transports: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
    clock,
    t1: T1,
    t2: T2,
    t4: T4,
    dns: { nameservers: [`127.0.0.1:${dnsSink.port}`], resolvConf: false, hostsFile: false },
  });
  await stack.start();
  cleanups.push(() => stack.stop());
  return stack;
}

function portOf(stack: SipStack, protocol: 'udp' | 'tcp'): number {
  const transport = stack.transports.find((t) => t.protocol === protocol);
  if (!transport) throw new Error(`no ${protocol} transport`);
  return transport.local.port;
}

interface Pair {
  clock: SteppingClock;
  wire: Wire[];
  dnsSink: UdpSipPeer;
  a: SipStack;
  b: SipStack;
  caller: DialogUsageManager;
  callee: DialogUsageManager;
  /** Where the callee listens, over the transport under test. */
  target: string;
}

async function pair(protocol: 'udp' | 'tcp'): Promise<Pair> {
  const clock = new SteppingClock();
  const dnsSink = await bindPeer('dns-sink');
  const wire = captureWire(clock);
  const a = await startStack(clock, dnsSink);
  const b = await startStack(clock, dnsSink);
  const caller = new DialogUsageManager(a, { aor: 'sip:alice@127.0.0.1' });
  const callee = new DialogUsageManager(b, { aor: 'sip:bob@127.0.0.1' });
  const target = protocol === 'udp' ? `sip:bob@127.0.0.1:${portOf(b, 'udp')}` : `sip:bob@127.0.0.1:${portOf(b, 'tcp')};transport=tcp`;
  return { clock, wire, dnsSink, a, b, caller, callee, target };
}

/**
 * 64·T1 of protocol time, then nothing may be left: every transaction ended (Timers B/D/F/H/I/J/K/L/M
 * are all ≤ 64·T1) and no protocol timer is live. Keep-alives are not on the stack's TimerQueue
 * (they run on the transports' clock), so timerCount must be exactly 0.
 */
async function drain(clock: SteppingClock, stacks: SipStack[]): Promise<void> {
  await clock.step(64 * T1);
  await until(
    () => stacks.every((s) => s.transactionCount === 0),
    () => `no live transactions 64·T1 later (transactionCount: ${stacks.map((s) => s.transactionCount).join(', ')})`,
  );
  expect(stacks.map((s) => s.timerCount), 'live timers on each stack after 64·T1').to.deep.equal(stacks.map(() => 0));
}

// ---- sessions ------------------------------------------------------------------------------

interface SessionLog {
  /** Events in the order they came: 'provisional 180', 'established', 'failed 486', 'terminated bye', 'reinvite', 'request'. */
  events: string[];
  provisional: SipMessage[];
  established: SipMessage[];
  failed: SipMessage[];
  terminated: string[];
  /** Offers in re-INVITEs from the far end, as text. */
  reinvites: string[];
  requests: Array<{ method: string; body: string; contentType: string | undefined }>;
  /** The state when each event fired. */
  states: Array<{ event: string; state: string }>;
}

/**
 * Records every event of a session; `answer` makes the answer to each re-INVITE's offer
 * (null: the listener only looks, it neither accepts nor rejects).
 */
function watch(session: InviteSession, answer: ((offer: string) => string) | null = () => ANSWER_SDP): SessionLog {
  const log: SessionLog = { events: [], provisional: [], established: [], failed: [], terminated: [], reinvites: [], requests: [], states: [] };
  const note = (event: string): void => {
    log.events.push(event);
    log.states.push({ event, state: session.state });
  };
  session.on('provisional', (response) => {
    note(`provisional ${response.status}`);
    log.provisional.push(response);
  });
  session.on('established', (response) => {
    note('established');
    log.established.push(response);
  });
  session.on('failed', (response) => {
    note(`failed ${response.status}`);
    log.failed.push(response);
  });
  session.on('terminated', (reason) => {
    note(`terminated ${reason}`);
    log.terminated.push(reason);
  });
  session.on('reinvite', (reinvite) => {
    note('reinvite');
    const text = reinvite.offer.toString('utf8');
    log.reinvites.push(text);
    if (answer) reinvite.accept({ body: answer(text), contentType: SDP });
  });
  session.on('request', (incoming) => {
    note('request');
    const request = incoming.request;
    log.requests.push({ method: request.method, body: request.body.toString('utf8'), contentType: request.contentType });
  });
  return log;
}

function expectBody(actual: Buffer | undefined, expected: string, what: string): void {
  expect(actual, what).to.not.equal(undefined);
  expect(actual!.toString('utf8'), what).to.equal(expected);
  expect(actual!.length, `${what}: length in bytes`).to.equal(Buffer.byteLength(expected));
}

interface Call {
  call: ClientInviteSession;
  incoming: ServerInviteSession;
  callerLog: SessionLog;
  calleeLog: SessionLog;
  /** The INVITE as sent and the 200 as received. */
  invite: SipMessage;
  ok: SipMessage;
  callId: string;
  callerTag: string;
  calleeTag: string;
  inviteCseq: number;
  /** Remote targets (§12.1): the Contact URIs of the INVITE and of the 200. */
  callerContact: string;
  calleeContact: string;
}

interface Answers {
  caller?: ((offer: string) => string) | null;
  callee?: ((offer: string) => string) | null;
}

/** INVITE → 180 → 200 → ACK between the two DUMs; resolves when both sides are established. */
async function establish(p: Pair, answers: Answers = {}): Promise<Call> {
  const sessions: Array<{ session: ServerInviteSession; log: SessionLog }> = [];
  p.callee.onInvite((session) => {
    sessions.push({ session, log: watch(session, answers.callee) });
    session.provisional(180);
    session.accept({ body: ANSWER_SDP, contentType: SDP });
  });
  const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
  const callerLog = watch(call, answers.caller);
  const ok = await settledValue(track(call.final), 'the INVITE final response');
  expect(ok.status, 'INVITE final').to.equal(200);
  await until(() => callerLog.established.length === 1 && sessions[0]?.log.established.length === 1, 'both sides established');
  const first = sessions[0]!;
  const callId = ok.callId;
  const invite = requestsOut(p.wire, callId, 'INVITE')[0]?.message;
  expect(invite, 'the INVITE on the wire').to.not.equal(undefined);
  return {
    call,
    incoming: first.session,
    callerLog,
    calleeLog: first.log,
    invite: invite!,
    ok,
    callId,
    callerTag: ok.from.tag!,
    calleeTag: ok.to.tag!,
    inviteCseq: invite!.cseq.seq,
    callerContact: invite!.contact[0]!.uri.toString(),
    calleeContact: ok.contact[0]!.uri.toString(),
  };
}

/** A request built by hand and sent in its own client transaction from `stack` (not through its DUM). */
function rawRequest(stack: SipStack, head: string[], body = ''): Promise<SipMessage> {
  return stack.request(parseMessage(sip(head, body))).final;
}

/** A raw in-dialog request that reuses a dialog's identifiers: From/To as the sender's side has them. */
function inDialogHead(method: string, uri: string, from: string, to: string, callId: string, cseq: number): string[] {
  return [
    `${method} ${uri} SIP/2.0`,
    `Via: SIP/2.0/UDP 0.0.0.0;branch=z9hG4bK-raw-${token()}`,
    'Max-Forwards: 70',
    `From: ${from}`,
    `To: ${to}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ${method}`,
    'Content-Length: 0',
  ];
}

// ---- the tests -----------------------------------------------------------------------------

describe('DUM INVITE sessions (docs/dum.md "INVITE sessions"; RFC 3261 §9, §12–§15)', function () {
  // Real time is spent only on socket I/O and short quiet windows; this bound also holds when
  // mocha runs without .mocharc (whose timeout is 20 s as well).
  this.timeout(20_000);
  afterEach(runCleanups);

  for (const protocol of ['udp', 'tcp'] as const) {
    describe(`over ${protocol.toUpperCase()}`, () => {
      it('sets up a call: 180, 200, ACK; the offer and answer reach the other side byte for byte (§13.2, §13.3)', async () => {
        const p = await pair(protocol);
        const sessions: Array<{ session: ServerInviteSession; log: SessionLog; stateAtInvite: string }> = [];
        p.callee.onInvite((session) => {
          sessions.push({ session, log: watch(session), stateAtInvite: session.state });
          session.provisional(180);
          session.accept({ body: ANSWER_SDP, contentType: SDP });
        });
        const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
        expect(call.state, 'right after invite()').to.equal('calling');
        const callerLog = watch(call);
        const final = track(call.final);

        const ok = await settledValue(final, 'the final response');
        expect(ok.status).to.equal(200);
        await until(() => callerLog.established.length > 0 && (sessions[0]?.log.established.length ?? 0) > 0, "'established' on both sides");
        await quiet(() => p.wire.length);

        // Caller: 180 (a 100 is tolerated: docs/dum.md does not say whether it is reported), then established.
        expect(callerLog.events.filter((e) => e !== 'provisional 100')).to.deep.equal(['provisional 180', 'established']);
        const ringing = callerLog.provisional.filter((r) => r.status !== 100);
        expect(callerLog.states.find((s) => s.event === 'provisional 180')?.state, 'state on the 180 (early dialog, §12.1)').to.equal('early');
        expect(callerLog.states.find((s) => s.event === 'established')?.state, "state on 'established'").to.equal('established');
        expect(callerLog.established[0]!.status, "the caller's 'established' carries the 2xx").to.equal(200);
        expect(call.state).to.equal('established');
        expect(call.dialog, 'the dialog of an established session').to.not.equal(undefined);
        expectBody(call.remoteBody, ANSWER_SDP, "caller's remoteBody (the answer)");
        expect(ok.contentType).to.equal(SDP);

        // Callee: exactly one session, offered → established by the ACK.
        expect(sessions).to.have.length(1);
        const incoming = sessions[0]!;
        expect(incoming.stateAtInvite, 'state when onInvite runs').to.equal('offered');
        expect(incoming.session.invite.method).to.equal('INVITE');
        expect(incoming.session.invite.callId).to.equal(ok.callId);
        expectBody(incoming.session.offer, OFFER_SDP, 'the offer as the callee got it');
        expectBody(incoming.session.remoteBody, OFFER_SDP, "callee's remoteBody (the offer)");
        expect(incoming.log.events).to.deep.equal(['established']);
        expect(incoming.session.state).to.equal('established');

        // The INVITE as sent (docs/dum.md "Requests the DUM originates").
        const callId = ok.callId;
        const invites = requestsOut(p.wire, callId, 'INVITE');
        expect(invites, 'INVITEs sent').to.have.length(1);
        const invite = invites[0]!.message;
        expect(invite.requestUri.toString()).to.equal(p.target);
        expect(invite.to.uri.toString()).to.equal(p.target);
        expect(invite.to.tag).to.equal(undefined);
        expect(invite.from.uri.toString()).to.equal('sip:alice@127.0.0.1');
        expect(invite.from.tag).to.be.a('string').and.not.equal('');
        expect(invite.maxForwards).to.equal(70);
        expect(invite.header('user-agent')).to.match(/^Parley\//);
        expect(invite.contact, 'Contact in the INVITE (§8.1.1.8)').to.have.length(1);
        expect(invite.contentType).to.equal(SDP);
        expect(invite.body.toString('utf8')).to.equal(OFFER_SDP);
        expect(invite.via[0]!.transport).to.equal(protocol.toUpperCase());

        // One To tag for the 180 and the 200 (§8.2.6.2, §12.1.1); the 200 has a Contact and the answer.
        const calleeTag = ok.to.tag;
        expect(calleeTag).to.be.a('string').and.not.equal('');
        expect(ringing[0]!.to.tag).to.equal(calleeTag);
        expect(ok.contact, 'Contact in the 2xx (§12.1.1)').to.have.length(1);
        expect(ok.body.toString('utf8')).to.equal(ANSWER_SDP);
        expect(responsesOut(p.wire, callId, 'INVITE', 200), '200s sent: no retransmission before the clock moves').to.have.length(1);

        // The ACK (§13.2.2.4): a new transaction, to the remote target, the INVITE's CSeq number.
        const acks = requestsOut(p.wire, callId, 'ACK');
        expect(acks, 'ACKs sent').to.have.length(1);
        const ack = acks[0]!.message;
        expect(ack.requestUri.toString()).to.equal(ok.contact[0]!.uri.toString());
        expect(ack.cseq).to.deep.include({ seq: invite.cseq.seq, method: 'ACK' });
        expect(ack.from.tag).to.equal(invite.from.tag);
        expect(ack.to.tag).to.equal(calleeTag);
        expect(ack.via[0]!.branch).to.not.equal(invite.via[0]!.branch);
        expect(p.wire.filter((w) => w.dir === 'in' && w.message.isRequest && w.message.method === 'ACK' && callIdOf(w.message) === callId), 'ACKs received by the callee').to.have.length(1);
      });

      it('re-INVITEs from either side: the offer reaches the other side, the answer comes back in the 200, CSeq +1 each time (§14, §12.2.1.1)', async () => {
        const p = await pair(protocol);
        const c = await establish(p, {
          callee: (offer) => `answer-to:${offer}`,
          caller: (offer) => `answer-to:${offer}`,
        });
        const OFFER_A = sdp('alice', 1, 49172);
        const OFFER_B = sdp('bob', 1, 3458);
        const OFFER_B2 = sdp('bob', 2, 3460);

        // From the caller.
        const fromCaller = await c.call.reinvite({ body: OFFER_A, contentType: SDP });
        expect(fromCaller.status).to.equal(200);
        expect(fromCaller.body.toString('utf8')).to.equal(`answer-to:${OFFER_A}`);
        expect(c.calleeLog.reinvites).to.deep.equal([OFFER_A]);
        expectBody(c.call.remoteBody, `answer-to:${OFFER_A}`, "caller's remoteBody after its re-INVITE");
        expectBody(c.incoming.remoteBody, OFFER_A, "callee's remoteBody after the caller's re-INVITE");
        await until(() => requestsOut(p.wire, c.callId, 'ACK', c.callerTag).length === 2, 'the ACK for the re-INVITE');

        // From the callee, twice.
        const fromCallee = await c.incoming.reinvite({ body: OFFER_B, contentType: SDP });
        expect(fromCallee.status).to.equal(200);
        expect(fromCallee.body.toString('utf8')).to.equal(`answer-to:${OFFER_B}`);
        expect(c.callerLog.reinvites).to.deep.equal([OFFER_B]);
        expectBody(c.incoming.remoteBody, `answer-to:${OFFER_B}`, "callee's remoteBody after its re-INVITE");
        expectBody(c.call.remoteBody, OFFER_B, "caller's remoteBody after the callee's re-INVITE");
        await until(() => requestsOut(p.wire, c.callId, 'ACK', c.calleeTag).length === 1, "the ACK for the callee's re-INVITE");
        const again = await c.incoming.reinvite({ body: OFFER_B2, contentType: SDP });
        expect(again.status).to.equal(200);
        expect(c.callerLog.reinvites).to.deep.equal([OFFER_B, OFFER_B2]);
        await until(() => requestsOut(p.wire, c.callId, 'ACK', c.calleeTag).length === 2, "the ACK for the callee's second re-INVITE");
        await quiet(() => p.wire.length);

        // The caller's INVITEs: n, n+1, in the dialog (§12.2.1.1).
        const callerInvites = requestsOut(p.wire, c.callId, 'INVITE', c.callerTag).map((w) => w.message);
        expect(callerInvites.map((m) => m.cseq.seq)).to.deep.equal([c.inviteCseq, c.inviteCseq + 1]);
        const reinvite = callerInvites[1]!;
        expect(reinvite.requestUri.toString(), 'Request-URI = remote target').to.equal(c.calleeContact);
        expect(reinvite.to.tag).to.equal(c.calleeTag);
        expect(reinvite.body.toString('utf8')).to.equal(OFFER_A);
        expect(reinvite.contact, 'Contact in a re-INVITE (§14.1, §12.2.1.1)').to.have.length(1);

        // The callee's INVITEs: From/To swapped, local URI = the INVITE's To URI (§12.1.1), CSeq +1.
        const calleeInvites = requestsOut(p.wire, c.callId, 'INVITE', c.calleeTag).map((w) => w.message);
        expect(calleeInvites).to.have.length(2);
        expect(calleeInvites[1]!.cseq.seq).to.equal(calleeInvites[0]!.cseq.seq + 1);
        for (const m of calleeInvites) {
          expect(m.requestUri.toString()).to.equal(c.callerContact);
          expect(m.from.uri.toString()).to.equal(c.invite.to.uri.toString());
          expect(m.to.uri.toString()).to.equal(c.invite.from.uri.toString());
          expect(m.to.tag).to.equal(c.callerTag);
        }
        // Each ACK carries its re-INVITE's CSeq number (§13.2.2.4).
        expect(requestsOut(p.wire, c.callId, 'ACK', c.callerTag).map((w) => w.message.cseq.seq)).to.deep.equal([c.inviteCseq, c.inviteCseq + 1]);
        expect(requestsOut(p.wire, c.callId, 'ACK', c.calleeTag).map((w) => w.message.cseq.seq)).to.deep.equal(calleeInvites.map((m) => m.cseq.seq));
        expect(c.call.state).to.equal('established');
        expect(c.incoming.state).to.equal('established');
      });

      it("a re-INVITE whose listener neither accepts nor rejects is answered 200 (docs/dum.md: 'answered 200 … unless the listener calls reject')", async () => {
        const p = await pair(protocol);
        const c = await establish(p, { callee: null });
        const OFFER = sdp('alice', 3, 49176);
        // The listener decides synchronously or not at all; no protocol time needs to pass.
        const response = await settledValue(track(c.call.reinvite({ body: OFFER, contentType: SDP })), 'the final response to the re-INVITE', 3000);
        expect(response.status).to.equal(200);
        expect(c.calleeLog.reinvites).to.deep.equal([OFFER]);
        expectBody(c.incoming.remoteBody, OFFER, "callee's remoteBody");
        expect(c.incoming.state).to.equal('established');
      });

      it('in-dialog MESSAGE and INFO: a request event on the other side with the exact body; 200 (§12.2)', async () => {
        const p = await pair(protocol);
        const c = await establish(p);
        const DTMF = 'Signal=5\r\nDuration=160\r\n';

        const message = await c.call.request('MESSAGE', { body: 'hello bob', contentType: 'text/plain' });
        expect(message.status).to.equal(200);
        expect(c.calleeLog.requests).to.deep.equal([{ method: 'MESSAGE', body: 'hello bob', contentType: 'text/plain' }]);

        const info = await c.incoming.request('INFO', { body: DTMF, contentType: 'application/dtmf-relay' });
        expect(info.status).to.equal(200);
        expect(c.callerLog.requests).to.deep.equal([{ method: 'INFO', body: DTMF, contentType: 'application/dtmf-relay' }]);

        const info2 = await c.call.request('INFO', { body: 'Signal=#\r\nDuration=100\r\n', contentType: 'application/dtmf-relay' });
        expect(info2.status).to.equal(200);
        expect(c.calleeLog.requests).to.have.length(2);
        expect(c.calleeLog.requests[1]).to.deep.equal({ method: 'INFO', body: 'Signal=#\r\nDuration=100\r\n', contentType: 'application/dtmf-relay' });

        // In the dialog: remote target, tags, the local CSeq going up by one (§12.2.1.1).
        const sentMessage = requestsOut(p.wire, c.callId, 'MESSAGE', c.callerTag);
        const sentInfo = requestsOut(p.wire, c.callId, 'INFO', c.callerTag);
        expect(sentMessage.map((w) => w.message.cseq.seq)).to.deep.equal([c.inviteCseq + 1]);
        expect(sentInfo.map((w) => w.message.cseq.seq)).to.deep.equal([c.inviteCseq + 2]);
        for (const w of [...sentMessage, ...sentInfo]) {
          expect(w.message.requestUri.toString()).to.equal(c.calleeContact);
          expect(w.message.to.tag).to.equal(c.calleeTag);
        }
        const calleeInfo = requestsOut(p.wire, c.callId, 'INFO', c.calleeTag);
        expect(calleeInfo).to.have.length(1);
        expect(calleeInfo[0]!.message.requestUri.toString()).to.equal(c.callerContact);
        expect(calleeInfo[0]!.message.to.tag).to.equal(c.callerTag);
        expect(c.call.state).to.equal('established');
        expect(c.incoming.state).to.equal('established');
      });

      it("BYE: callee 'terminated' bye, caller 'local-bye'; afterwards the dialog is gone (481, §15.1, §12.2.2)", async () => {
        const p = await pair(protocol);
        const c = await establish(p);
        const strays: Array<{ method: string; status: number; side: string }> = [];
        p.callee.on('stray', (request, status) => strays.push({ method: request.method, status, side: 'callee' }));
        p.caller.on('stray', (request, status) => strays.push({ method: request.method, status, side: 'caller' }));

        await c.call.bye();
        await until(() => c.calleeLog.terminated.length > 0 && c.callerLog.terminated.length > 0, "'terminated' on both sides");
        await quiet(() => p.wire.length);
        expect(c.callerLog.terminated).to.deep.equal(['local-bye']);
        expect(c.calleeLog.terminated).to.deep.equal(['bye']);
        expect(c.call.state).to.equal('terminated');
        expect(c.incoming.state).to.equal('terminated');

        const byes = requestsOut(p.wire, c.callId, 'BYE');
        expect(byes).to.have.length(1);
        const bye = byes[0]!.message;
        expect(bye.requestUri.toString()).to.equal(c.calleeContact);
        expect(bye.cseq).to.deep.include({ seq: c.inviteCseq + 1, method: 'BYE' });
        expect(bye.from.tag).to.equal(c.callerTag);
        expect(bye.to.tag).to.equal(c.calleeTag);
        expect(responsesOut(p.wire, c.callId, 'BYE').map((w) => w.message.status)).to.deep.equal([200]);

        // Requests in the gone dialog, from either side, built by hand with its identifiers.
        const toCallee = await rawRequest(p.a, inDialogHead('INFO', c.calleeContact, c.ok.header('from')!, c.ok.header('to')!, c.callId, c.inviteCseq + 10));
        expect(toCallee.status, 'INFO to the callee after the BYE').to.equal(481);
        const toCaller = await rawRequest(p.b, inDialogHead('INFO', c.callerContact, c.ok.header('to')!, c.ok.header('from')!, c.callId, 1000));
        expect(toCaller.status, 'INFO to the caller after the BYE').to.equal(481);
        expect(strays).to.deep.equal([
          { method: 'INFO', status: 481, side: 'callee' },
          { method: 'INFO', status: 481, side: 'caller' },
        ]);
        expect(c.calleeLog.requests).to.deep.equal([]);
        expect(c.callerLog.requests).to.deep.equal([]);

        await drain(p.clock, [p.a, p.b]);
      });

      it("reject: 486 → caller 'failed' 486, final 486, both end 'rejected'; the ACK is hop-by-hop (§13.2.2.3, §17.1.1.3)", async () => {
        const p = await pair(protocol);
        const logs: SessionLog[] = [];
        const sessions: ServerInviteSession[] = [];
        p.callee.onInvite((session) => {
          sessions.push(session);
          logs.push(watch(session));
          session.reject(486);
        });
        const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
        const callerLog = watch(call);
        const final = await settledValue(track(call.final), 'the final response');
        expect(final.status).to.equal(486);
        await until(() => callerLog.terminated.length > 0 && (logs[0]?.terminated.length ?? 0) > 0, "'terminated' on both sides");
        await quiet(() => p.wire.length);

        expect(callerLog.events).to.deep.equal(['failed 486', 'terminated rejected']);
        expect(callerLog.failed.map((r) => r.status)).to.deep.equal([486]);
        expect(callerLog.terminated).to.deep.equal(['rejected']);
        expect(call.state).to.equal('terminated');
        expect(sessions).to.have.length(1);
        expect(logs[0]!.terminated).to.deep.equal(['rejected']);
        expect(logs[0]!.established).to.deep.equal([]);
        expect(sessions[0]!.state).to.equal('terminated');

        const callId = final.callId;
        const invite = requestsOut(p.wire, callId, 'INVITE')[0]!.message;
        const acks = requestsIn(p.wire, callId, 'ACK');
        expect(acks, 'ACKs for the 486 at the callee').to.have.length(1);
        expect(acks[0]!.message.via[0]!.branch, 'the non-2xx ACK reuses the INVITE branch').to.equal(invite.via[0]!.branch);
        expect(acks[0]!.message.cseq).to.deep.include({ seq: invite.cseq.seq, method: 'ACK' });
        expect(requestsOut(p.wire, callId, 'BYE')).to.deep.equal([]);

        await drain(p.clock, [p.a, p.b]);
      });

      it("CANCEL after a 180: callee 'terminated' cancelled, caller final 487 and 'terminated' cancelled (§9.1, §9.2)", async () => {
        const p = await pair(protocol);
        const logs: SessionLog[] = [];
        const sessions: ServerInviteSession[] = [];
        p.callee.onInvite((session) => {
          sessions.push(session);
          logs.push(watch(session));
          session.provisional(180);
        });
        const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
        const callerLog = watch(call);
        const final = track(call.final);
        await until(() => callerLog.provisional.some((r) => r.status === 180), 'the 180');
        await quiet(() => p.wire.length);
        expect(final.done, 'no final before the CANCEL').to.equal(false);
        call.cancel();

        const response = await settledValue(final, 'the 487');
        expect(response.status).to.equal(487);
        await until(() => callerLog.terminated.length > 0 && (logs[0]?.terminated.length ?? 0) > 0, "'terminated' on both sides");
        await quiet(() => p.wire.length);
        expect(callerLog.terminated).to.deep.equal(['cancelled']);
        expect(logs[0]!.terminated).to.deep.equal(['cancelled']);
        expect(call.state).to.equal('terminated');
        expect(sessions[0]!.state).to.equal('terminated');

        const callId = response.callId;
        const invite = requestsOut(p.wire, callId, 'INVITE')[0]!.message;
        const cancels = requestsOut(p.wire, callId, 'CANCEL');
        expect(cancels, 'CANCELs sent').to.have.length(1);
        const cancel = cancels[0]!.message;
        expect(cancel.requestUriText).to.equal(invite.requestUriText);
        expect(cancel.via[0]!.branch, 'the CANCEL has the INVITE branch (§9.1)').to.equal(invite.via[0]!.branch);
        expect(cancel.cseq).to.deep.include({ seq: invite.cseq.seq, method: 'CANCEL' });
        expect(cancel.to.tag, 'CANCEL To = the INVITE To (no tag)').to.equal(undefined);
        expect(responsesOut(p.wire, callId, 'CANCEL').map((w) => w.message.status)).to.deep.equal([200]);
        const finals = responsesOut(p.wire, callId, 'INVITE').filter((w) => w.message.status >= 200);
        expect(finals.map((w) => w.message.status)).to.deep.equal([487]);
        const ringing = responsesOut(p.wire, callId, 'INVITE', 180)[0]!.message;
        expect(finals[0]!.message.to.tag, 'the 487 has the 180 To tag (§8.2.6.2)').to.equal(ringing.to.tag);
        const acks = requestsIn(p.wire, callId, 'ACK');
        expect(acks, 'ACKs for the 487 at the callee').to.have.length(1);
        expect(acks[0]!.message.via[0]!.branch, 'the non-2xx ACK reuses the INVITE branch').to.equal(invite.via[0]!.branch);
        expect(requestsOut(p.wire, callId, 'BYE')).to.deep.equal([]);

        await drain(p.clock, [p.a, p.b]);
      });

      it('cancel() before any provisional waits for one: the CANCEL follows the 100 Trying (§9.1)', async () => {
        const p = await pair(protocol);
        const logs: SessionLog[] = [];
        p.callee.onInvite((session) => {
          logs.push(watch(session)); // no answer: the INVITE server transaction sends 100 at 200 ms
        });
        const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
        const callerLog = watch(call);
        const final = track(call.final);
        call.cancel();
        await until(() => logs.length === 1, 'the INVITE at the callee');
        await quiet(() => p.wire.length);
        const callId = p.wire.find((w) => w.dir === 'out' && w.message.isRequest && w.message.method === 'INVITE')!.message.callId;
        const provisionalIn = (): number =>
          p.wire.findIndex((w) => w.dir === 'in' && !w.message.isRequest && w.message.status < 200 && callIdOf(w.message) === callId);
        const cancelOut = (): number => p.wire.findIndex((w) => w.dir === 'out' && w.message.isRequest && w.message.method === 'CANCEL' && callIdOf(w.message) === callId);
        if (provisionalIn() === -1) expect(cancelOut(), 'a CANCEL before any provisional response').to.equal(-1);

        await p.clock.step(200);
        const response = await settledValue(final, 'the 487');
        expect(response.status).to.equal(487);
        await until(() => callerLog.terminated.length > 0 && (logs[0]?.terminated.length ?? 0) > 0, "'terminated' on both sides");
        await quiet(() => p.wire.length);
        expect(provisionalIn(), 'a provisional response reached the caller').to.be.at.least(0);
        expect(cancelOut(), 'the CANCEL went out after it').to.be.greaterThan(provisionalIn());
        expect(requestsOut(p.wire, callId, 'CANCEL')).to.have.length(1);
        expect(callerLog.terminated).to.deep.equal(['cancelled']);
        expect(logs[0]!.terminated).to.deep.equal(['cancelled']);

        await drain(p.clock, [p.a, p.b]);
      });

      /**
       * What must hold however a CANCEL/200 race ends: the caller's session ends 'cancelled'
       * (docs/dum.md: "a 200 that races the CANCEL is ACKed and answered with BYE, and the
       * session ends cancelled"); either the 487 path (callee 'cancelled', no 200, no BYE) or the
       * 200 path (ACK with the INVITE's CSeq to the Contact, BYE with CSeq+1, callee 'bye');
       * and nothing is left 64·T1 later.
       */
      async function expectConsistentRace(
        p: Pair,
        call: ClientInviteSession,
        callerLog: SessionLog,
        sessions: ServerInviteSession[],
        logs: SessionLog[],
      ): Promise<'487' | '200'> {
        const final = await settledValue(track(call.final), 'the final response');
        await until(() => callerLog.terminated.length > 0 && (logs[0]?.terminated.length ?? 0) > 0, () => `'terminated' on both sides (final ${final.status})`);
        await quiet(() => p.wire.length);
        const callId = final.callId;
        const invite = requestsOut(p.wire, callId, 'INVITE')[0]!.message;
        expect(callerLog.terminated, 'caller').to.deep.equal(['cancelled']);
        expect(call.state).to.equal('terminated');
        expect(sessions).to.have.length(1);
        expect(sessions[0]!.state).to.equal('terminated');
        expect(requestsOut(p.wire, callId, 'CANCEL'), 'CANCELs sent').to.have.length(1);
        const finals = responsesOut(p.wire, callId, 'INVITE').filter((w) => w.message.status >= 200);
        let outcome: '487' | '200';
        if (final.status === 487) {
          outcome = '487';
          expect(logs[0]!.terminated, 'callee').to.deep.equal(['cancelled']);
          expect([...new Set(finals.map((w) => w.message.status))], 'final responses sent by the callee').to.deep.equal([487]);
          expect(requestsOut(p.wire, callId, 'BYE')).to.deep.equal([]);
        } else {
          outcome = '200';
          expect(final.status, 'the final response: 200 or 487').to.equal(200);
          expect([...new Set(finals.map((w) => w.message.status))], 'final responses sent by the callee').to.deep.equal([200]);
          const acks = requestsOut(p.wire, callId, 'ACK');
          expect(acks, 'the 2xx is ACKed').to.have.length(1);
          expect(acks[0]!.message.cseq).to.deep.include({ seq: invite.cseq.seq, method: 'ACK' });
          expect(acks[0]!.message.requestUri.toString()).to.equal(final.contact[0]!.uri.toString());
          const byes = requestsOut(p.wire, callId, 'BYE');
          expect(byes, 'then a BYE').to.have.length(1);
          expect(byes[0]!.message.cseq).to.deep.include({ seq: invite.cseq.seq + 1, method: 'BYE' });
          expect(byes[0]!.message.requestUri.toString()).to.equal(final.contact[0]!.uri.toString());
          expect(byes[0]!.message.to.tag).to.equal(final.to.tag);
          // ACK and BYE leave in the same tick; RFC 3261 orders neither on the wire (the callee may
          // see the BYE first, and then never 'established'), so only their arrival is required.
          expect(requestsIn(p.wire, callId, 'ACK'), 'the ACK reached the callee').to.have.length(1);
          expect(responsesOut(p.wire, callId, 'BYE').map((w) => w.message.status)).to.deep.equal([200]);
          expect(logs[0]!.terminated, 'callee').to.deep.equal(['bye']);
          expect(logs[0]!.events.at(-1)).to.equal('terminated bye');
        }
        await drain(p.clock, [p.a, p.b]);
        return outcome;
      }

      it('CANCEL racing a 200 (callee accepts right after its 180, caller cancels on the 180): one consistent outcome, nothing dangling (§9.1, §15)', async () => {
        const p = await pair(protocol);
        const logs: SessionLog[] = [];
        const sessions: ServerInviteSession[] = [];
        p.callee.onInvite((session) => {
          sessions.push(session);
          logs.push(watch(session));
          session.provisional(180);
          session.accept({ body: ANSWER_SDP, contentType: SDP });
        });
        const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
        call.once('provisional', () => call.cancel());
        const callerLog = watch(call);
        await expectConsistentRace(p, call, callerLog, sessions, logs);
      });

      it('CANCEL racing a 200 (the caller cancels and the callee accepts in the same tick): one consistent outcome, nothing dangling', async () => {
        const p = await pair(protocol);
        const logs: SessionLog[] = [];
        const sessions: ServerInviteSession[] = [];
        p.callee.onInvite((session) => {
          sessions.push(session);
          logs.push(watch(session));
          session.provisional(180);
        });
        const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
        call.once('provisional', () => {
          call.cancel();
          sessions[0]!.accept({ body: ANSWER_SDP, contentType: SDP });
        });
        const callerLog = watch(call);
        await expectConsistentRace(p, call, callerLog, sessions, logs);
      });

      it('CANCEL wins: an accept() after the CANCEL sends no 200 (DUM_BAD_STATE or nothing); 487 and cancelled on both sides', async () => {
        const p = await pair(protocol);
        const logs: SessionLog[] = [];
        const sessions: ServerInviteSession[] = [];
        p.callee.onInvite((session) => {
          sessions.push(session);
          logs.push(watch(session));
          session.provisional(180);
        });
        const call = p.caller.invite({ to: p.target, body: OFFER_SDP, contentType: SDP });
        call.once('provisional', () => call.cancel());
        const callerLog = watch(call);
        await until(() => (logs[0]?.terminated.length ?? 0) > 0, "the callee's 'terminated'");
        let thrown: unknown;
        try {
          sessions[0]!.accept({ body: ANSWER_SDP, contentType: SDP });
        } catch (error) {
          thrown = error;
        }
        if (thrown !== undefined) {
          expect(thrown).to.be.instanceOf(DumError);
          expect((thrown as DumError).code).to.equal('DUM_BAD_STATE');
        }
        const outcome = await expectConsistentRace(p, call, callerLog, sessions, logs);
        expect(outcome).to.equal('487');
      });

      it('re-INVITE glare: 491, then §14.1 retries (Call-ID owner after 2.1–4 s, the other after 0–2 s, 10 ms steps) both end 200', async () => {
        const p = await pair(protocol);
        const c = await establish(p, {
          callee: (offer) => `callee-answer-to:${offer}`,
          caller: (offer) => `caller-answer-to:${offer}`,
        });
        await quiet(() => p.wire.length);
        const OFFER_A = sdp('alice', 7, 49174);
        const OFFER_B = sdp('bob', 7, 3462);
        const t0 = p.clock.now();
        const fromCaller = track(c.call.reinvite({ body: OFFER_A, contentType: SDP }));
        const fromCallee = track(c.incoming.reinvite({ body: OFFER_B, contentType: SDP }));
        const got491 = (): Wire[] =>
          p.wire.filter((w) => w.dir === 'in' && !w.message.isRequest && w.message.status === 491 && callIdOf(w.message) === c.callId);
        await until(() => got491().length >= 1, 'a 491');
        await quiet(() => p.wire.length);
        const glared = got491();
        expect(glared.length, '491s received').to.be.within(1, 2);

        // Protocol time, one deadline at a time, letting the sockets deliver between.
        const end = t0 + 4100;
        for (let guard = 0; guard < 10_000 && !(fromCaller.done && fromCallee.done); guard++) {
          const next = p.clock.nextDeadline;
          if (next === undefined || next > end) break;
          p.clock.advance(next - p.clock.now());
          await quiet(() => p.wire.length, 20);
        }
        if (p.clock.now() < end) p.clock.advance(end - p.clock.now());
        await quiet(() => p.wire.length);
        expect(fromCaller.done && fromCallee.done, 'both reinvite() promises settled by t0 + 4.1 s').to.equal(true);
        expect(fromCaller.error, "the caller's reinvite()").to.equal(undefined);
        expect(fromCallee.error, "the callee's reinvite()").to.equal(undefined);
        expect(fromCaller.value!.status).to.equal(200);
        expect(fromCallee.value!.status).to.equal(200);
        expect(fromCaller.value!.body.toString('utf8')).to.equal(`callee-answer-to:${OFFER_A}`);
        expect(fromCallee.value!.body.toString('utf8')).to.equal(`caller-answer-to:${OFFER_B}`);
        // A glared re-INVITE is answered by the DUM itself: the application sees each offer once.
        expect(c.calleeLog.reinvites).to.deep.equal([OFFER_A]);
        expect(c.callerLog.reinvites).to.deep.equal([OFFER_B]);

        // Retry timing per side (§14.1), measured from the 491 it got.
        const callerInvites = requestsOut(p.wire, c.callId, 'INVITE', c.callerTag);
        const calleeInvites = requestsOut(p.wire, c.callId, 'INVITE', c.calleeTag);
        const side = (tag: string): Wire | undefined => glared.find((w) => w.message.from.tag === tag);
        const callerGot491 = side(c.callerTag);
        const calleeGot491 = side(c.calleeTag);
        expect(callerInvites.map((w) => w.message.cseq.seq), "caller's INVITE CSeqs").to.deep.equal(
          callerGot491 ? [c.inviteCseq, c.inviteCseq + 1, c.inviteCseq + 2] : [c.inviteCseq, c.inviteCseq + 1],
        );
        expect(calleeInvites.length, "callee's INVITEs").to.equal(calleeGot491 ? 2 : 1);
        if (calleeGot491) expect(calleeInvites[1]!.message.cseq.seq).to.equal(calleeInvites[0]!.message.cseq.seq + 1);
        if (callerGot491) {
          const wait = callerInvites[2]!.at - callerGot491.at;
          expect(wait, 'Call-ID owner retry wait (ms)').to.be.within(2100, 4000);
          expect(wait % 10, 'in 10 ms steps').to.equal(0);
          expect(callerInvites[2]!.message.body.toString('utf8')).to.equal(OFFER_A);
        }
        if (calleeGot491) {
          const wait = calleeInvites[1]!.at - calleeGot491.at;
          expect(wait, 'non-owner retry wait (ms)').to.be.within(0, 2000);
          expect(wait % 10, 'in 10 ms steps').to.equal(0);
          expect(calleeInvites[1]!.message.body.toString('utf8')).to.equal(OFFER_B);
        }
        // The last re-INVITE to complete decides both remote bodies.
        const lastInvite = [...callerInvites, ...calleeInvites].sort((x, y) => p.wire.indexOf(x) - p.wire.indexOf(y)).at(-1)!;
        if (lastInvite.message.from.tag === c.callerTag) {
          expectBody(c.call.remoteBody, `callee-answer-to:${OFFER_A}`, "caller's remoteBody");
          expectBody(c.incoming.remoteBody, OFFER_A, "callee's remoteBody");
        } else {
          expectBody(c.call.remoteBody, OFFER_B, "caller's remoteBody");
          expectBody(c.incoming.remoteBody, `caller-answer-to:${OFFER_B}`, "callee's remoteBody");
        }
        expect(c.call.state).to.equal('established');
        expect(c.incoming.state).to.equal('established');
      });

      it('a request in no dialog gets 481 (an ACK in none is dropped); a CSeq below the last gets 500 and the dialog lives on (§12.2.2)', async () => {
        const p = await pair(protocol);
        const strays: Array<{ method: string; status: number }> = [];
        p.callee.on('stray', (request, status) => strays.push({ method: request.method, status }));
        const calleeUri = p.target;

        // No such dialog: unknown Call-ID and tags.
        const lostId = `lost-${token()}`;
        const bye = await rawRequest(p.a, inDialogHead('BYE', calleeUri, `<sip:alice@127.0.0.1>;tag=${token(4)}`, `<sip:bob@127.0.0.1>;tag=${token(4)}`, lostId, 7));
        expect(bye.status).to.equal(481);
        expect(strays).to.deep.equal([{ method: 'BYE', status: 481 }]);
        const ackId = `lost-ack-${token()}`;
        await p.a.sendStateless(parseMessage(sip(inDialogHead('ACK', calleeUri, `<sip:alice@127.0.0.1>;tag=${token(4)}`, `<sip:bob@127.0.0.1>;tag=${token(4)}`, ackId, 7))));
        await until(() => p.wire.some((w) => w.dir === 'in' && w.message.isRequest && callIdOf(w.message) === ackId), 'the stray ACK at the callee');
        await quiet(() => p.wire.length);
        expect(p.wire.filter((w) => callIdOf(w.message) === ackId && !w.message.isRequest), 'answers to an ACK').to.deep.equal([]);
        expect(strays, 'a dropped ACK is not answered').to.have.length(1);

        // A CSeq lower than the remote's last (§12.2.2): 500, no request event, the dialog intact.
        const c = await establish(p);
        expect((await c.call.request('MESSAGE', { body: 'one', contentType: 'text/plain' })).status).to.equal(200);
        const low = await rawRequest(p.a, inDialogHead('INFO', c.calleeContact, c.ok.header('from')!, c.ok.header('to')!, c.callId, c.inviteCseq));
        expect(low.status, 'CSeq below the last MESSAGE').to.equal(500);
        expect(c.calleeLog.requests.map((r) => r.body)).to.deep.equal(['one']);
        expect(c.incoming.state).to.equal('established');
        expect((await c.call.request('MESSAGE', { body: 'two', contentType: 'text/plain' })).status).to.equal(200);
        expect(c.calleeLog.requests.map((r) => r.body)).to.deep.equal(['one', 'two']);
        expect(c.calleeLog.terminated).to.deep.equal([]);
      });
    });
  }

  describe('2xx retransmission until the ACK (§13.3.1.4), a raw UDP caller on a shared ManualClock', () => {
    // T1, 2T1, 4T1, then T2 (4 s) each time: retransmissions at these times after the first 200.
    const RETRANSMIT_AT = [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500];

    interface Raw {
      clock: SteppingClock;
      stack: SipStack;
      peer: UdpSipPeer;
      sessions: ServerInviteSession[];
      logs: SessionLog[];
      callId: string;
      fromTag: string;
      calleePort: number;
      oks: () => Received[];
    }

    async function rawCall(): Promise<Raw> {
      const clock = new SteppingClock();
      const dnsSink = await bindPeer('dns-sink');
      const stack = await startStack(clock, dnsSink);
      const callee = new DialogUsageManager(stack, { aor: 'sip:bob@127.0.0.1' });
      const sessions: ServerInviteSession[] = [];
      const logs: SessionLog[] = [];
      callee.onInvite((session) => {
        sessions.push(session);
        logs.push(watch(session));
        session.accept({ body: ANSWER_SDP, contentType: SDP });
      });
      const peer = await bindPeer('raw-caller');
      const calleePort = portOf(stack, 'udp');
      const callId = `raw-${token()}@127.0.0.1`;
      const fromTag = token(4);
      await peer.send(
        sip(
          [
            `INVITE sip:bob@127.0.0.1:${calleePort} SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK-${token()};rport`,
            'Max-Forwards: 70',
            `From: <sip:alice@127.0.0.1:${peer.port}>;tag=${fromTag}`,
            `To: <sip:bob@127.0.0.1:${calleePort}>`,
            `Call-ID: ${callId}`,
            'CSeq: 1 INVITE',
            `Contact: <sip:alice@127.0.0.1:${peer.port}>`,
            `Content-Type: ${SDP}`,
            'Content-Length: {CL}',
          ],
          OFFER_SDP,
        ),
        calleePort,
      );
      const oks = (): Received[] =>
        peer.received.filter((r) => r.message !== undefined && !r.message.isRequest && r.message.status === 200 && r.message.cseq.method === 'INVITE');
      await until(() => oks().length === 1, 'the first 200');
      return { clock, stack, peer, sessions, logs, callId, fromTag, calleePort, oks };
    }

    /** Moves the clock to each retransmission time: nothing 1 ms before it, exactly one more at it. */
    async function expectRetransmissions(r: Raw, times: number[]): Promise<void> {
      for (const at of times) {
        const before = r.oks().length;
        r.clock.advance(at - 1 - r.clock.now());
        await quiet(() => r.peer.received.length, 25);
        expect(r.oks().length, `200s by ${at - 1} ms`).to.equal(before);
        r.clock.advance(1);
        await until(() => r.oks().length === before + 1, `the 200 retransmitted at ${at} ms`, 2000);
      }
    }

    it('retransmits the 200 at T1, 2T1, 4T1… capped at T2, and stops once the ACK comes', async () => {
      const r = await rawCall();
      expect(r.sessions).to.have.length(1);
      await expectRetransmissions(r, RETRANSMIT_AT.slice(0, 3)); // 500, 1500, 3500
      const ok = r.oks()[0]!.message!;
      for (const copy of r.oks()) expect(copy.bytes.equals(r.oks()[0]!.bytes), 'a retransmission is the same 200').to.equal(true);
      expect(ok.to.tag).to.be.a('string').and.not.equal('');
      expect(ok.body.toString('utf8')).to.equal(ANSWER_SDP);

      await r.peer.send(
        sip([
          `ACK ${ok.contact[0]!.uri.toString()} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${r.peer.port};branch=z9hG4bK-${token()};rport`,
          'Max-Forwards: 70',
          `From: ${ok.header('from')!}`,
          `To: ${ok.header('to')!}`,
          `Call-ID: ${r.callId}`,
          'CSeq: 1 ACK',
          'Content-Length: 0',
        ]),
        r.calleePort,
      );
      await until(() => r.logs[0]!.established.length === 1, "'established' on the ACK");

      for (const at of [...RETRANSMIT_AT.slice(3), 40_000]) {
        r.clock.advance(at - r.clock.now());
        await quiet(() => r.peer.received.length, 25);
      }
      expect(r.oks(), '200s in all: the first and three retransmissions').to.have.length(4);
      expect(r.peer.received.filter((x) => x.message?.isRequest), 'requests to the caller (no BYE)').to.deep.equal([]);
      expect(r.logs[0]!.events).to.deep.equal(['established']);
      expect(r.sessions[0]!.state).to.equal('established');
      expect(r.stack.transactionCount, 'transactions 40 s later').to.equal(0);
      expect(r.stack.timerCount, 'timers 40 s later').to.equal(0);
    });

    it("without an ACK for 64·T1: 10 retransmissions, then a BYE and 'terminated' no-ack", async () => {
      const r = await rawCall();
      await expectRetransmissions(r, RETRANSMIT_AT);
      r.clock.advance(64 * T1 - 1 - r.clock.now());
      await quiet(() => r.peer.received.length, 25);
      expect(r.oks(), '200s by 64·T1 − 1 ms').to.have.length(1 + RETRANSMIT_AT.length);
      const isBye = (x: Received): boolean => x.message?.isRequest === true && x.message.method === 'BYE';
      expect(r.peer.received.filter(isBye), 'BYE before 64·T1').to.deep.equal([]);
      expect(r.logs[0]!.terminated).to.deep.equal([]);

      r.clock.advance(1);
      await until(() => r.peer.received.some(isBye), 'the BYE at 64·T1', 2000);
      const byeItem = r.peer.received.find(isBye)!;
      const bye = byeItem.message!;
      const ok = r.oks()[0]!.message!;
      expect(bye.requestUri.toString(), 'to the remote target: the INVITE Contact').to.equal(`sip:alice@127.0.0.1:${r.peer.port}`);
      expect(bye.callId).to.equal(r.callId);
      expect(bye.from.tag).to.equal(ok.to.tag);
      expect(bye.to.tag).to.equal(r.fromTag);
      expect(bye.cseq.method).to.equal('BYE');
      await r.peer.send(
        sip([
          'SIP/2.0 200 OK',
          ...bye.headers('via').map((v) => `Via: ${v}`),
          `From: ${bye.header('from')!}`,
          `To: ${bye.header('to')!}`,
          `Call-ID: ${bye.callId}`,
          `CSeq: ${bye.cseq.seq} BYE`,
          'Content-Length: 0',
        ]),
        byeItem.from.port,
      );
      await until(() => r.logs[0]!.terminated.length > 0, "'terminated'");
      expect(r.logs[0]!.terminated).to.deep.equal(['no-ack']);
      expect(r.logs[0]!.established).to.deep.equal([]);
      expect(r.sessions[0]!.state).to.equal('terminated');
      await quiet(() => r.peer.received.length, 25);
      expect(r.oks(), 'no 200 after the BYE').to.have.length(1 + RETRANSMIT_AT.length);
      expect(r.peer.received.filter(isBye), 'one BYE (answered)').to.have.length(1);
      await drain(r.clock, [r.stack]);
    });
  });

  describe('route set (§12.1.2, §12.2.1.1): a raw UDP callee that Record-Routes', () => {
    interface Routed {
      clock: SteppingClock;
      stack: SipStack;
      dnsSink: UdpSipPeer;
      peer: UdpSipPeer;
      decoy: UdpSipPeer;
      call: ClientInviteSession;
      log: SessionLog;
      invite: SipMessage;
    }

    /** The DUM calls the raw peer; its 200 carries `recordRoute` and a Contact at the decoy. */
    async function routedCall(recordRoute: (peerPort: number) => string): Promise<Routed> {
      const clock = new SteppingClock();
      const dnsSink = await bindPeer('dns-sink');
      const stack = await startStack(clock, dnsSink);
      const caller = new DialogUsageManager(stack, { aor: 'sip:alice@127.0.0.1' });
      const peer = await bindPeer('raw-callee');
      const decoy = await bindPeer('contact-decoy');
      const call = caller.invite({ to: `sip:bob@127.0.0.1:${peer.port}`, body: OFFER_SDP, contentType: SDP });
      const log = watch(call);
      await until(() => peer.received.some((x) => x.message?.method === 'INVITE'), 'the INVITE at the raw callee');
      const item = peer.received.find((x) => x.message?.method === 'INVITE')!;
      const invite = item.message!;
      await peer.send(
        sip(
          [
            'SIP/2.0 200 OK',
            ...invite.headers('via').map((v) => `Via: ${v}`),
            `Record-Route: ${recordRoute(peer.port)}`,
            `From: ${invite.header('from')!}`,
            `To: ${invite.header('to')!};tag=rr-callee`,
            `Call-ID: ${invite.callId}`,
            `CSeq: ${invite.cseq.seq} INVITE`,
            `Contact: <sip:bob@127.0.0.1:${decoy.port}>`,
            `Content-Type: ${SDP}`,
            'Content-Length: {CL}',
          ],
          ANSWER_SDP,
        ),
        item.from.port,
      );
      return { clock, stack, dnsSink, peer, decoy, call, log, invite };
    }

    async function ackAndBye(r: Routed): Promise<{ ack: SipMessage; bye: SipMessage }> {
      const isAck = (x: Received): boolean => x.message?.isRequest === true && x.message.method === 'ACK';
      const isBye = (x: Received): boolean => x.message?.isRequest === true && x.message.method === 'BYE';
      await until(
        () => r.peer.received.some(isAck),
        () => `the ACK at the first route (meanwhile the DNS sink got ${r.dnsSink.received.length} queries, the Contact decoy ${r.decoy.received.length} datagrams)`,
      );
      expect((await settledValue(track(r.call.final), 'the final')).status).to.equal(200);
      await until(() => r.log.established.length === 1, "'established'");
      const done = track(r.call.bye());
      await until(
        () => r.peer.received.some(isBye),
        () => `the BYE at the first route (meanwhile the DNS sink got ${r.dnsSink.received.length} queries, the Contact decoy ${r.decoy.received.length} datagrams)`,
      );
      const byeItem = r.peer.received.find(isBye)!;
      const bye = byeItem.message!;
      await r.peer.send(
        sip([
          'SIP/2.0 200 OK',
          ...bye.headers('via').map((v) => `Via: ${v}`),
          `From: ${bye.header('from')!}`,
          `To: ${bye.header('to')!}`,
          `Call-ID: ${bye.callId}`,
          `CSeq: ${bye.cseq.seq} BYE`,
          'Content-Length: 0',
        ]),
        byeItem.from.port,
      );
      await settledValue(done, 'bye()');
      await until(() => r.log.terminated.length > 0, "'terminated'");
      await quiet(() => r.peer.received.length + r.decoy.received.length, 40);
      expect(r.peer.received.filter(isAck), 'ACKs').to.have.length(1);
      expect(r.peer.received.filter(isBye), 'BYEs').to.have.length(1);
      expect(r.log.terminated).to.deep.equal(['local-bye']);
      expect(r.decoy.received, 'nothing goes to the Contact while a route set is in front of it').to.deep.equal([]);
      expect(r.dnsSink.received, 'no DNS lookup (p2.example.com is never the next hop)').to.deep.equal([]);
      const ack = r.peer.received.find(isAck)!.message!;
      for (const m of [ack, bye]) {
        expect(m.callId).to.equal(r.invite.callId);
        expect(m.from.tag).to.equal(r.invite.from.tag);
        expect(m.to.tag).to.equal('rr-callee');
      }
      expect(ack.cseq).to.deep.include({ seq: r.invite.cseq.seq, method: 'ACK' });
      expect(bye.cseq).to.deep.include({ seq: r.invite.cseq.seq + 1, method: 'BYE' });
      return { ack, bye };
    }

    it('loose routing: Record-Route reversed into Route, Request-URI = the Contact, sent to the first Route', async () => {
      const r = await routedCall((port) => `<sip:p2.example.com;lr>, <sip:127.0.0.1:${port};lr>`);
      const { ack, bye } = await ackAndBye(r);
      for (const m of [ack, bye]) {
        expect(m.requestUriText, `${m.method} Request-URI`).to.equal(`sip:bob@127.0.0.1:${r.decoy.port}`);
        expect(m.headers('route'), `${m.method} Route`).to.deep.equal([`<sip:127.0.0.1:${r.peer.port};lr>`, '<sip:p2.example.com;lr>']);
      }
      await drain(r.clock, [r.stack]);
    });

    it('strict routing (first route without lr): Request-URI = that route, the Contact last in Route', async () => {
      const r = await routedCall((port) => `<sip:p2.example.com;lr>, <sip:127.0.0.1:${port}>`);
      const { ack, bye } = await ackAndBye(r);
      for (const m of [ack, bye]) {
        expect(m.requestUriText, `${m.method} Request-URI`).to.equal(`sip:127.0.0.1:${r.peer.port}`);
        expect(m.headers('route'), `${m.method} Route`).to.deep.equal(['<sip:p2.example.com;lr>', `<sip:bob@127.0.0.1:${r.decoy.port}>`]);
      }
      await drain(r.clock, [r.stack]);
    });
  });
});
