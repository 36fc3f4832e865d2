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
  /**
   * What this TU supports, for the UAS core's §8.2 checks (the stack's defaults where absent); a
   * function when it depends on the request (a DUM takes more methods inside dialogs than out).
   */
  readonly profile?: UasProfile | ((request: SipMessage) => UasProfile);
  onRequest(request: ServerRequest): void | Promise<void>;
  /** The UAS core answered one of this TU's requests itself (a §8.2 check failed, or 503). */
  refused?(request: SipMessage, status: number): void;
  /** A server transaction of this TU's failed after it answered: an INVITE's final response got
   *  no ACK within 64·T1 (RFC 3261 §17.2.1, Timer H). */
  onTransactionFailure?(transaction: ServerTransaction, reason: string): void;
}

/**
 * What a TU implements, as RFC 3261 §8.2 asks of a UAS: the UAS core answers requests outside it
 * (405/501 with Allow, 416, 420 with Unsupported, 415 with Accept) before the TU sees them.
 */
export interface UasProfile {
  /** Methods the TU implements (§8.2.1); a known method outside them gets 405, an unknown one 501. */
  readonly methods?: readonly string[];
  /** Request-URI schemes (§8.2.2.1). Default sip, sips, tel. */
  readonly schemes?: readonly string[];
  /** Option tags the TU implements (§8.2.2.3). */
  readonly extensions?: readonly string[];
  /** Methods whose Require the TU checks at a step of its own (a registrar: §10.3 step 2 comes after step 1). */
  readonly tuChecksRequire?: readonly string[];
  /** Body types the TU can process (§8.2.3); `type/*` wildcards allowed, and the any-type wildcard leaves it to the TU. */
  readonly bodyTypes?: readonly string[];
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
