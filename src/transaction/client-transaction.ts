import { createNonSuccessAck, createResponse } from '../message/builder.js';
import type { SipMessage } from '../message/sip-message.js';
import type { Sent, Target } from '../transport/transport-selector.js';
import type { TransportError } from '../transport/transport-error.js';
import { Transaction, type TransactionHost } from './transaction.js';
import type { TimerValues } from './timers.js';

/** What the owner of a client transaction hears. */
export interface ClientTransactionUser {
  provisional(response: SipMessage): void;
  /**
   * The final response, or a 408 / 503 made locally, then with `cause` saying why: 'timeout'
   * (Timer B / F, RFC 3263 §4.3 "without ever having received any response" when no provisional
   * came first) or 'transport' (the transport layer could not deliver).
   */
  final(response: SipMessage, cause?: LocalFailureCause): void;
  /** RFC 6026 §7.2: 2xx retransmissions to an INVITE, after the first, for the TU to ACK again. */
  retransmitted2xx(response: SipMessage): void;
}

/** What a client transaction needs to put bytes on the wire. */
export interface ClientTransactionHost extends TransactionHost {
  /** First transmission of the request; resolves with what was sent (kept for retransmission). */
  transmit(request: SipMessage, target: Target, tid: string): Promise<Sent>;
  retransmit(sent: Sent): Promise<void>;
}

/** Why a client transaction ended without a final response from the network. */
export type LocalFailureCause = 'timeout' | 'transport';

type InviteState = 'calling' | 'proceeding' | 'completed' | 'accepted' | 'terminated';
type NonInviteState = 'trying' | 'proceeding' | 'completed' | 'terminated';

/** A 408 or 503 the stack makes itself, naming why (RFC 3261 §8.1.3.1, §17.1.1.2, §17.1.2.2). */
export function localFailure(request: SipMessage, status: 408 | 430 | 487 | 503 | 513, why: string): SipMessage {
  return createResponse(request, status, undefined, { headers: { Warning: `399 parley "${why.replace(/"/g, "'")}"` } });
}

/**
 * What the TU hears when the request could not be sent: 503 (§8.1.3.1: "treated as… a 503"), or
 * 430 when it had to go on an RFC 5626 flow that is gone (§5.3: never redialled).
 */
function transportFailure(request: SipMessage, error: TransportError): SipMessage {
  const flowFailed = error.code === 'TRANSPORT_FLOW_FAILED';
  return localFailure(request, flowFailed ? 430 : 503, `transport failure: ${error.message}`);
}

/**
 * What both client machines share: the request, where it goes, who hears the outcome, and the
 * first transmission, whose bytes are kept for every retransmission.
 */
abstract class ClientTransaction<S extends string> extends Transaction<S> {
  protected sent: Sent | undefined;

  constructor(
    id: string,
    initial: S,
    readonly request: SipMessage,
    private readonly target: Target,
    protected readonly reliable: boolean,
    protected override readonly host: ClientTransactionHost,
    values: TimerValues,
    protected readonly user: ClientTransactionUser,
  ) {
    super(id, initial, host, values);
  }

  abstract receive(response: SipMessage): void;
  abstract transportError(error: TransportError): void;

  /** The stream connection the request went out on (undefined over UDP, or before it was sent). */
  get connectionId(): number | undefined {
    return this.sent?.connectionId;
  }

  /**
   * What the request actually went out on — transport, destination, connection and bytes — once
   * it has been sent; undefined before. It can differ from the target the transaction was given:
   * a UDP request over 1300 bytes moves to TCP (RFC 3261 §18.1.1). §9.1's CANCEL and §17.1.1.3's
   * ACK must go exactly here.
   */
  get transmitted(): Sent | undefined {
    return this.sent;
  }

  /**
   * Whether retransmission timers are off (§17.1.1.2 Timer A, §17.1.2.2 Timer E: "If an unreliable
   * transport is being used"): decided by what the request went out on, so a UDP request that
   * §18.1.1 moved to TCP is not sent again over the stream.
   */
  protected get sentReliably(): boolean {
    return this.sent ? this.sent.target.protocol !== 'udp' : this.reliable;
  }

