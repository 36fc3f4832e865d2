import type { Server, Socket } from 'node:net';
import { createResponse } from '../message/builder.js';
import { parseMessage } from '../message/parse-message.js';
import { SipParseError } from '../message/parse-error.js';
import type { FramedItem } from '../message/stream-framer.js';
import { systemClock, type Clock } from '../util/clock.js';
import { IdSequence } from '../util/id-sequence.js';
import type { Sink } from '../util/fifo.js';
import { ConnectionManager } from './connection-manager.js';
import { publish } from './diagnostics.js';
import { badRequest, stampReceived } from './inbound.js';
import { StreamConnection, unmapIPv4 } from './stream-connection.js';
import { TransportError } from './transport-error.js';
import { ConnectionTransport } from './connection-transport.js';
import type { TransportEvent, TransportProtocol, Tuple } from './types.js';

/** Limits and timers shared by every connection-oriented transport. */
export interface StreamOptions {
  /**
   * Default 1024. At the limit one connection is closed to make room: an inbound one that never
   * carried a complete message first, then the least recently used idle one, flows
   * (`markFlow`) last; when none can go, the new connection is refused.
   */
  maxConnections?: number;
  /** Inbound connections at once from one source address; more are closed at once. Default 64; 0 = no limit. */
  maxConnectionsPerSource?: number;
  /** An inbound connection that delivers no complete message within this long is closed. Default 10,000; 0 = never. */
  firstMessageTimeoutMs?: number;
  /** A message begun must be complete within this long, or the connection closes. Default 30,000; 0 = never. */
  partialMessageTimeoutMs?: number;
  /** Default 300,000; 0 = never. */
  idleTimeoutMs?: number;
  /** Default 10,000. */
  connectTimeoutMs?: number;
  /** Largest message accepted or sent, bytes. Default 65,536 + 1,048,576. */
  maxMessageSize?: number;
  /** Bound on bytes held for one unfinished message. Default: maxMessageSize. */
  maxBufferedBytes?: number;
  /** RFC 5626 §4.4.1 CRLFCRLF keep-alive on connections this side opened; 0 = off (default). */
  keepAliveIntervalMs?: number;
  /** Default 10,000 (RFC 5626 §4.4.1). */
  pongTimeoutMs?: number;
  /** Fairness: messages handed up per connection per turn of the event loop. Default 16. */
  messagesPerTurn?: number;
  clock?: Clock;
  /** Where connection ids come from: give every transport of one stack the same sequence, so
   *  ids are unique across them (the stack does for the transports it creates). */
  connectionIds?: IdSequence;
}

export interface StreamTransportOptions extends StreamOptions {
  address: string;
  port: number;
  sink: Sink<TransportEvent>;
}


const MAX_HEADER_BYTES = 65_536;
export const DEFAULT_MAX_PER_SOURCE = 64;
export const DEFAULT_FIRST_MESSAGE_MS = 10_000;
export const DEFAULT_PARTIAL_MESSAGE_MS = 30_000;
/** What a server allows for the start line and headers on top of its largest body. */
export const HEADER_ALLOWANCE_BYTES = MAX_HEADER_BYTES;

/**
 * Stream limits for a server that takes bodies up to `maxBodyBytes`: a larger body is refused by
 * the framer (413, then the connection closes) instead of being buffered, and no connection holds
 * more than `maxBodyBytes + HEADER_ALLOWANCE_BYTES` for an unfinished message.
 */
export function streamLimitsFor(maxBodyBytes: number): Pick<StreamOptions, 'maxMessageSize' | 'maxBufferedBytes'> {
  const size = maxBodyBytes + HEADER_ALLOWANCE_BYTES;
  return { maxMessageSize: size, maxBufferedBytes: size };
}

/**
 * What TCP and TLS share (reSIProcate's TCPBaseTransport): a listening server, outgoing
 * connections on demand, both kept in one ConnectionManager and reused in both directions.
 */
