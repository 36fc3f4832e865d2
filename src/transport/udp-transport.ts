import { createSocket, type Socket } from 'node:dgram';
import type { ParseLimits } from '../message/scanner.js';
import type { Sink } from '../util/fifo.js';
import { family } from './address.js';
import { acceptDatagram, stampReceived } from './inbound.js';
import { publish } from './diagnostics.js';
import { TransportError } from './transport-error.js';
import type { Transport, TransportEvent, Tuple } from './types.js';

export interface UdpTransportOptions {
  address: string;
  port: number;
  sink: Sink<TransportEvent>;
  /** Largest datagram sent or accepted, bytes. Default 65,507 (the IPv4 UDP maximum). */
  maxMessageSize?: number;
  limits?: ParseLimits;
}

/**
 * SIP over UDP (RFC 3261 §18): one message per datagram, unreliable (the transaction layer
 * retransmits), IPv4 or IPv6 by the bound address.
 */
export class UdpTransport implements Transport {
  readonly protocol = 'udp' as const;
  readonly reliable = false;
  private socket: Socket | undefined;
  private bound: Tuple;
  private readonly sink: Sink<TransportEvent>;
  private readonly maxMessageSize: number;
  private readonly limits: ParseLimits | undefined;

  constructor(options: UdpTransportOptions) {
    this.bound = { protocol: 'udp', address: options.address, port: options.port };
    this.sink = options.sink;
    this.maxMessageSize = options.maxMessageSize ?? 65_507;
    this.limits = options.limits;
  }

  get local(): Tuple {
    return this.bound;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      // ipv6Only: a socket bound to an IPv6 address carries IPv6 only (no mapped IPv4 peers).
      const socket =
        family(this.bound.address) === 6 ? createSocket({ type: 'udp6', ipv6Only: true }) : createSocket({ type: 'udp4' });
      const onError = (error: Error): void => reject(TransportError.fromSocketError(error, this.bound));
      socket.once('error', onError);
      socket.on('message', (bytes, info) => this.receive(bytes, info.address, info.port));
      socket.bind(this.bound.port, this.bound.address, () => {
        socket.off('error', onError);
        // An ICMP error on one send must not take the socket down; sends report their own errors.
        socket.on('error', (error) => publish('transport-error', { transport: this.bound, error }));
        const addr = socket.address();
        this.bound = { protocol: 'udp', address: addr.address, port: addr.port };
        this.socket = socket;
        resolve();
      });
    });
  }

  private receive(bytes: Buffer, address: string, port: number): void {
    if (bytes.length > this.maxMessageSize) return;
    const source: Tuple = { protocol: 'udp', address, port };
    const outcome = acceptDatagram(bytes, this.limits);
    switch (outcome.action) {
      case 'drop':
        publish('drop', { transport: this.bound, source, reason: outcome.reason });
        return;
      case 'reply':
        this.socket?.send(outcome.bytes, port, address);
        return;
      case 'deliver':
        stampReceived(outcome.message, source);
        this.sink.push({ type: 'message', message: outcome.message, source, local: this.bound, connectionId: undefined });
    }
  }

  send(bytes: Buffer, target: Tuple, tid?: string): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      const fail = (error: TransportError): void => {
        this.sink.push({ type: 'failure', tid, target, error });
        reject(error);
      };
      const socket = this.socket;
      if (!socket) return fail(new TransportError('TRANSPORT_CLOSED', 'the UDP transport is not running', target));
      if (bytes.length > this.maxMessageSize) {
        return fail(new TransportError('TRANSPORT_TOO_LARGE', `${bytes.length} bytes is over the UDP limit of ${this.maxMessageSize}`, target));
      }
      socket.send(bytes, target.port, target.address, (error) => {
        if (error) fail(TransportError.fromSocketError(error, target));
        else resolve(undefined);
      });
    });
  }

  hasConnection(): boolean {
    return false;
  }

  sendOnConnection(connectionId: number): Promise<number> {
    return Promise.reject(new TransportError('TRANSPORT_CLOSED', `UDP has no connection ${connectionId}`));
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }
}
