// An in-memory Transport for transaction-layer tests (pjsip's loopback transport): nothing touches
// a socket. Every message the stack sends is recorded (bytes, target, tid, virtual time); a test
// injects messages "from the network" with `inject`, or wires two loopback transports through a
// `LoopbackNetwork`, where knobs drop, delay (on the injected clock), duplicate and fail sends.
//
// protocol 'udp' is unreliable (no connections), 'tcp' reliable: messages arrive on connections
// with ids, responses go back on them (RFC 3261 §18.2.2), `hasConnection` / `sendOnConnection` work.
import {
  acceptDatagram,
  parseMessage,
  stampReceived,
  SipParseError,
  TransportError,
  type Clock,
  type SipMessage,
  type Sink,
  type Transport,
  type TransportErrorCode,
  type TransportEvent,
  type Tuple,
} from '../../src/index.js';
import { mulberry32, type Rng } from './random.js';

export type LoopbackProtocol = 'udp' | 'tcp';

/** One message the transport was asked to send. */
export interface SentRecord {
  /** Order across every loopback transport in the process. */
  readonly seq: number;
  /** clock.now() when the stack called send/sendOnConnection. */
  readonly at: number;
  readonly bytes: Buffer;
  readonly target: Tuple;
  readonly tid: string | undefined;
  /** The connection it went out on (tcp). */
  readonly connectionId: number | undefined;
  /** 'send' or 'connection' (sendOnConnection). */
  readonly how: 'send' | 'connection';
  /** What happened to it. */
  outcome: 'recorded' | 'delivered' | 'dropped' | 'delayed' | 'failed' | 'unrouted';
  /** Whether the transport itself answered (a 400 for a truncated datagram), not the stack. */
  readonly byTransport: boolean;
}

/** A probability in [0, 1] (drawn from the seeded PRNG) or a predicate on the record. */
export type Chance = number | ((record: SentRecord) => boolean);
/** Milliseconds (0 = at once) or a function of the record; needs a clock when not 0. */
export type Delay = number | ((record: SentRecord) => number);

export interface LoopbackOptions {
  protocol?: LoopbackProtocol;
  address?: string;
  /** 0 (default) picks a unique port at start(). */
  port?: number;
  /** Where received messages and send failures go; can be given later with `attach`. */
  sink?: Sink<TransportEvent>;
  /** Times records and runs delays. */
  clock?: Clock;
  network?: LoopbackNetwork;
  /** Seeds the PRNG behind probability knobs. */
  seed?: number;
  drop?: Chance;
  duplicate?: Chance;
  delay?: Delay;
}

interface Connection {
  readonly id: number;
  readonly remote: Tuple;
  open: boolean;
  /** The other end, when it is a loopback transport on the network. */
  peer: { transport: LoopbackTransport; connectionId: number } | undefined;
}

let nextSeq = 1;
let nextConnectionId = 70_001;
let nextPort = 41_000;

function key(t: Tuple): string {
  return `${t.protocol}|${t.address}|${t.port}`;
}

/** Loopback transports that can reach each other by their local tuple. */
export class LoopbackNetwork {
  private readonly bound = new Map<string, LoopbackTransport>();

  register(transport: LoopbackTransport): void {
    this.bound.set(key(transport.local), transport);
  }

  unregister(transport: LoopbackTransport): void {
    if (this.bound.get(key(transport.local)) === transport) this.bound.delete(key(transport.local));
  }

  find(target: Tuple): LoopbackTransport | undefined {
    return this.bound.get(key(target));
  }
}

export class LoopbackTransport implements Transport {
  readonly protocol: LoopbackProtocol;
  readonly reliable: boolean;
  /** Every message sent, in order. */
  readonly sent: SentRecord[] = [];
  /** Every event pushed to the sink, in order. */
  readonly events: TransportEvent[] = [];
  drop: Chance | undefined;
  duplicate: Chance | undefined;
  delay: Delay | undefined;
  rng: Rng;
  private bound: Tuple;
  private sink: Sink<TransportEvent> | undefined;
  private readonly clock: Clock | undefined;
  private readonly network: LoopbackNetwork | undefined;
  private readonly connections = new Map<number, Connection>();
  private readonly byRemote = new Map<string, number>();
  private readonly failures: TransportErrorCode[] = [];
  private started = false;
  private closed = false;
  private nextEphemeral = 50_000;
  /** Messages the sink was given before it existed. */
  private readonly early: TransportEvent[] = [];