export abstract class StreamTransport extends ConnectionTransport<StreamConnection> {
  readonly connections: ConnectionManager<StreamConnection>;
  protected bound: Tuple;
  protected readonly sink: Sink<TransportEvent>;
  protected readonly clock: Clock;
  private readonly connectionIds: IdSequence;
  private server: Server | undefined;
  protected readonly maxMessageSize: number;
  private readonly connectTimeoutMs: number;
  private readonly connectionOptions: ConstructorParameters<typeof StreamConnection>[4];
  private stopped = false;

  protected constructor(protocol: TransportProtocol, options: StreamTransportOptions, handshakeErrorsAreTls: boolean) {
    super();
    this.bound = { protocol, address: options.address, port: options.port };
    this.sink = options.sink;
    this.clock = options.clock ?? systemClock;
    this.connectionIds = options.connectionIds ?? new IdSequence();
    this.maxMessageSize = options.maxMessageSize ?? MAX_HEADER_BYTES + 1_048_576;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.connections = new ConnectionManager<StreamConnection>({
      maxConnections: options.maxConnections ?? 1024,
      idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
      maxConnectionsPerSource: options.maxConnectionsPerSource ?? DEFAULT_MAX_PER_SOURCE,
      firstMessageTimeoutMs: options.firstMessageTimeoutMs ?? DEFAULT_FIRST_MESSAGE_MS,
      clock: this.clock,
    });
    const maxHeaderBytes = Math.min(MAX_HEADER_BYTES, this.maxMessageSize);
    this.connectionOptions = {
      limits: {
        maxHeaderBytes,
        maxBodyBytes: Math.max(0, this.maxMessageSize - maxHeaderBytes),
        maxBufferedBytes: options.maxBufferedBytes ?? this.maxMessageSize,
        // A body over the limit is answered 413 and read past, never buffered: the stream goes on.
        skipOversizedBodies: true,
      },
      clock: this.clock,
      messagesPerTurn: options.messagesPerTurn ?? 16,
      keepAliveIntervalMs: options.keepAliveIntervalMs ?? 0,
      pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
      partialMessageTimeoutMs: options.partialMessageTimeoutMs ?? DEFAULT_PARTIAL_MESSAGE_MS,
      handshakeErrorsAreTls,
    };
  }

  get local(): Tuple {
    return this.bound;
  }

