import type { Sink } from '../util/fifo.js';
import type { ConnectionManager, ManagedConnection } from './connection-manager.js';
import { TransportError } from './transport-error.js';
import type { Transport, TransportEvent, TransportProtocol, Tuple } from './types.js';

/**
 * Marks each connection a binding was registered over as a flow (`ConnectionTransport.markFlow`)
 * on whichever of `transports` holds it: at the connection limit those go last. For a registrar's
 * "bindings changed" event: `markFlows(stack.transports, bindings.map((b) => b.flow?.connectionId))`.
 */
export function markFlows(transports: readonly Transport[], connectionIds: Iterable<number | undefined>): void {
  for (const id of connectionIds) {
    if (id === undefined) continue;
    for (const transport of transports) if (transport instanceof ConnectionTransport && transport.markFlow(id)) break;
  }
}

/** A connection that can carry SIP messages. */
export interface WritableConnection extends ManagedConnection {
  readonly isOpen: boolean;
  write(bytes: Buffer): Promise<void>;
}

/**
 * The sending half every connection-oriented transport shares (TCP, TLS, WS, WSS): reuse the
 * connection to the target or open one, honour the size limit, and turn every failure into a
 * TransportError that is both returned and pushed up as a `failure` event with its tid.
 */
export abstract class ConnectionTransport<C extends WritableConnection> implements Transport {
  abstract readonly protocol: TransportProtocol;
  readonly reliable = true;
  abstract readonly local: Tuple;
  abstract readonly connections: ConnectionManager<C>;
  protected abstract readonly sink: Sink<TransportEvent>;
  protected abstract readonly maxMessageSize: number;

  abstract start(): Promise<void>;
  abstract close(): Promise<void>;
  /** Opens a connection to `target` (admitted to the manager), or throws TransportError. */
  protected abstract connect(target: Tuple): C;

  async send(bytes: Buffer, target: Tuple, tid?: string): Promise<number | undefined> {
    try {
      if (bytes.length > this.maxMessageSize) {
        throw new TransportError('TRANSPORT_TOO_LARGE', `${bytes.length} bytes is over the limit of ${this.maxMessageSize}`, target);
      }
      // A connection being closed (a failed keep-alive, an error) is not reused: a new flow is opened.
      const found = this.connections.find(target);
      const connection = found?.isOpen ? found : this.connect(target);
      await connection.write(bytes);
      return connection.id;
    } catch (error) {
      throw this.failed(error, target, tid);
    }
  }

  /**
   * Marks (or unmarks) the connection as a flow a binding lives on: at the connection limit it is
   * closed only when nothing else can be (docs/transport-layer.md). False when it is not ours.
   */
  markFlow(connectionId: number, flow = true): boolean {
    return this.connections.markFlow(connectionId, flow);
  }

  hasConnection(connectionId: number): boolean {
    return this.connections.get(connectionId)?.isOpen ?? false;
  }

  async sendOnConnection(connectionId: number, bytes: Buffer, tid?: string): Promise<number> {
    const connection = this.connections.get(connectionId);
    const target = connection?.remote ?? { ...this.local, port: 0 };
    try {
      if (!connection) throw new TransportError('TRANSPORT_CLOSED', `connection ${connectionId} is closed`, target);
      await connection.write(bytes);
      return connection.id;
    } catch (error) {
      throw this.failed(error, target, tid);
    }
  }

  private failed(error: unknown, target: Tuple, tid: string | undefined): TransportError {
    const failure = TransportError.fromSocketError(error, target);
    this.sink.push({ type: 'failure', tid, target, error: failure });
    return failure;
  }
}