  constructor(options: LoopbackOptions = {}) {
    this.protocol = options.protocol ?? 'udp';
    this.reliable = this.protocol !== 'udp';
    this.bound = { protocol: this.protocol, address: options.address ?? '127.0.0.1', port: options.port ?? 0 };
    this.sink = options.sink;
    this.clock = options.clock;
    this.network = options.network;
    this.rng = mulberry32(options.seed ?? 1);
    this.drop = options.drop;
    this.duplicate = options.duplicate;
    this.delay = options.delay;
  }

  get local(): Tuple {
    return this.bound;
  }

  /** The sink the stack gives this transport (if the stack attaches sinks after construction). */
  attach(sink: Sink<TransportEvent>): void {
    this.sink = sink;
    for (const event of this.early.splice(0)) sink.push(event);
  }

  setSink(sink: Sink<TransportEvent>): void {
    this.attach(sink);
  }

  get isStarted(): boolean {
    return this.started && !this.closed;
  }

  async start(): Promise<void> {
    if (this.bound.port === 0) this.bound = { ...this.bound, port: nextPort++ };
    this.started = true;
    this.closed = false;
    this.network?.register(this);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.network?.unregister(this);
    for (const c of this.connections.values()) c.open = false;
  }

  /** The next send (send or sendOnConnection) rejects with a TransportError of this code. */
  failNext(code: TransportErrorCode = 'TRANSPORT_REFUSED', times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(code);
  }

  // ---- the Transport interface -----------------------------------------------------------

  send(bytes: Buffer, target: Tuple, tid?: string): Promise<number | undefined> {
    let connection: Connection | undefined;
    if (this.reliable && !this.closed) connection = this.connectionTo(target);
    const record = this.record(bytes, target, tid, connection?.id, 'send');
    const failure = this.failure(record);
    if (failure) return Promise.reject(failure);
    this.transmit(record, connection);
    return Promise.resolve(connection?.id);
  }

  hasConnection(connectionId: number): boolean {
    return this.connections.get(connectionId)?.open === true;
  }

  sendOnConnection(connectionId: number, bytes: Buffer, tid?: string): Promise<number> {
    const connection = this.connections.get(connectionId);
    const target = connection?.remote ?? { ...this.bound, port: 0 };
    const record = this.record(bytes, target, tid, connectionId, 'connection');
    const failure =
      this.failure(record) ??
      (connection?.open === true ? undefined : this.fail(record, 'TRANSPORT_CLOSED', `connection ${connectionId} is closed`));
    if (failure) return Promise.reject(failure);
    this.transmit(record, connection);
    return Promise.resolve(connectionId);
  }

  // ---- the network side --------------------------------------------------------------------

