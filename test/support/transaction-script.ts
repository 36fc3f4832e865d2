// Transaction-layer tests as scripts (reSIProcate's style: inject wire / expect TU): one SipStack on
// a LoopbackTransport and a SteppingClock, driven step by step.
//
//   { wire: bytes }                       a message arrives from the network (from PEER by default)
//   { send: message }                     the client TU sends a request (stack.request)
//   { tu: (req) => req.respond(180) }     the server TU acts on the newest request it was given
//   { expectWire: 'SIP/2.0 180 Ringing' } the next message the stack sent, exactly: a string is the
//                                         whole start line, a RegExp is tested on the whole text, a
//                                         function gets { message, text, record } and may throw
//   { expectTu: 'INVITE' | 'final 408' }  the next thing the TUs saw ('provisional 180', '2xx 200', …)
//   { advance: ms } / { advanceTo: ms }   virtual time, stopping at every timer on the way
//   { expectNothing: true }               nothing sent and nothing delivered that was not expected
//
// Sent messages carry their virtual send time, so `{ expectWire: …, at: 1500 }` pins a
// retransmission to the millisecond.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { expect } from 'chai';
import {
  SipStack,
  createRequest,
  createResponse,
  parseMessage,
  type ClientRequest,
  type ServerRequest,
  type SipMessage,
  type Target,
  type TransactionUser,
  type Tuple,
  type ValidationOptions,
} from '../../src/index.js';
import { LoopbackTransport, type LoopbackProtocol, type SentRecord } from './loopback-transport.js';
import { settle, SteppingClock } from './stepping-clock.js';

/** The far end in scripted tests (TEST-NET-1). */
export const PEER = { address: '192.0.2.10', port: 5060 } as const;
/** The stack's own address. */
export const LOCAL = { address: '127.0.0.1', port: 5070 } as const;

// ---------------------------------------------------------------------------------------------
// What the TUs see
// ---------------------------------------------------------------------------------------------

export type TuEvent =
  | { kind: 'request'; at: number; request: ServerRequest; message: SipMessage }
  | { kind: 'provisional' | 'final' | '2xx'; at: number; response: SipMessage; handle: ClientRequest };

export function summary(event: TuEvent): string {
  return event.kind === 'request' ? event.message.method : `${event.kind} ${event.response.status}`;
}

export interface Wire {
  record: SentRecord;
  message: SipMessage;
  text: string;
  startLine: string;
}

export function toWire(record: SentRecord): Wire {
  const text = record.bytes.toString('utf8');
  const end = text.indexOf('\r\n');
  return { record, message: parseMessage(record.bytes), text, startLine: end < 0 ? text : text.slice(0, end) };
}

// ---------------------------------------------------------------------------------------------
// Building messages from the network
// ---------------------------------------------------------------------------------------------

let counter = 0;
function next(prefix: string): string {
  counter += 1;
  return `${prefix}${counter}`;
}

export interface RequestSpec {
  method: string;
  /** Default a fresh z9hG4bK branch; null leaves the branch parameter out (RFC 2543). */
  branch?: string | null;
  cseq?: number;
  /** The CSeq method (default the request's). */
  cseqMethod?: string;
  /** The whole CSeq value, to write something broken. */
  cseqRaw?: string;
  callId?: string;
  fromTag?: string;
  toTag?: string;
  uri?: string;
  /** Via sent-by, default PEER. */
  sentBy?: string;
  /** Via transport, default by the harness (UDP / TCP). */
  transport?: string;
  extra?: string[];
  body?: string;
}

/** Fills the random parts of a spec once, so every `wireRequest(spec)` is a byte-identical retransmission. */
export function spec(init: RequestSpec): Required<Pick<RequestSpec, 'method' | 'cseq' | 'callId' | 'fromTag'>> & RequestSpec {
  return {
    ...init,
    branch: init.branch === undefined ? next('z9hG4bK-script-') : init.branch,
    cseq: init.cseq ?? 1,
    callId: init.callId ?? `${next('call-')}@192.0.2.10`,
    fromTag: init.fromTag ?? next('ft'),
  };
}

