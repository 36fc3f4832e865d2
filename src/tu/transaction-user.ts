import { createResponse, type ResponseInit } from '../message/builder.js';
import type { SipMessage } from '../message/sip-message.js';
import type { ServerTransaction } from '../transaction/server-transaction.js';
import type { InboundRequest } from '../transaction/transaction-layer.js';
import type { Tuple } from '../transport/types.js';

/** A request as a TU receives it, with the means to answer it. */
export interface ServerRequest {
  readonly message: SipMessage;
  readonly source: Tuple;
  readonly connectionId: number | undefined;
  /** Undefined for an ACK to a 2xx (§17.1.1.3, RFC 6026): it belongs to no transaction. */
  readonly transaction: ServerTransaction | undefined;
  /** For a CANCEL: the INVITE server transaction it cancels (already answered 200, §9.2). */
  readonly cancels: ServerTransaction | undefined;
  /** Builds a response (RFC 3261 §8.2.6), sends it through the transaction, and returns it. */
  respond(status: number, reason?: string, init?: ResponseInit): SipMessage;
  /** Sends a response built by hand through the transaction. */
  send(response: SipMessage): void;
}

/**
 * The layer above the transaction layer: what the stack hands requests to. A TU that returns a
 * promise is busy until it settles: its queue waits (see `tuConcurrency`), and under overload
 * new requests for it are refused with 503 instead of piling up.
 */
export interface TransactionUser {
  onRequest(request: ServerRequest): void | Promise<void>;
  /** A server transaction of this TU's failed after it answered: an INVITE's final response got
   *  no ACK within 64·T1 (RFC 3261 §17.2.1, Timer H). */
  onTransactionFailure?(transaction: ServerTransaction, reason: string): void;
}

/** Which requests a TU wants (all given conditions must hold). */
export interface TuFilter {
  /** Methods, case-sensitive (RFC 3261 §7.1). */
  methods?: readonly string[];
  /** Request-URI hosts, compared case-insensitively. */
  domains?: readonly string[];
  /** Request-URI users. */
  users?: readonly string[];
  match?: (request: SipMessage) => boolean;
}

export class InboundServerRequest implements ServerRequest {
  readonly message: SipMessage;
  readonly source: Tuple;
  readonly connectionId: number | undefined;
  readonly transaction: ServerTransaction | undefined;
  readonly cancels: ServerTransaction | undefined;

  constructor(inbound: InboundRequest) {
    this.message = inbound.message;
    this.source = inbound.route.source;
    this.connectionId = inbound.route.connectionId;
    this.transaction = inbound.transaction;
    this.cancels = inbound.cancels;
  }

  respond(status: number, reason?: string, init?: ResponseInit): SipMessage {
    const response = createResponse(this.message, status, reason, init);
    this.send(response);
    return response;
  }

  send(response: SipMessage): void {
    this.transaction?.respond(response);
  }
}