  /** Sends the request once; `sent` runs with the kept bytes, a failure ends the transaction. */
  protected transmitFirst(sent: () => void): void {
    this.host.transmit(this.request, this.target, this.id).then(
      (result) => {
        this.sent = result;
        sent();
      },
      (error: TransportError) => this.transportError(error),
    );
  }
}

/**
 * INVITE client transaction: RFC 3261 §17.1.1 (Figure 5) with RFC 6026 §7.2 (Figure 3).
 *
 *   calling ──1xx──▶ proceeding ──300-699──▶ completed ──Timer D──▶ terminated
 *      │  └─300-699──────────────────────────▲    ▲
 *      ├──2xx──▶ accepted ◀──2xx── proceeding      │
 *      │            └──Timer M──▶ terminated       │
 *      └──Timer B / transport error──▶ terminated  │
 */
export class InviteClientTransaction extends ClientTransaction<InviteState> {
  readonly kind = 'invite-client' as const;
  protected readonly table: Record<InviteState, readonly InviteState[]> = {
    calling: ['proceeding', 'completed', 'accepted', 'terminated'],
    proceeding: ['completed', 'accepted', 'terminated'],
    completed: ['terminated'],
    accepted: ['terminated'],
    terminated: [],
  };
  private ackBytes: Buffer | undefined;

  constructor(
    id: string,
    request: SipMessage,
    target: Target,
    reliable: boolean,
    host: ClientTransactionHost,
    values: TimerValues,
    user: ClientTransactionUser,
  ) {
    super(id, 'calling', request, target, reliable, host, values, user);
  }

  /** §17.1.1.2: send the INVITE; Timer A (unreliable) and Timer B start. */
  start(): void {
    this.transmitFirst(() => {
      if (this.state === 'calling' && !this.sentReliably) this.armA(this.values.A);
    });
    this.startTimer('B', this.values.B, () => {
      // "If the client transaction is still in the Calling state when timer B fires, the client
      // transaction SHOULD inform the TU that a timeout has occurred."
      if (this.state !== 'calling') return;
      this.transition('terminated');
      this.user.final(localFailure(this.request, 408, 'no response to the INVITE (Timer B)'), 'timeout');
    });
  }

  private armA(interval: number): void {
    this.startTimer('A', interval, () => {
      if (this.state !== 'calling' || !this.sent) return;
      // "…retransmit the request… and reset the timer with a value of 2*T1" — doubling, no cap.
      this.host.retransmit(this.sent).catch((error: TransportError) => this.transportError(error));
      this.armA(interval * 2);
    });
  }

  receive(response: SipMessage): void {
    const status = response.status;
    switch (this.state) {
      case 'calling':
      case 'proceeding':
        if (status < 200) {
          // "…the client transaction SHOULD NOT retransmit the request any longer" (§17.1.1.2).
          this.stopTimersExcept('cancel');
          this.transition('proceeding');
          this.user.provisional(response);
        } else if (status < 300) {
          // RFC 6026 §7.2: a 2xx moves to Accepted and goes to the TU; Timer M starts.
          this.stopTimersExcept();
          this.transition('accepted');
          this.startTimer('M', this.values.M, () => this.transition('terminated'));
          this.user.final(response);
        } else {
          // §17.1.1.2: 300-699 → Completed, ACK sent, response to the TU, Timer D.
          this.stopTimersExcept();
          this.transition('completed');
          this.sendAck(response);
          this.startTimer('D', this.values.D, () => this.transition('terminated'));
          this.user.final(response);
        }
        return;
      case 'completed':
        // "Any retransmissions of the final response… MUST cause the ACK to be re-passed to the
        // transport layer… but the newly received response MUST NOT be passed up to the TU."
        if (status >= 300) this.sendAck(response);
        return;
      case 'accepted':
        // RFC 6026 §7.2: 2xx retransmissions pass to the TU (which sends the ACK again).
        if (status >= 200 && status < 300) this.user.retransmitted2xx(response);
        return;
      case 'terminated':
        return;
    }
  }

  transportError(error: TransportError): void {
    if (this.state === 'calling' || this.state === 'proceeding') {
      this.transition('terminated');
      this.user.final(transportFailure(this.request, error), 'transport');
    } else if (this.state === 'completed') this.transition('terminated');
  }