export function wireRequest(s: RequestSpec, transport = 'UDP'): Buffer {
  const method = s.method;
  const branch = s.branch === null ? '' : `;branch=${s.branch ?? next('z9hG4bK-script-')}`;
  const head = [
    `${method} ${s.uri ?? `sip:bob@${LOCAL.address}:${LOCAL.port}`} SIP/2.0`,
    `Via: SIP/2.0/${s.transport ?? transport} ${s.sentBy ?? `${PEER.address}:${PEER.port}`}${branch}`,
    'Max-Forwards: 70',
    `From: <sip:alice@example.test>;tag=${s.fromTag ?? 'ft'}`,
    `To: <sip:bob@example.test>${s.toTag ? `;tag=${s.toTag}` : ''}`,
    `Call-ID: ${s.callId ?? 'call@192.0.2.10'}`,
    `CSeq: ${s.cseqRaw ?? `${s.cseq ?? 1} ${s.cseqMethod ?? method}`}`,
    ...(s.extra ?? []),
  ];
  const body = Buffer.from(s.body ?? '', 'utf8');
  if (body.length > 0 && !head.some((l) => /^content-type:/i.test(l))) head.push('Content-Type: text/plain');
  head.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'utf8'), body]);
}

/** §17.1.1.3: the ACK a client transaction sends for a non-2xx final response to `invite`. */
export function wireAck(invite: RequestSpec, toTag: string | undefined, transport = 'UDP'): Buffer {
  return wireRequest({ ...invite, method: 'ACK', cseqMethod: 'ACK', toTag, body: '', extra: [] }, transport);
}

/** §9.1: the CANCEL for `invite` (same branch, Request-URI, Call-ID, From, To, CSeq number). */
export function wireCancel(invite: RequestSpec, transport = 'UDP'): Buffer {
  return wireRequest({ ...invite, method: 'CANCEL', cseqMethod: 'CANCEL', body: '', extra: [] }, transport);
}

