// Helpers for the transport integration tests: a recording Sink whose events can be awaited, raw
// loopback peers (node:dgram, node:net) that record every byte, and a cleanup list so each test
// closes everything it opened. Nothing here sleeps on a protocol timer: waits resolve on real
// socket events and only the safety timeouts use wall-clock time (so a broken test fails instead of
// hanging).
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { TransportError, type SipMessage, type TransportEvent, type Tuple } from '../../src/index.js';
import { sip } from './sip-bytes.js';

/** How long a wait for something that should happen within milliseconds may take before it fails. */
export const SAFETY_MS = 3000;

export type MessageEvent = Extract<TransportEvent, { type: 'message' }>;
export type FailureEvent = Extract<TransportEvent, { type: 'failure' }>;
export type FlowFailedEvent = Extract<TransportEvent, { type: 'flow-failed' }>;
export type FlowClosedEvent = Extract<TransportEvent, { type: 'flow-closed' }>;

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/** Rejects with a clear message when `promise` has not settled within `ms`. */
export function within<T>(promise: Promise<T>, label: string, ms = SAFETY_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Lets `n` turns of the event loop pass (I/O callbacks included); no wall-clock wait. */
export async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Resolves once `condition()` holds, checking on every turn of the event loop. */
export async function until(condition: () => boolean, label: string, ms = SAFETY_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${label}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}

// ---------------------------------------------------------------------------------------------
// A Sink that records
// ---------------------------------------------------------------------------------------------

interface Waiter {
  predicate: (event: TransportEvent) => boolean;
  resolve: (event: TransportEvent) => void;
}

/** A transport Sink (`{ push(event) }`) that keeps every event, in order, and can be awaited. */
export class EventRecorder {
  readonly events: TransportEvent[] = [];
  private readonly taken = new Set<TransportEvent>();
  private waiters: Waiter[] = [];

  push(event: TransportEvent): void {
    this.events.push(event);
    for (const waiter of this.waiters) {
      if (!this.taken.has(event) && waiter.predicate(event)) {
        this.taken.add(event);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.resolve(event);
      }
    }
  }

  get messages(): MessageEvent[] {
    return this.events.filter((e): e is MessageEvent => e.type === 'message');
  }

  get failures(): FailureEvent[] {
    return this.events.filter((e): e is FailureEvent => e.type === 'failure');
  }

  get flowFailures(): FlowFailedEvent[] {
    return this.events.filter((e): e is FlowFailedEvent => e.type === 'flow-failed');
  }

  /** Connections that closed (either direction), in order. */
  get closedFlows(): FlowClosedEvent[] {
    return this.events.filter((e): e is FlowClosedEvent => e.type === 'flow-closed');
  }

  /**
   * The types of every event so far, for exact assertions with a readable diff — except
   * `flow-closed`, which every closing connection adds (see `closedFlows`).
   */
  get types(): string[] {
    return this.events.filter((e) => e.type !== 'flow-closed').map((e) => e.type);
  }

  /** @internal used by nextEvent */
  wait(predicate: (event: TransportEvent) => boolean): { promise: Promise<TransportEvent>; cancel: () => void } {
    const already = this.events.find((e) => !this.taken.has(e) && predicate(e));
    if (already) {
      this.taken.add(already);
      return { promise: Promise.resolve(already), cancel: () => undefined };
    }
    let waiter!: Waiter;
    const promise = new Promise<TransportEvent>((resolve) => {
      waiter = { predicate, resolve };
      this.waiters.push(waiter);
    });
    return { promise, cancel: () => (this.waiters = this.waiters.filter((w) => w !== waiter)) };
  }
}

/**
 * The first event pushed into `sink` (already, or from now on) that matches `predicate` and was
 * not returned by an earlier nextEvent on the same sink.
 */
export async function nextEvent<E extends TransportEvent = TransportEvent>(
  sink: EventRecorder,
  predicate: (event: TransportEvent) => boolean,
  timeoutMs = SAFETY_MS,
  label = 'a transport event',
): Promise<E> {
  const { promise, cancel } = sink.wait(predicate);
  try {
    return (await within(promise, `${label} (events so far: [${sink.types.join(', ')}])`, timeoutMs)) as E;
  } finally {
    cancel();
  }
}

/** The next `message` event, optionally one whose Call-ID is `callId`. */
export function nextMessage(sink: EventRecorder, callId?: string, timeoutMs = SAFETY_MS): Promise<MessageEvent> {
  return nextEvent<MessageEvent>(
    sink,
    (e) => e.type === 'message' && (callId === undefined || e.message.header('call-id') === callId),
    timeoutMs,
    callId === undefined ? 'a message event' : `a message event with Call-ID ${callId}`,
  );
}

export function nextFailure(sink: EventRecorder, timeoutMs = SAFETY_MS): Promise<FailureEvent> {
  return nextEvent<FailureEvent>(sink, (e) => e.type === 'failure', timeoutMs, 'a failure event');
}

// ---------------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------------

/** Everything a test opened, closed in reverse order by `run()` (call it from afterEach). */
export class Cleanup {
  private items: Array<{ label: string; close: () => unknown }> = [];

  add<T>(label: string, item: T, close: (item: T) => unknown): T {
    this.items.push({ label, close: () => close(item) });
    return item;
  }

  /** Closes everything; throws after trying all of them if any close failed or hung. */
  async run(): Promise<void> {
    const items = this.items.reverse();
    this.items = [];
    const errors: string[] = [];
    for (const item of items) {
      try {
        await within(Promise.resolve(item.close()), `closing ${item.label}`, 2000);
      } catch (error) {
        errors.push(`${item.label}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.join('; ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Raw peers
// ---------------------------------------------------------------------------------------------

export interface Datagram {
  data: Buffer;
  from: RemoteInfo;
}

/** A bare node:dgram socket on a loopback address that records every datagram it receives. */
export class RawUdp {
  readonly datagrams: Datagram[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: DgramSocket, readonly address: string) {
    socket.on('message', (data, from) => {
      this.datagrams.push({ data, from });
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
  }

  static async open(address = '127.0.0.1'): Promise<RawUdp> {
    const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new RawUdp(socket, address);
  }

  get port(): number {
    return this.socket.address().port;
  }

  get tuple(): Tuple {
    return { protocol: 'udp', address: this.address, port: this.port };
  }

  send(bytes: Uint8Array, to: { address: string; port: number }): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(bytes, to.port, to.address, (error) => (error ? reject(error) : resolve())),
    );
  }

  /** Resolves when at least `count` datagrams have arrived in total. */
  async received(count: number, label = `${count} datagram(s)`): Promise<Datagram[]> {
    while (this.datagrams.length < count) {
      await within(new Promise<void>((resolve) => this.waiters.push(resolve)), `${label} at raw udp :${this.port} (got ${this.datagrams.length})`);
    }
    return this.datagrams;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}

/** One raw TCP connection (either end) that records what it receives and when it ends. */
export class RawConn {
  data = Buffer.alloc(0);
  /** Set when the socket emitted 'close'. */
  closed = false;
  error: Error | undefined;
  readonly closedPromise: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.wake();
    });
    socket.on('error', (error) => {
      this.error = error;
    });
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  get localPort(): number {
    return this.socket.localPort!;
  }

  get remotePort(): number {
    return this.socket.remotePort!;
  }

  /** Resolves once at least `length` bytes have arrived (fails if the socket closes first). */
  async receivedBytes(length: number, label = `${length} bytes`): Promise<Buffer> {
    while (this.data.length < length) {
      if (this.closed) throw new Error(`connection closed after ${this.data.length} bytes while waiting for ${label}: ${JSON.stringify(this.data.toString('latin1'))}`);
      await within(new Promise<void>((resolve) => this.waiters.push(resolve)), `${label} (got ${JSON.stringify(this.data.toString('latin1'))})`);
    }
    return this.data;
  }

  /** Resolves once the connection is closed, with everything it received. */
  async ended(label = 'the connection to close'): Promise<Buffer> {
    await within(this.closedPromise, label);
    return this.data;
  }

  /** Writes and resolves once the bytes are handed to the kernel. */
  write(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  destroy(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.socket.destroy();
    return this.closedPromise;
  }
}

/** A raw TCP client connection to `port` on `address`. */
export async function rawConnect(address: string, port: number): Promise<RawConn> {
  const socket = connect({ host: address, port });
  const conn = new RawConn(socket);
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    }),
    `a raw connection to ${address}:${port}`,
  );
  socket.setNoDelay(true);
  return conn;
}

/** A bare node:net listener that records each accepted connection. */
export class RawTcpServer {
  readonly connections: RawConn[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly server: Server, readonly address: string) {
    server.on('connection', (socket) => {
      socket.setNoDelay(true);
      this.connections.push(new RawConn(socket));
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
  }

  static async listen(address = '127.0.0.1', port = 0): Promise<RawTcpServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new RawTcpServer(server, address);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  tuple(protocol: Tuple['protocol'] = 'tcp'): Tuple {
    return { protocol, address: this.address, port: this.port };
  }

  /** Resolves with the `index`-th accepted connection (0-based) once it exists. */
  async connection(index = 0): Promise<RawConn> {
    while (this.connections.length <= index) {
      await within(new Promise<void>((resolve) => this.waiters.push(resolve)), `connection #${index + 1} at raw tcp :${this.port}`);
    }
    return this.connections[index]!;
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A port on `address` that nothing listens on (bound, then released). */
export async function closedTcpPort(address = '127.0.0.1'): Promise<number> {
  const raw = await RawTcpServer.listen(address);
  const port = raw.port;
  await raw.close();
  return port;
}

// ---------------------------------------------------------------------------------------------
// SIP bytes
// ---------------------------------------------------------------------------------------------

let counter = 0;

/** A fresh Call-ID for one test message. */
export function callId(prefix = 'c'): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}@parley.test`;
}

export interface RequestBytesInit {
  method?: string;
  uri?: string;
  via?: string;
  callId?: string;
  cseq?: number;
  body?: string;
  /** More header lines, after the mandatory ones. */
  extra?: string[];
  /** Content-Length value to write instead of the body's length. */
  contentLength?: number | null;
}

/**
 * A request as bytes, e.g.
 *   OPTIONS sip:bob@127.0.0.1 SIP/2.0 / Via / Max-Forwards / To / From / Call-ID / CSeq / Content-Length
 * `contentLength: null` leaves the Content-Length header out.
 */
export function requestBytes(init: RequestBytesInit = {}): Buffer {
  const method = init.method ?? 'OPTIONS';
  const head = [
    `${method} ${init.uri ?? 'sip:bob@127.0.0.1'} SIP/2.0`,
    `Via: ${init.via ?? 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-parley-test'}`,
    'Max-Forwards: 70',
    'To: <sip:bob@parley.test>',
    'From: <sip:alice@parley.test>;tag=a1b2c3',
    `Call-ID: ${init.callId ?? callId()}`,
    `CSeq: ${init.cseq ?? 1} ${method}`,
    ...(init.extra ?? []),
  ];
  if (init.contentLength !== null) head.push(`Content-Length: ${init.contentLength ?? '{CL}'}`);
  return sip(head, init.body ?? '');
}

/** A response as bytes (same header set as requestBytes). */
export function responseBytes(init: { status?: number; reason?: string; via?: string; callId?: string; body?: string; contentLength?: number } = {}): Buffer {
  return sip(
    [
      `SIP/2.0 ${init.status ?? 200} ${init.reason ?? 'OK'}`,
      `Via: ${init.via ?? 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-parley-test'}`,
      'To: <sip:bob@parley.test>;tag=b2c3d4',
      'From: <sip:alice@parley.test>;tag=a1b2c3',
      `Call-ID: ${init.callId ?? callId()}`,
      'CSeq: 1 OPTIONS',
      `Content-Length: ${init.contentLength ?? '{CL}'}`,
    ],
    init.body ?? '',
  );
}

/** `host:port` as a Via sent-by writes it (IPv6 in brackets). */
export function sentBy(t: { address: string; port: number }): string {
  return t.address.includes(':') ? `[${t.address}]:${t.port}` : `${t.address}:${t.port}`;
}

/** The TransportError a promise rejects with; fails when it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<TransportError> {
  try {
    const value = await promise;
    throw new Error(`expected a rejection with a TransportError, got ${String(value)}`);
  } catch (error) {
    if (!(error instanceof TransportError)) throw error;
    return error;
  }
}

/** The first line of a message, for exact status-line assertions. */
export function startLine(bytes: Uint8Array): string {
  const b = Buffer.from(bytes);
  const end = b.indexOf('\r\n');
  return b.subarray(0, end === -1 ? b.length : end).toString('latin1');
}

/** Short text of a message for assertion messages. */
export function show(message: SipMessage | Uint8Array): string {
  const bytes = message instanceof Uint8Array ? Buffer.from(message) : message.toBuffer();
  const s = bytes.toString('latin1');
  return JSON.stringify(s.length > 200 ? s.slice(0, 200) + '…' : s);
}
