import { channel } from 'node:diagnostics_channel';
import { createResponse } from '../message/builder.js';
import { SipParseError } from '../message/parse-error.js';
import type { SipMessage } from '../message/sip-message.js';
import { validateReceived, type ValidationOptions } from '../message/validate.js';
import { TransportError } from '../transport/transport-error.js';
import type { Sent, Target, TransportSelector } from '../transport/transport-selector.js';
import type { TransportEvent } from '../transport/types.js';
import type { TimerQueue } from '../util/timer-queue.js';
import {
  InviteClientTransaction,
  NonInviteClientTransaction,
  type ClientTransactionHost,
  type ClientTransactionUser,
} from './client-transaction.js';
import { clientKey, clientKeyOfResponse, serverKey } from './matching.js';
import {
  InviteServerTransaction,
  NonInviteServerTransaction,
  type ResponseRoute,
  type ServerTransaction,
  type ServerTransactionHost,
} from './server-transaction.js';
import { timerValues, type TimerBase, type TimerValues } from './timers.js';
import type { Transaction } from './transaction.js';

const inChannel = channel('parley:message:in');
const outChannel = channel('parley:message:out');
/** A received message discarded by rule: `{ reason, message }`. */
const dropChannel = channel('parley:transaction:drop');

/** A request the transaction layer hands to the layer above. */
export interface InboundRequest {
  readonly message: SipMessage;
  readonly route: ResponseRoute;
  /** Undefined for an ACK to a 2xx, which belongs to no transaction (§17.1.1.3, RFC 6026). */
  readonly transaction: ServerTransaction | undefined;
  /** For a CANCEL: the INVITE server transaction it matched (§9.2). */
  readonly cancels: ServerTransaction | undefined;
}

/** How the transaction layer reaches the layer above (the stack's TU selector). */
export interface TransactionUpPort {
  request(request: InboundRequest): void;
  /** A server transaction failed after the TU answered (§17.2.1 Timer H). */
  failed(transaction: ServerTransaction, reason: string): void;
  /** A server transaction reached Terminated (the UAS core forgets it for §8.2.2.2). */
  terminated?(transaction: ServerTransaction): void;
}

type ServerTx = InviteServerTransaction | NonInviteServerTransaction;
type ClientTx = InviteClientTransaction | NonInviteClientTransaction;

/**
 * RFC 3261 §17 between the transport selector and the TUs: validates what arrives, matches it to
 * transactions (absorbing retransmissions), creates server transactions for new requests, runs
 * client transactions for requests the TUs send, and offers a stateless path.
 */
export class TransactionLayer {
  private readonly clients = new Map<string, ClientTx>();
  private readonly servers = new Map<string, ServerTx>();
  private readonly values: { reliable: TimerValues; unreliable: TimerValues };
  private readonly clientHost: ClientTransactionHost;
  private readonly serverHost: ServerTransactionHost;

  constructor(
    private readonly selector: TransportSelector,
    readonly timers: TimerQueue,
    base: TimerBase,
    private readonly up: TransactionUpPort,
    private readonly validation: ValidationOptions = {},
  ) {
    this.values = { reliable: timerValues(base, true), unreliable: timerValues(base, false) };
    const terminated = (tx: Transaction<string>): void => {
      if (tx.kind === 'invite-client' || tx.kind === 'non-invite-client') this.clients.delete(tx.id);
      else {
        this.servers.delete(tx.id);
        this.up.terminated?.(tx as ServerTx);
      }
    };
    this.clientHost = {
      timers,
      terminated,
      transmit: async (request, target, tid) => this.trace(await this.selector.transmit(request, target, tid)),
      retransmit: (sent) => this.selector.retransmit(sent),
    };
    this.serverHost = {
      timers,
      terminated,
      respond: async (response, route, tid) => this.trace(await this.selector.respond(response, route, tid)),
      retransmit: (sent) => this.selector.retransmit(sent),
      ackFor2xx: (ack, route) => this.up.request({ message: ack, route, transaction: undefined, cancels: undefined }),
      failed: (transaction, reason) => this.up.failed(transaction, reason),
    };
  }

  /** Live transactions (both kinds). */
  get size(): number {
    return this.clients.size + this.servers.size;
  }

  /** Transactions still working toward a final response. */
  get activeCount(): number {
    let n = 0;
    for (const tx of this.clients.values()) if (tx.active) n++;
    for (const tx of this.servers.values()) if (tx.active) n++;
    return n;
  }

  /** Terminates every transaction at once, timers and all (after a graceful stop's grace). */
  shutdown(): void {
    for (const tx of [...this.clients.values(), ...this.servers.values()]) tx.abandon();
  }

  // ---- from the transport layer -----------------------------------------------------------

  receive(event: TransportEvent): void {
    if (event.type === 'failure') return this.failure(event.tid, event.error);
    if (event.type !== 'message') return;
    const route: ResponseRoute = { source: event.source, connectionId: event.connectionId };
    if (inChannel.hasSubscribers) inChannel.publish({ message: event.message, tuple: event.source });
    try {
      if (event.message.isRequest) this.receiveRequest(event.message, route);
      else this.receiveResponse(event.message);
    } catch (error) {
      // Values the validator did not need can still turn out malformed deep in matching.
      if (!(error instanceof SipParseError)) throw error;
    }
  }

