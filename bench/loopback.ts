// An in-memory Transport for benchmarks: no sockets, nothing recorded. Bytes a transport sends
// are parsed on the receiving side exactly as a real transport would (one datagram for 'udp'
// through acceptDatagram and stampReceived; one framed message on a connection for 'tcp') and
// pushed into that side's sink, so a benchmark still pays for serializing and parsing every
// message, but not for the kernel.
//
// (test/support/loopback-transport.ts is the test double: it records every send with a copy of
// its bytes, which would dominate the memory figures here.)
import {
  acceptDatagram,
  parseMessage,
  stampReceived,
  TransportError,
  type SipMessage,
  type Sink,
  type Transport,
  type TransportEvent,
  type Tuple,
} from '../src/index.js';

/** Something bytes can be delivered to: a loopback transport, or a benchmark's raw peer. */
export interface Endpoint {
  readonly local: Tuple;
  /** `connectionId` is the receiver's id for the connection (tcp), undefined for udp. */
  deliver(bytes: Buffer, source: Tuple, connectionId: number | undefined): void;
  /** A connection the peer opened to us: our id for it, and the peer's. */
  accept(id: number, peer: Endpoint, peerId: number): void;
}

export class LoopbackNetwork {
  private readonly endpoints = new Map<string, Endpoint>();
  private nextPort = 20_000;
  private nextConnection = 1;

  port(): number {
    return this.nextPort++;
  }

  connectionId(): number {
    return this.nextConnection++;
  }

  attach(endpoint: Endpoint): void {
    this.endpoints.set(key(endpoint.local), endpoint);
  }

  detach(endpoint: Endpoint): void {
    if (this.endpoints.get(key(endpoint.local)) === endpoint) this.endpoints.delete(key(endpoint.local));
  }

  find(target: Tuple): Endpoint | undefined {
    return this.endpoints.get(key(target));
  }
}

function key(t: Tuple): string {
  return `${t.protocol}|${t.address}|${t.port}`;
}

interface Connection {
  /** Where bytes sent on this connection go. */
  readonly peer: Endpoint;
  /** The peer's id for the same connection. */
  readonly peerConnectionId: number;
  readonly remote: Tuple;
}

/**
 * 'udp' is unreliable (the stack runs retransmission timers), 'tcp' reliable (Timers J, K, D… are
 * 0). Delivery happens synchronously inside send(): the receiving stack's inbound Fifo defers the
 * work to a later turn, as a socket callback would.
 */
export class LoopbackTransport implements Transport, Endpoint {
  readonly reliable: boolean;
  readonly local: Tuple;
  private sink: Sink<TransportEvent> | undefined;
  private readonly connections = new Map<number, Connection>();
  private readonly byRemote = new Map<string, number>();
  private open = false;

  constructor(
    private readonly network: LoopbackNetwork,
    readonly protocol: 'udp' | 'tcp' = 'udp',
    port = network.port(),
    address = '127.0.0.1',
  ) {
    this.reliable = protocol !== 'udp';
    this.local = { protocol, address, port };
  }

  /** The stack's inbound sink (SipStack#sink), given after the stack exists. */
  attach(sink: Sink<TransportEvent>): this {
    this.sink = sink;
    return this;
  }

  async start(): Promise<void> {
    this.open = true;
    this.network.attach(this);
  }

  async close(): Promise<void> {
    this.open = false;
    this.network.detach(this);
    this.connections.clear();
    this.byRemote.clear();
  }

  send(bytes: Buffer, target: Tuple, tid?: string): Promise<number | undefined> {
    if (!this.open) return this.fail(target, tid, 'TRANSPORT_CLOSED', 'loopback transport closed');
    if (!this.reliable) {
      const peer = this.network.find(target);
      peer?.deliver(bytes, this.local, undefined);
      return Promise.resolve(undefined);
    }
    let id = this.byRemote.get(key(target));
    if (id === undefined) {
      const peer = this.network.find(target);
      if (peer === undefined) return this.fail(target, tid, 'TRANSPORT_REFUSED', 'nothing listens there');
      id = this.network.connectionId();
      const far = this.network.connectionId();
      this.connections.set(id, { peer, peerConnectionId: far, remote: target });
      this.byRemote.set(key(target), id);
      peer.accept(far, this, id);
    }
    const c = this.connections.get(id)!;
    c.peer.deliver(bytes, this.sourceFor(c), c.peerConnectionId);
    return Promise.resolve(id);
  }

