import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { parseMessage } from '../message/parse-message.js';
import { SipParseError } from '../message/parse-error.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Sink } from '../util/fifo.js';
import { formatHostPort } from './address.js';
import { ConnectionManager, type ManagedConnection } from './connection-manager.js';
import { publish } from './diagnostics.js';
import { badRequest, stampReceived } from './inbound.js';
import { unmapIPv4 } from './stream-connection.js';
import { DEFAULT_FIRST_MESSAGE_MS, DEFAULT_MAX_PER_SOURCE, type StreamOptions } from './stream-transport.js';
import { IdSequence } from '../util/id-sequence.js';
import type { TlsOptions } from './tls-transport.js';
import { TransportError } from './transport-error.js';
import { ConnectionTransport } from './connection-transport.js';
import type { TransportEvent, Tuple } from './types.js';

/** RFC 7118 §4.1: the WebSocket subprotocol for SIP. */
export const SIP_SUBPROTOCOL = 'sip';

export interface WsTransportOptions extends StreamOptions {
  address: string;
  port: number;
  sink: Sink<TransportEvent>;
  /** WSS (TLS underneath, RFC 7118 §3). */
  secure?: boolean;
  /** Server certificate for WSS; client trust (ca, rejectUnauthorized) for connections we open. */
  tls?: TlsOptions;
}

/** One WebSocket carrying SIP. */
class WsConnection implements ManagedConnection {
  lastActivity = 0;
  /** Why the socket failed, when it did (a refused or failed handshake). */
  failure: TransportError | undefined = undefined;

  constructor(
    readonly id: number,
    readonly socket: WebSocket,
    readonly remote: Tuple,
    readonly local: Tuple,
  ) {}

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING;
  }

  isIdle(): boolean {
    return this.socket.readyState === WebSocket.OPEN && this.socket.bufferedAmount === 0;
  }

  /** RFC 7118 §5: each SIP message in one WebSocket message; text when it is valid UTF-8. */
  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const send = (): void =>
        this.socket.send(bytes, { binary: !isUtf8(bytes) }, (error) => {
          if (error) reject(TransportError.fromSocketError(error, this.remote));
          else resolve();
        });
      if (this.socket.readyState === WebSocket.OPEN) send();
      else if (this.socket.readyState === WebSocket.CONNECTING) {
        this.socket.once('open', send);
        this.socket.once('close', () => reject(this.failure ?? new TransportError('TRANSPORT_CLOSED', 'the WebSocket closed', this.remote)));
      } else reject(new TransportError('TRANSPORT_CLOSED', 'the WebSocket is closed', this.remote));
    });
  }

  close(reason: TransportError): void {
    publish('connection', { remote: this.remote, event: 'closing', reason: reason.message });
    this.socket.terminate();
  }
}

/**
 * SIP over WebSocket and secure WebSocket (RFC 7118): an HTTP(S) server that upgrades requests
 * offering the "sip" subprotocol, and client WebSockets for targets we reach out to. Reliable;
 * every WebSocket message is one SIP message.
 */
export class WsTransport extends ConnectionTransport<WsConnection> {
  readonly protocol: 'ws' | 'wss';
  readonly connections: ConnectionManager<WsConnection>;
  private bound: Tuple;
  protected readonly sink: Sink<TransportEvent>;
  private readonly clock: Clock;
  private readonly connectionIds: IdSequence;
  private readonly options: WsTransportOptions;
  protected readonly maxMessageSize: number;
  private http: HttpServer | undefined;
  private readonly wss: WebSocketServer;
  private stopped = false;

  constructor(options: WsTransportOptions) {
    super();
    this.protocol = options.secure ? 'wss' : 'ws';
    this.options = options;
    this.bound = { protocol: this.protocol, address: options.address, port: options.port };
    this.sink = options.sink;
    this.clock = options.clock ?? systemClock;
    this.connectionIds = options.connectionIds ?? new IdSequence();
    this.maxMessageSize = options.maxMessageSize ?? 65_536 + 1_048_576;
    this.connections = new ConnectionManager<WsConnection>({
      maxConnections: options.maxConnections ?? 1024,
      idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
      maxConnectionsPerSource: options.maxConnectionsPerSource ?? DEFAULT_MAX_PER_SOURCE,
      firstMessageTimeoutMs: options.firstMessageTimeoutMs ?? DEFAULT_FIRST_MESSAGE_MS,
      clock: this.clock,
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.maxMessageSize,
      handleProtocols: (protocols) => (protocols.has(SIP_SUBPROTOCOL) ? SIP_SUBPROTOCOL : false),
    });
  }