  /**
   * A message arriving from `from` (as if from the network). UDP: one datagram, through the same
   * checks the UDP transport makes (RFC 3261 §18.3). TCP: one framed message on the connection
   * from `from` (opened on first use), or on `connectionId` when given.
   */
  inject(data: Buffer | string, from: Tuple | { address: string; port: number }, connectionId?: number): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const source: Tuple = { protocol: this.protocol, address: from.address, port: from.port };
    let id: number | undefined;
    if (this.reliable) id = connectionId ?? this.acceptFrom(source).id;
    this.receive(bytes, source, id);
  }

  /** The connection a TCP peer at `remote` uses (opening one as if it connected to us). */
  acceptFrom(remote: Tuple): Connection {
    const existing = this.byRemote.get(key(remote));
    if (existing !== undefined) {
      const c = this.connections.get(existing);
      if (c?.open) return c;
    }
    const connection: Connection = { id: nextConnectionId++, remote, open: true, peer: undefined };
    this.connections.set(connection.id, connection);
    this.byRemote.set(key(remote), connection.id);
    return connection;
  }

  /** Closes a TCP connection (as if the peer hung up). */
  dropConnection(connectionId: number): void {
    const c = this.connections.get(connectionId);
    if (c) c.open = false;
  }

  /** Open connection ids. */
  get openConnections(): number[] {
    return [...this.connections.values()].filter((c) => c.open).map((c) => c.id);
  }

  private receive(bytes: Buffer, source: Tuple, connectionId: number | undefined): void {
    if (this.closed) return;
    let message: SipMessage;
    if (!this.reliable) {
      const outcome = acceptDatagram(bytes);
      if (outcome.action === 'drop') return;
      if (outcome.action === 'reply') {
        const record = this.record(outcome.bytes, source, undefined, undefined, 'send', true);
        this.transmit(record, undefined);
        return;
      }
      message = outcome.message;
    } else {
      try {
        message = parseMessage(bytes);
      } catch (error) {
        if (error instanceof SipParseError) return;
        throw error;
      }
    }
    stampReceived(message, source);
    this.push({ type: 'message', message, source, local: this.bound, connectionId });
  }

  private push(event: TransportEvent): void {
    this.events.push(event);
    if (this.sink) this.sink.push(event);
    else this.early.push(event);
  }

  private connectionTo(target: Tuple): Connection {
    const existing = this.byRemote.get(key(target));
    if (existing !== undefined) {
      const c = this.connections.get(existing);
      if (c?.open) return c;
    }
    const connection: Connection = { id: nextConnectionId++, remote: target, open: true, peer: undefined };
    this.connections.set(connection.id, connection);
    this.byRemote.set(key(target), connection.id);
    const peer = this.network?.find(target);
    if (peer && peer.isStarted) {
      // The peer sees a connection from an ephemeral port of ours.
      const from: Tuple = { protocol: this.protocol, address: this.bound.address, port: this.nextEphemeral++ };
      const far = peer.acceptFrom(from);
      connection.peer = { transport: peer, connectionId: far.id };
      far.peer = { transport: this, connectionId: connection.id };
    }
    return connection;
  }

  private record(
    bytes: Buffer,
    target: Tuple,
    tid: string | undefined,
    connectionId: number | undefined,
    how: 'send' | 'connection',
    byTransport = false,
  ): SentRecord {
    const record: SentRecord = {
      seq: nextSeq++,
      at: this.clock?.now() ?? 0,
      bytes: Buffer.from(bytes),
      target,
      tid,
      connectionId,
      how,
      outcome: 'recorded',
      byTransport,
    };
    this.sent.push(record);
    return record;
  }

  private failure(record: SentRecord): TransportError | undefined {
    if (this.closed || !this.started) return this.fail(record, 'TRANSPORT_CLOSED', 'the loopback transport is not running');
    const code = this.failures.shift();
    if (code !== undefined) return this.fail(record, code, `loopback: failNext(${code})`);
    return undefined;
  }

  /** Pushes the failure event (with the tid) and returns the error, as real transports do. */
  private fail(record: SentRecord, code: TransportErrorCode, why: string): TransportError {
    record.outcome = 'failed';
    const error = new TransportError(code, why, record.target);
    this.push({ type: 'failure', tid: record.tid, target: record.target, error });
    return error;
  }

  private chance(knob: Chance | undefined, record: SentRecord): boolean {
    if (knob === undefined) return false;
    if (typeof knob === 'function') return knob(record);
    return this.rng() < knob;
  }

  /** Hands a sent message to the peer it is addressed to, through the knobs. */
  private transmit(record: SentRecord, connection: Connection | undefined): void {
    let deliver: (() => void) | undefined;
    if (this.reliable) {
      const peer = connection?.peer;
      if (peer) {
        const from = peer.transport.connections.get(peer.connectionId)?.remote;
        if (from) deliver = () => peer.transport.receive(record.bytes, from, peer.connectionId);
      }
    } else {
      const peer = this.network?.find(record.target);
      if (peer) deliver = () => peer.receive(record.bytes, this.bound, undefined);
    }
    if (!deliver) return;
    if (this.chance(this.drop, record)) {
      record.outcome = 'dropped';
      return;
    }
    const copies = this.chance(this.duplicate, record) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const ms = typeof this.delay === 'function' ? this.delay(record) : (this.delay ?? 0);
      if (ms > 0) {
        if (!this.clock) throw new Error('LoopbackTransport: a delay needs a clock');
        record.outcome = 'delayed';
        const run = deliver;
        this.clock.setTimer(ms, () => {
          record.outcome = 'delivered';
          run();
        });
      } else {
        record.outcome = 'delivered';
        // Never re-enter the receiver from inside its peer's send: arrive on a later turn.
        setImmediate(deliver);
      }
    }
  }
}