  /**
   * A CANCEL went out for this INVITE (§9.1): "If there is no final response for the original
   * request in 64*T1 seconds… the client SHOULD then consider the original transaction cancelled
   * and SHOULD destroy the client transaction handling the original request."
   */
  cancelled(): void {
    if (this.state !== 'calling' && this.state !== 'proceeding') return;
    this.startTimer('cancel', this.values.B, () => {
      if (this.state !== 'calling' && this.state !== 'proceeding') return;
      this.transition('terminated');
      this.user.final(localFailure(this.request, 487, 'no final response within 64*T1 of the CANCEL'));
    });
  }

  /**
   * §17.1.1.3: the ACK for a non-2xx final response (built by `createNonSuccessAck` from the INVITE
   * as it was sent, so its Via is the one the server transaction matches), serialized once and
   * re-sent for each retransmitted final. "The ACK MUST be sent to the same address, port, and
   * transport to which the original request was sent": on the INVITE's own `Sent`.
   */
  private sendAck(response: SipMessage): void {
    if (!this.sent) return;
    this.ackBytes ??= createNonSuccessAck(this.request, response).toBuffer();
    void this.host.retransmit({ ...this.sent, bytes: this.ackBytes }).catch(() => undefined);
  }
}

/**
 * Non-INVITE client transaction: RFC 3261 §17.1.2 (Figure 6).
 *
 *   trying ──1xx──▶ proceeding ──200-699──▶ completed ──Timer K──▶ terminated
 *     └──200-699────────────────────────────▲
 *   trying / proceeding ──Timer F / transport error──▶ terminated
 */
export class NonInviteClientTransaction extends ClientTransaction<NonInviteState> {
  readonly kind = 'non-invite-client' as const;
  protected readonly table: Record<NonInviteState, readonly NonInviteState[]> = {
    trying: ['proceeding', 'completed', 'terminated'],
    proceeding: ['completed', 'terminated'],
    completed: ['terminated'],
    terminated: [],
  };
  constructor(
    id: string,
    request: SipMessage,
    target: Target,
    reliable: boolean,
    host: ClientTransactionHost,
    values: TimerValues,
    user: ClientTransactionUser,
  ) {
    super(id, 'trying', request, target, reliable, host, values, user);
  }

  /** §17.1.2.2: send the request; Timer E (unreliable) and Timer F start. */
  start(): void {
    this.transmitFirst(() => {
      if (!this.sentReliably && (this.state === 'trying' || this.state === 'proceeding')) this.armE(this.values.E);
    });
    this.startTimer('F', this.values.F, () => {
      if (this.state !== 'trying' && this.state !== 'proceeding') return;
      this.transition('terminated');
      this.user.final(localFailure(this.request, 408, 'no final response (Timer F)'), 'timeout');
    });
  }

  private armE(interval: number): void {
    this.startTimer('E', interval, () => {
      if ((this.state !== 'trying' && this.state !== 'proceeding') || !this.sent) return;
      this.host.retransmit(this.sent).catch((error: TransportError) => this.transportError(error));
      // Trying: "reset the timer with a value of MIN(2*T1, T2)"… doubling up to T2;
      // Proceeding: "reset with a value of T2".
      this.armE(this.state === 'proceeding' ? this.values.T2 : Math.min(interval * 2, this.values.T2));
    });
  }

  receive(response: SipMessage): void {
    const status = response.status;
    if (this.state === 'trying' || this.state === 'proceeding') {
      if (status < 200) {
        this.transition('proceeding');
        this.user.provisional(response);
      } else {
        this.stopTimersExcept();
        this.transition('completed');
        this.startTimer('K', this.values.K, () => this.transition('terminated'));
        this.user.final(response);
      }
    }
    // Completed: "any retransmissions of the final response… are absorbed" (§17.1.2.2).
  }

  transportError(error: TransportError): void {
    if (this.state === 'trying' || this.state === 'proceeding') {
      this.transition('terminated');
      this.user.final(transportFailure(this.request, error), 'transport');
    }
  }
}