  get local(): Tuple {
    return this.bound;
  }

  start(): Promise<void> {
    const tls = this.options.tls;
    const http = this.options.secure
      ? createHttpsServer({ ...(tls ?? {}) }, (_req, res) => res.writeHead(426).end())
      : createHttpServer((_req, res) => res.writeHead(426).end());
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(TransportError.fromSocketError(error, this.bound));
      http.once('error', onError);
      http.listen({ port: this.bound.port, host: this.bound.address, ipv6Only: true }, () => {
        http.off('error', onError);
        const addr = http.address();
        if (addr && typeof addr === 'object') this.bound = { protocol: this.protocol, address: addr.address, port: addr.port };
        this.http = http;
        resolve();
      });
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // RFC 7118 §4.1: the client offers "sip" in Sec-WebSocket-Protocol; without it, no SIP here.
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (this.stopped || !offered.includes(SIP_SUBPROTOCOL)) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const source = req.socket.remoteAddress;
    const refused = source === undefined ? undefined : this.connections.refuses(unmapIPv4(source));
    if (refused !== undefined) {
      publish('connection', { transport: this.bound, remote: { protocol: this.protocol, address: unmapIPv4(source!), port: req.socket.remotePort ?? 0 }, event: 'refused', reason: refused });
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws, request) => {
      const address = request.socket.remoteAddress;
      const port = request.socket.remotePort;
      if (address === undefined || port === undefined) {
        ws.terminate();
        return;
      }
      const remote: Tuple = { protocol: this.protocol, address: unmapIPv4(address), port };
      const connection = new WsConnection(this.connectionIds.next(), ws, remote, this.bound);
      this.attach(connection, true);
    });
  }

  private attach(connection: WsConnection, inbound = false): boolean {
    if (!this.connections.admit(connection, inbound)) {
      connection.close(new TransportError('TRANSPORT_LIMIT', 'connection limit reached', connection.remote));
      return false;
    }
    const ws = connection.socket;
    ws.on('message', (data: RawData) => this.receive(connection, data));
    ws.on('close', () => this.connections.remove(connection));
    ws.on('error', (error) => publish('transport-error', { transport: this.bound, remote: connection.remote, error }));
    return true;
  }

  private receive(connection: WsConnection, data: RawData): void {
    this.connections.touch(connection);
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    try {
      const message = parseMessage(bytes);
      // The frame is the message (RFC 7118 §5): a Content-Length that disagrees is an error.
      if (message.bodyTruncated) {
        if (message.isRequest && message.method !== 'ACK') void connection.write(badRequest(message, 'Content-Length larger than the frame')).catch(() => undefined);
        return;
      }
      this.connections.carried(connection);
      stampReceived(message, connection.remote);
      this.sink.push({ type: 'message', message, source: connection.remote, local: this.bound, connectionId: connection.id });
    } catch (error) {
      if (!(error instanceof SipParseError)) throw error;
      publish('drop', { transport: this.bound, source: connection.remote, reason: `${error.code}: ${error.message}` });
    }
  }




  protected connect(target: Tuple): WsConnection {
    if (this.stopped) throw new TransportError('TRANSPORT_CLOSED', 'the transport was closed', target);
    const scheme = this.protocol === 'wss' ? 'wss' : 'ws';
    const tls = this.options.tls ?? {};
    const ws = new WebSocket(`${scheme}://${formatHostPort(target.address, target.port)}/`, SIP_SUBPROTOCOL, {
      handshakeTimeout: this.options.connectTimeoutMs ?? 10_000,
      maxPayload: this.maxMessageSize,
      ...(this.protocol === 'wss' ? { ca: tls.ca, rejectUnauthorized: tls.rejectUnauthorized ?? true, servername: tls.servername } : {}),
    });
    const connection = new WsConnection(this.connectionIds.next(), ws, target, this.bound);
    ws.once('error', (error) => {
      connection.failure = TransportError.fromSocketError(error, target);
      publish('connection', { transport: this.bound, remote: target, event: 'failed', error });
      if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
    });
    if (!this.attach(connection)) throw new TransportError('TRANSPORT_LIMIT', 'connection limit reached and no idle connection to close', target);
    return connection;
  }


  close(): Promise<void> {
    this.stopped = true;
    this.connections.closeAll(new TransportError('TRANSPORT_CLOSED', 'the transport was closed'));
    const http = this.http;
    this.http = undefined;
    return new Promise((resolve) => {
      this.wss.close(() => {
        if (!http) return resolve();
        http.closeAllConnections();
        http.close(() => resolve());
      });
    });
  }
}