  hasConnection(connectionId: number): boolean {
    return this.connections.has(connectionId);
  }

  sendOnConnection(connectionId: number, bytes: Buffer, tid?: string): Promise<number> {
    const c = this.connections.get(connectionId);
    if (!this.open || c === undefined) return this.fail({ ...this.local, port: 0 }, tid, 'TRANSPORT_CLOSED', 'no such connection') as Promise<never>;
    c.peer.deliver(bytes, this.sourceFor(c), c.peerConnectionId);
    return Promise.resolve(connectionId);
  }

  /** Bytes from the network. */
  deliver(bytes: Buffer, source: Tuple, connectionId: number | undefined): void {
    if (!this.open || this.sink === undefined) return;
    let message: SipMessage;
    if (!this.reliable) {
      const outcome = acceptDatagram(bytes);
      if (outcome.action !== 'deliver') return;
      message = outcome.message;
    } else {
      try {
        message = parseMessage(bytes);
      } catch {
        return;
      }
    }
    stampReceived(message, source);
    this.sink.push({ type: 'message', message, source, local: this.local, connectionId });
  }

  /** A connection a peer opened to us; `peerId` is its id for it. */
  accept(id: number, peer: Endpoint, peerId: number): void {
    this.connections.set(id, { peer, peerConnectionId: peerId, remote: peer.local });
  }

  /** What the far side sees as the source of our bytes: our listening tuple (no ephemeral ports). */
  private sourceFor(_c: Connection): Tuple {
    return this.local;
  }

  private fail(target: Tuple, tid: string | undefined, code: 'TRANSPORT_CLOSED' | 'TRANSPORT_REFUSED', why: string): Promise<never> {
    const error = new TransportError(code, why, target);
    this.sink?.push({ type: 'failure', tid, target, error });
    return Promise.reject(error);
  }
}

/**
 * A bare endpoint for a benchmark's load generator or echo peer: bytes addressed to it go to
 * `onBytes` unparsed; it sends by handing bytes straight to the endpoint at a target, and replies
 * on the connection (tcp) or to the source (udp) a message came from.
 */
export class RawPeer implements Endpoint {
  readonly local: Tuple;
  onBytes: (bytes: Buffer, source: Tuple, connectionId: number | undefined) => void = () => undefined;
  private readonly connections = new Map<number, { peer: Endpoint; peerId: number }>();
  private readonly byRemote = new Map<string, number>();

  constructor(
    private readonly network: LoopbackNetwork,
    protocol: 'udp' | 'tcp',
    port = network.port(),
  ) {
    this.local = { protocol, address: '127.0.0.1', port };
    network.attach(this);
  }

  deliver(bytes: Buffer, source: Tuple, connectionId: number | undefined): void {
    this.onBytes(bytes, source, connectionId);
  }

  accept(id: number, peer: Endpoint, peerId: number): void {
    this.connections.set(id, { peer, peerId });
  }

  /** Sends bytes to the endpoint at `target` (over one connection for tcp). */
  send(bytes: Buffer, target: Tuple): void {
    const peer = this.network.find(target);
    if (peer === undefined) throw new Error(`nothing at ${key(target)}`);
    if (this.local.protocol === 'udp') return peer.deliver(bytes, this.local, undefined);
    let id = this.byRemote.get(key(target));
    if (id === undefined) {
      id = this.network.connectionId();
      const far = this.network.connectionId();
      this.connections.set(id, { peer, peerId: far });
      this.byRemote.set(key(target), id);
      peer.accept(far, this, id);
    }
    const c = this.connections.get(id)!;
    c.peer.deliver(bytes, this.local, c.peerId);
  }

  /** Answers a message that came from `source` (udp) or on `connectionId` (tcp). */
  reply(bytes: Buffer, source: Tuple, connectionId: number | undefined): void {
    if (connectionId !== undefined) {
      const c = this.connections.get(connectionId);
      c?.peer.deliver(bytes, this.local, c.peerId);
    } else this.network.find(source)?.deliver(bytes, this.local, undefined);
  }

  close(): void {
    this.network.detach(this);
  }
}