/** A response to a request the stack sent; byte-identical for the same arguments. */
export function wireResponse(
  request: SipMessage,
  status: number,
  opts: { toTag?: string; reason?: string; cseqMethod?: string; branch?: string; extra?: Record<string, string> } = {},
): Buffer {
  const response = createResponse(request, status, opts.reason, {
    toTag: status === 100 ? undefined : (opts.toTag ?? 'remote-tag'),
    headers: opts.extra,
  });
  let text = response.toBuffer().toString('utf8');
  if (opts.cseqMethod) text = text.replace(/^CSeq: (\d+) \S+/m, `CSeq: $1 ${opts.cseqMethod}`);
  if (opts.branch) text = text.replace(/;branch=[^;,\s]+/, `;branch=${opts.branch}`);
  return Buffer.from(text, 'utf8');
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

export interface HarnessOptions {
  protocol: LoopbackProtocol;
  t1?: number;
  t2?: number;
  t4?: number;
  /** 'default' (a recording default TU), 'none', or TUs with filters added by the caller. */
  tu?: 'default' | 'none';
  tuQueueLimitMs?: number;
  validation?: ValidationOptions;
}

const live = new Set<Harness>();

export class Harness {
  readonly clock = new SteppingClock();
  readonly transport: LoopbackTransport;
  readonly stack: SipStack;
  readonly events: TuEvent[] = [];
  readonly reliable: boolean;
  readonly protocol: LoopbackProtocol;
  /** Via transport token for messages from PEER. */
  readonly via: string;
  wireCursor = 0;
  tuCursor = 0;
  /** Everything read with expectWire, in order. */
  readonly seen: Wire[] = [];
  /** Client requests sent with `send`, newest last. */
  readonly handles: ClientRequest[] = [];
  /** Whatever a script wants to keep between steps. */
  readonly vars: Record<string, unknown> = {};
  /** Called for every request the default TU gets, after it is recorded. */
  onRequest: ((request: ServerRequest) => void) | undefined;
  stopped = false;
  /** Every transaction state change published on `parley:transaction:state` while this harness ran. */
  readonly transitions: Array<{ id: string; kind: string; from: string; to: string; at: number }> = [];
  private readonly onState = (data: unknown): void => {
    const d = data as { id: string; kind: string; from: string; to: string };
    this.transitions.push({ id: d.id, kind: d.kind, from: d.from, to: d.to, at: this.clock.now() });
  };

  constructor(readonly options: HarnessOptions) {
    this.protocol = options.protocol;
    this.reliable = options.protocol !== 'udp';
    this.via = options.protocol.toUpperCase();
    this.transport = new LoopbackTransport({ protocol: options.protocol, ...LOCAL, clock: this.clock });
    this.stack = new SipStack({
      transports: [this.transport],
      clock: this.clock,
      t1: options.t1,
      t2: options.t2,
      t4: options.t4,
      tuQueueLimitMs: options.tuQueueLimitMs,
      validation: options.validation,
    });
    this.transport.attach(this.stack.sink);
    if ((options.tu ?? 'default') === 'default') this.stack.setDefaultTu(this.tu());
  }

  /** A TU that records every request it gets into `events`. */
  tu(hook?: (request: ServerRequest) => void): TransactionUser {
    return {
      onRequest: (request) => {
        this.events.push({ kind: 'request', at: this.clock.now(), request, message: request.message });
        hook?.(request);
        this.onRequest?.(request);
      },
    };
  }

  async start(): Promise<this> {
    await this.transport.start();
    await this.stack.start();
    subscribe('parley:transaction:state', this.onState);
    live.add(this);
    return this;
  }

  /** The far end as a transport tuple. */
  get peer(): Tuple {
    return { protocol: this.protocol, address: PEER.address, port: PEER.port };
  }

  /** Where client requests are sent. */
  get target(): Target {
    return { ...this.peer };
  }

  inject(bytes: Buffer | string, from: { address: string; port: number } = PEER): void {
    this.transport.inject(bytes, from);
  }

  request(s: RequestSpec): Buffer {
    return wireRequest(s, this.via);
  }

  ack(invite: RequestSpec, toTag: string | undefined): Buffer {
    return wireAck(invite, toTag, this.via);
  }

  cancel(invite: RequestSpec): Buffer {
    return wireCancel(invite, this.via);
  }

  /** A request for the client side (stack.request), toward PEER. */
  outgoing(method: string, init: { cseq?: number; headers?: Record<string, string>; body?: string } = {}): SipMessage {
    return createRequest({
      method,
      uri: `sip:bob@${PEER.address}:${PEER.port}${this.reliable ? ';transport=tcp' : ''}`,
      from: '<sip:alice@example.test>',
      to: '<sip:bob@example.test>',
      via: `SIP/2.0/${this.via} 0.0.0.0`,
      cseq: init.cseq ?? 1,
      headers: init.headers,
      body: init.body,
      contentType: init.body ? 'text/plain' : undefined,
    });
  }

  /** Sends a request through the stack and records what its handle reports. */
  send(message: SipMessage, target: Target = this.target): ClientRequest {
    const handle = this.stack.request(message, { target });
    handle.onProvisional((response) => this.events.push({ kind: 'provisional', at: this.clock.now(), response, handle }));
    handle.on2xx((response) => this.events.push({ kind: '2xx', at: this.clock.now(), response, handle }));
    void handle.final.then((response) => this.events.push({ kind: 'final', at: this.clock.now(), response, handle }));
    this.handles.push(handle);
    return handle;
  }

  /** The first message the stack sent with this method (a request it sent as a client). */
  sentRequest(method: string): SipMessage {
    for (const record of this.transport.sent) {
      const wire = toWire(record);
      if (wire.message.isRequest && wire.message.method === method) return wire.message;
    }
    throw new Error(`the stack sent no ${method}`);
  }

  /** A response from PEER to the request the stack sent with this method. */
  respond(method: string, status: number, opts: Parameters<typeof wireResponse>[2] = {}): Buffer {
    return wireResponse(this.sentRequest(method), status, opts);
  }

  /** The newest request the TU was given (not ACK or CANCEL unless asked for). */
  tuRequest(method?: string): ServerRequest {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.kind !== 'request') continue;
      const m = e.message.method;
      if (method ? m === method : m !== 'ACK' && m !== 'CANCEL') return e.request;
    }
    throw new Error(`the TU was given no ${method ?? 'request'}`);
  }

  /** Sent records not yet read. */
  unreadWire(): SentRecord[] {
    return this.transport.sent.slice(this.wireCursor);
  }

  unreadTu(): TuEvent[] {
    return this.events.slice(this.tuCursor);
  }

  async nextWire(label: string): Promise<Wire> {
    await settle();
    const record = this.transport.sent[this.wireCursor];
    if (!record) throw new Error(`${label}: nothing more was sent (clock at ${this.clock.now()} ms)`);
    this.wireCursor += 1;
    const wire = toWire(record);
    this.seen.push(wire);
    return wire;
  }

  async nextTu(label: string): Promise<TuEvent> {
    await settle();
    const event = this.events[this.tuCursor];
    if (!event) throw new Error(`${label}: the TU saw nothing more (clock at ${this.clock.now()} ms)`);
    this.tuCursor += 1;
    return event;
  }

  /** Skips over every unread wire message and TU event. */
  async drain(): Promise<void> {
    await settle();
    this.wireCursor = this.transport.sent.length;
    this.tuCursor = this.events.length;
  }

  /** The states the newest transaction of this kind went through, its initial state first. */
  statePath(kind: string): string[] {
    const ids = [...new Set(this.transitions.filter((t) => t.kind === kind).map((t) => t.id))];
    const id = ids.at(-1);
    if (id === undefined) return [];
    const mine = this.transitions.filter((t) => t.id === id);
    return [mine[0]!.from, ...mine.map((t) => t.to)];
  }

  describeUnread(): string {
    const wires = this.unreadWire().map((r) => `  wire @${r.at}: ${toWire(r).startLine}`);
    const tus = this.unreadTu().map((e) => `  tu @${e.at}: ${summary(e)}`);
    return [...wires, ...tus].join('\n');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    unsubscribe('parley:transaction:state', this.onState);
    await this.stack.stop();
  }
}

