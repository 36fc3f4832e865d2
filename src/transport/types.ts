import type { SipMessage } from '../message/sip-message.js';
import type { TransportError } from './transport-error.js';

export type TransportProtocol = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** One end of a flow. `address` never carries IPv6 brackets. */
export interface Tuple {
  readonly protocol: TransportProtocol;
  readonly address: string;
  readonly port: number;
}

/** What a transport pushes to the layer above (RFC 3261 §18: messages and failures travel up as data). */
export type TransportEvent =
  | {
      readonly type: 'message';
      readonly message: SipMessage;
      /** Where the bytes came from: the datagram's source, or the connection's remote end. */
      readonly source: Tuple;
      /** The local address and port they arrived on. */
      readonly local: Tuple;
      /** The stream connection (undefined for UDP): responses go back on it (§18.2.2). */
      readonly connectionId: number | undefined;
    }
  | {
      readonly type: 'failure';
      /** The transaction id the sender gave, so the transaction layer can fail over or answer 503. */
      readonly tid: string | undefined;
      readonly target: Tuple;
      readonly error: TransportError;
    }
  | {
      /** RFC 5626 §4.4.1: a flow we opened stopped answering keep-alives, or died. */
      readonly type: 'flow-failed';
      readonly connectionId: number;
      readonly target: Tuple;
      readonly reason: string;
    }
  | {
      /** A stream connection (either direction) closed: RFC 5626 §5.3 / §6 flows end with it. */
      readonly type: 'flow-closed';
      readonly connectionId: number;
      readonly target: Tuple;
      readonly reason: string;
    };

/** The contract of every transport (reSIProcate's Transport). */
export interface Transport {
  readonly protocol: TransportProtocol;
  /** False for UDP only: reliability decides the transaction layer's timers. */
  readonly reliable: boolean;
  /** The bound address and real port; valid after `start()`. */
  readonly local: Tuple;
  start(): Promise<void>;
  /**
   * Sends already-serialized bytes. Resolves with the stream connection used (undefined for
   * UDP); rejects with `TransportError`, after pushing a `failure` event carrying `tid`.
   */
  send(bytes: Buffer, target: Tuple, tid?: string): Promise<number | undefined>;
  /** Whether a stream connection with this id is still open (for §18.2.2 responses). */
  hasConnection(connectionId: number): boolean;
  /**
   * RFC 5626 §4.4.1: CRLFCRLF keep-alives every `intervalMs` (0 stops them) on the connection to
   * `remote`; false when there is none (and always for datagram transports).
   */
  keepAlive?(remote: Tuple, intervalMs: number): boolean;
  /** Sends on a given open connection; rejects with TRANSPORT_CLOSED when it is gone. */
  sendOnConnection(connectionId: number, bytes: Buffer, tid?: string): Promise<number>;
  close(): Promise<void>;
}