  private receiveRequest(request: SipMessage, route: ResponseRoute): void {
    // Only what makes a transaction impossible is answered here (§17/§18, broken mandatory
    // headers); RFC 3261 §8.2's checks belong to the UAS core, which answers through the
    // transaction this request becomes.
    const verdict = validateReceived(request, this.validation);
    if (verdict.action === 'drop') return;
    if (verdict.action === 'reply') {
      // Answered statelessly: the request never becomes a transaction (§16.3, §18.3).
      const headers: Record<string, string[]> = {};
      for (const [name, value] of verdict.headers) (headers[name] ??= []).push(value);
      this.sendStatelessResponse(createResponse(request, verdict.status, verdict.reason, { headers }), route);
      return;
    }
    const method = request.method;
    if (method === 'ACK') {
      const tx = this.servers.get(serverKey(request));
      // An ACK to a non-2xx matches its INVITE (§17.2.3); an ACK to a 2xx goes to the TU.
      if (tx instanceof InviteServerTransaction) tx.ack(request);
      else this.up.request({ message: request, route, transaction: undefined, cancels: undefined });
      return;
    }
    const key = serverKey(request);
    const existing = this.servers.get(key);
    if (existing) {
      existing.retransmission();
      return;
    }
    const reliable = route.source.protocol !== 'udp';
    const values = reliable ? this.values.reliable : this.values.unreliable;
    const tx: ServerTx =
      method === 'INVITE'
        ? new InviteServerTransaction(key, request, route, reliable, this.serverHost, values)
        : new NonInviteServerTransaction(key, request, route, this.serverHost, values);
    this.servers.set(key, tx);
    let cancels: ServerTransaction | undefined;
    if (method === 'CANCEL') {
      // §9.2: the CANCEL matches the INVITE with the same branch and sent-by; it gets its own
      // transaction. No matching INVITE → 481; one → 200, and the TU answers the INVITE 487.
      const invite = this.servers.get(serverKey(request, 'INVITE'));
      if (!(invite instanceof InviteServerTransaction)) {
        tx.respond(createResponse(request, 481));
        return;
      }
      cancels = invite;
      tx.respond(createResponse(request, 200));
    }
    this.up.request({ message: request, route, transaction: tx, cancels });
  }

  /**
   * Receiving `message` failed on a bug (the inbound queue's error boundary): a request that
   * became a server transaction still waiting for its final response gets 500 (§21.5.1).
   */
  internalError(message: SipMessage): void {
    if (!message.isRequest || message.method === 'ACK') return;
    const tx = this.servers.get(serverKey(message));
    if (tx?.active) tx.respond(createResponse(message, 500));
  }

  private receiveResponse(response: SipMessage): void {
    if (validateReceived(response, this.validation).action !== 'accept') return;
    // §18.1.2: a response whose top Via is not a sent-by we insert was not meant for us.
    if (!this.selector.isOwnSentBy(response.via[0]!)) {
      if (dropChannel.hasSubscribers) dropChannel.publish({ reason: 'not our sent-by (RFC 3261 §18.1.2)', message: response });
      return;
    }
    const key = clientKeyOfResponse(response);
    const tx = key === undefined ? undefined : this.clients.get(key);
    // §17.1.3: a response matching no transaction is handed to the core; with no proxy core
    // here, a stray response is dropped (the 2xx retransmissions of RFC 6026 are matched by
    // the Accepted state while it lasts).
    tx?.receive(response);
  }

  /**
   * A stream connection closed or failed: client transactions whose request went out on it and
   * still wait for a final response fail now with a transport error (RFC 3261 §17.1.4: "the
   * client transaction SHOULD inform the TU that a transport failure has occurred"), instead of
   * waiting for Timer B/F. The response could only come back on that connection (§18.2.2) or
   * on one the server opens to our sent-by, which a peer that went away will not do.
   */
  connectionEnded(connectionId: number, reason: string): void {
    for (const tx of [...this.clients.values()]) {
      if (tx.connectionId === connectionId) tx.transportError(new TransportError('TRANSPORT_CLOSED', `the connection closed: ${reason}`));
    }
  }

  private failure(tid: string | undefined, error: TransportError): void {
    if (tid === undefined) return;
    this.clients.get(tid)?.transportError(error);
    this.servers.get(tid)?.transportError(error);
  }

  // ---- from the TUs -----------------------------------------------------------------------

  /**
   * Starts a client transaction for `request` (which must carry a top Via with a branch) toward
   * `target`.
   */
  request(request: SipMessage, target: Target, user: ClientTransactionUser): ClientTx {
    const branch = request.via[0]?.branch;
    if (!branch) throw new TransportError('TRANSPORT_BAD_ADDRESS', 'a request needs a top Via with a branch');
    const method = request.method;
    const key = clientKey(branch, method);
    const reliable = target.protocol !== 'udp';
    const values = reliable ? this.values.reliable : this.values.unreliable;
    const tx: ClientTx =
      method === 'INVITE'
        ? new InviteClientTransaction(key, request, target, reliable, this.clientHost, values, user)
        : new NonInviteClientTransaction(key, request, target, reliable, this.clientHost, values, user);
    this.clients.set(key, tx);
    tx.start();
    return tx;
  }

  /** Sends without a transaction: proxies, ACKs for 2xx, answers to what matches nothing. */
  async sendStateless(message: SipMessage, target: Target | ResponseRoute): Promise<Sent> {
    const sent = 'protocol' in target ? await this.selector.transmit(message, target) : await this.selector.respond(message, target);
    return this.trace(sent);
  }

  private sendStatelessResponse(response: SipMessage, route: ResponseRoute): void {
    this.selector.respond(response, route).then((sent) => this.trace(sent), () => undefined);
  }

  private trace(sent: Sent): Sent {
    if (outChannel.hasSubscribers) outChannel.publish({ bytes: sent.bytes, tuple: sent.target });
    return sent;
  }
}