export async function harness(options: HarnessOptions): Promise<Harness> {
  return new Harness(options).start();
}

/**
 * The memory rule, for afterEach: once virtual time has run past every timer, no transaction and
 * no timer is left on any stack a test made. Stops the stacks either way.
 */
export async function checkNoLeftovers(horizonMs = 10 * 60_000): Promise<void> {
  await stopAll(horizonMs, true);
}

/** Stops every stack still running (afterEach), without judging what is left. */
export async function cleanupHarnesses(): Promise<void> {
  await stopAll(0, false);
}

/**
 * A mocha test whose body is followed by the memory check, reported as this test's failure (a
 * failing afterEach hook would skip the rest of the suite). The body's own error wins.
 */
export function txIt(title: string, body: () => Promise<void>): Mocha.Test {
  return it(title, async function () {
    let failure: unknown;
    try {
      await body();
    } catch (error) {
      failure = error;
    }
    try {
      await checkNoLeftovers();
    } catch (error) {
      failure ??= error;
    }
    if (failure !== undefined) throw failure;
  });
}

async function stopAll(horizonMs: number, judge: boolean): Promise<void> {
  const harnesses = [...live];
  const problems: string[] = [];
  for (const h of harnesses) {
    try {
      if (!judge) continue;
      await h.clock.step(horizonMs, 4);
      if (h.stack.transactionCount !== 0 || h.stack.timerCount !== 0) {
        problems.push(
          `${h.protocol} stack: ${h.stack.transactionCount} transaction(s) and ${h.stack.timerCount} timer(s) left ${horizonMs} ms after the test`,
        );
      }
    } finally {
      await h.stop();
    }
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

type Matcher<T> = string | RegExp | ((value: T) => unknown);
type WireInput = Buffer | string | ((h: Harness) => Buffer | string);

export type Step =
  | { wire: WireInput; from?: { address: string; port: number }; label?: string }
  | { send: SipMessage | ((h: Harness) => SipMessage); target?: Target; label?: string }
  | { tu: (request: ServerRequest, h: Harness) => void; method?: string; label?: string }
  | { expectWire: Matcher<Wire>; at?: number; label?: string }
  | { expectTu: Matcher<TuEvent>; at?: number; label?: string }
  | { advance: number }
  | { advanceTo: number }
  | { expectNothing: true; label?: string }
  | { expectTransactions: number; label?: string }
  /** The newest transaction of `kind` went through exactly these states (diagnostics channel). */
  | { expectStates: [kind: string, ...states: string[]]; label?: string }
  | { do: (h: Harness) => unknown; label?: string };

function describeMatcher<T>(m: Matcher<T>): string {
  if (typeof m === 'string') return JSON.stringify(m);
  if (m instanceof RegExp) return String(m);
  return m.name ? `${m.name}()` : 'a predicate';
}

function check<T>(matcher: Matcher<T>, value: T, text: string, label: string): void {
  if (typeof matcher === 'string') {
    expect(text, label).to.equal(matcher);
  } else if (matcher instanceof RegExp) {
    expect(matcher.test(text), `${label}: ${String(matcher)} does not match ${JSON.stringify(text.slice(0, 400))}`).to.equal(true);
  } else {
    const result = matcher(value);
    if (result === false) expect.fail(`${label}: the predicate refused ${JSON.stringify(text.slice(0, 400))}`);
  }
}

/** Runs a script against a harness. */
export async function run(h: Harness, steps: Step[]): Promise<void> {
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    const label = `step ${i + 1}${'label' in step && step.label ? ` (${step.label})` : ''} at ${h.clock.now()} ms`;
    if ('wire' in step) {
      const input = typeof step.wire === 'function' ? step.wire(h) : step.wire;
      h.inject(input, step.from);
      await settle();
    } else if ('send' in step) {
      h.send(typeof step.send === 'function' ? step.send(h) : step.send, step.target);
      await settle();
    } else if ('tu' in step) {
      await settle();
      step.tu(h.tuRequest(step.method), h);
      await settle();
    } else if ('expectWire' in step) {
      const wire = await h.nextWire(`${label}: expected ${describeMatcher(step.expectWire)} on the wire`);
      const text = typeof step.expectWire === 'string' ? wire.startLine : wire.text;
      check(step.expectWire, wire, text, `${label}: wire`);
      if (step.at !== undefined) expect(wire.record.at, `${label}: send time of ${wire.startLine}`).to.equal(step.at);
    } else if ('expectTu' in step) {
      const event = await h.nextTu(`${label}: expected ${describeMatcher(step.expectTu)} at the TU`);
      check(step.expectTu, event, summary(event), `${label}: TU`);
      if (step.at !== undefined) expect(event.at, `${label}: time the TU saw ${summary(event)}`).to.equal(step.at);
    } else if ('advance' in step) {
      await h.clock.step(step.advance);
    } else if ('advanceTo' in step) {
      await h.clock.stepTo(step.advanceTo);
    } else if ('expectNothing' in step) {
      await settle();
      const unread = h.describeUnread();
      if (unread) expect.fail(`${label}: expected nothing more, but:\n${unread}`);
    } else if ('expectTransactions' in step) {
      await settle();
      expect(h.stack.transactionCount, `${label}: live transactions`).to.equal(step.expectTransactions);
    } else if ('expectStates' in step) {
      await settle();
      const [kind, ...states] = step.expectStates;
      expect(h.statePath(kind), `${label}: ${kind} states`).to.deep.equal(states);
    } else if ('do' in step) {
      await step.do(h);
      await settle();
    }
  }
}