  /** The server socket for this transport's protocol. */
  protected abstract createServer(onSocket: (socket: Socket) => void): Server;
  /** Opens a socket to `target`; `ready` is called once it can carry SIP (connected / handshake done). */
  protected abstract connectSocket(target: Tuple, ready: () => void): Socket;

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = this.createServer((socket) => this.accept(socket));
      const onError = (error: Error): void => reject(TransportError.fromSocketError(error, this.bound));
      server.once('error', onError);
      server.listen({ port: this.bound.port, host: this.bound.address, ipv6Only: true }, () => {
        server.off('error', onError);
        server.on('error', (error) => publish('transport-error', { transport: this.bound, error }));
        const addr = server.address();
        if (addr && typeof addr === 'object') this.bound = { protocol: this.protocol, address: addr.address, port: addr.port };
        this.server = server;
        resolve();
      });
    });
  }

  private accept(socket: Socket): void {
    const address = socket.remoteAddress;
    const port = socket.remotePort;
    if (this.stopped || address === undefined || port === undefined) {
      socket.destroy();
      return;
    }
    const remote: Tuple = { protocol: this.protocol, address: unmapIPv4(address), port };
    const refused = this.connections.refuses(remote.address);
    if (refused !== undefined) {
      // Refused before anything is set up for it: the peer sees the connection reset.
      publish('connection', { transport: this.bound, remote, event: 'refused', reason: refused });
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    const connection = this.newConnection(socket, remote, false);
    if (!this.connections.admit(connection, true)) {
      publish('connection', { transport: this.bound, remote, event: 'refused', reason: 'connection limit' });
      connection.close(new TransportError('TRANSPORT_LIMIT', 'connection limit reached', remote));
    }
  }




  keepAlive(remote: Tuple, intervalMs: number): boolean {
    const connection = this.connections.find(remote);
    if (!connection?.isOpen) return false;
    connection.keepAlive(intervalMs);
    return true;
  }

  close(): Promise<void> {
    this.stopped = true;
    this.connections.closeAll(new TransportError('TRANSPORT_CLOSED', 'the transport was closed'));
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  protected connect(target: Tuple): StreamConnection {
    if (this.stopped) throw new TransportError('TRANSPORT_CLOSED', 'the transport was closed', target);
    // The socket's callbacks run later, once the connection object below exists.
    const pending: { connection?: StreamConnection } = {};
    const socket = this.connectSocket(target, () => {
      socket.setTimeout(0);
      pending.connection?.opened();
    });
    socket.setTimeout(this.connectTimeoutMs, () => {
      pending.connection?.close(new TransportError('TRANSPORT_TIMEOUT', `no connection within ${this.connectTimeoutMs} ms`, target));
    });
    const connection = (pending.connection = this.newConnection(socket, target, true));
    if (!this.connections.admit(connection)) {
      const error = new TransportError('TRANSPORT_LIMIT', 'connection limit reached and no idle connection to close', target);
      connection.close(error);
      throw error;
    }
    return connection;
  }

  private newConnection(socket: Socket, remote: Tuple, outbound: boolean): StreamConnection {
    return new StreamConnection(this.connectionIds.next(), socket, remote, outbound, this.connectionOptions, {
      onItem: (connection, item) => this.onItem(connection, item),
      onActivity: (connection) => this.connections.touch(connection),
      onFlowFailed: (connection, reason) => {
        this.sink.push({ type: 'flow-failed', connectionId: connection.id, target: connection.remote, reason });
      },
      onClosed: (connection, error) => {
        this.connections.remove(connection);
        publish('connection', { transport: this.bound, remote: connection.remote, event: 'closed', error });
        const reason = error ? `${error.code}: ${error.message}` : 'closed';
        if (!this.stopped) this.sink.push({ type: 'flow-closed', connectionId: connection.id, target: connection.remote, reason });
      },
    });
  }

  private onItem(connection: StreamConnection, item: FramedItem): void {
    if (item.type === 'message') {
      this.connections.carried(connection);
      stampReceived(item.message, connection.remote);
      this.sink.push({
        type: 'message',
        message: item.message,
        source: connection.remote,
        local: connection.local ?? this.bound,
        connectionId: connection.id,
      });
      return;
    }
    if (item.type === 'refused') {
      publish('drop', { transport: this.bound, source: connection.remote, reason: `${item.error.code}: ${item.error.message}` });
      const answer = refusalFor(item.head, item.error);
      if (answer) void connection.write(answer).catch(() => undefined);
      return;
    }
    if (item.type !== 'error') return;
    // A broken stream cannot be resynchronised: answer 400 when the head was a request, then close.
    publish('drop', { transport: this.bound, source: connection.remote, reason: `${item.error.code}: ${item.error.message}` });
    connection.endAfter(
      item.head ? refusalFor(item.head, item.error) : undefined,
      new TransportError('TRANSPORT_RESET', `framing error: ${item.error.message}`, connection.remote, item.error),
    );
  }
}

/** The answer to a request the stream cannot take: 413 for a body over the limit, else 400 (none for ACK or a response). */
function refusalFor(head: Buffer, error: SipParseError): Buffer | undefined {
  try {
    const message = parseMessage(head);
    if (!message.isRequest || message.method === 'ACK') return undefined;
    if (error.code === 'SIP_BODY_TOO_LARGE') {
      return createResponse(message, 413, 'Request Entity Too Large', { headers: { Warning: `399 parley "${error.message}"` } }).toBuffer();
    }
    return badRequest(message, error.message);
  } catch (parseError) {
    if (parseError instanceof SipParseError) return undefined;
    throw parseError;
  }
}
