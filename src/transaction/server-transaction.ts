import { createResponse } from '../message/builder.js';
import type { SipMessage } from '../message/sip-message.js';
import type { Sent } from '../transport/transport-selector.js';
import type { TransportError } from '../transport/transport-error.js';
import type { Tuple } from '../transport/types.js';
import { Transaction, type TransactionHost } from './transaction.js';
import { TRYING_DELAY_MS, type TimerValues } from './timers.js';

/** Where a server transaction's responses go (RFC 3261 §18.2.2). */
export interface ResponseRoute {
  readonly source: Tuple;
  readonly connectionId: number | undefined;
}

/** What a server transaction needs to put responses on the wire. */
export interface ServerTransactionHost extends TransactionHost {
  respond(response: SipMessage, route: ResponseRoute, tid: string): Promise<Sent>;
  retransmit(sent: Sent): Promise<void>;
  /** RFC 6026 §7.1: an ACK for a 2xx that reached the Accepted state goes to the TU. */
  ackFor2xx(ack: SipMessage, route: ResponseRoute): void;
  /** §17.2.1: Timer H fired — the ACK never came; the TU must hear of the failure. */
  failed(transaction: ServerTransaction, reason: string): void;
}

type InviteState = 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';
type NonInviteState = 'trying' | 'proceeding' | 'completed' | 'terminated';

/** The interface a TU answers a request through (both server machines). */
export interface ServerTransaction {
  readonly id: string;
  readonly request: SipMessage;
  readonly state: string;
  readonly terminated: boolean;
  /** Sends a response through the transaction. */
  respond(response: SipMessage): void;
}

/**
 * INVITE server transaction: RFC 3261 §17.2.1 (Figure 7) with RFC 6026 §7.1 (Figure 5).
 *
 *   proceeding ──TU 300-699──▶ completed ──ACK──▶ confirmed ──Timer I──▶ terminated
 *      │                          └──Timer H / transport error──▶ terminated
 *      └──TU 2xx──▶ accepted ──Timer L──▶ terminated
 */
export class InviteServerTransaction extends Transaction<InviteState> implements ServerTransaction {
  readonly kind = 'invite-server' as const;
  protected readonly table: Record<InviteState, readonly InviteState[]> = {
    proceeding: ['completed', 'accepted', 'terminated'],
    completed: ['confirmed', 'terminated'],
    confirmed: ['terminated'],
    accepted: ['terminated'],
    terminated: [],
  };
  private lastSent: Sent | undefined;
  /** The latest response handed to the transport: a slower earlier send never overwrites it. */
  private lastBytes: Buffer | undefined;
  private answered = false;

  constructor(
    id: string,
    readonly request: SipMessage,
    private readonly route: ResponseRoute,
    private readonly reliable: boolean,
    protected override readonly host: ServerTransactionHost,
    values: TimerValues,
  ) {
    super(id, 'proceeding', host, values);
    // §17.2.1: "…the server transaction MUST generate a 100 (Trying) response unless it knows that
    // the TU will generate a provisional or final response within 200 ms".
    this.startTimer('trying', TRYING_DELAY_MS, () => {
      if (!this.answered && this.state === 'proceeding') this.send(createResponse(this.request, 100));
    });
  }

  respond(response: SipMessage): void {
    const status = response.status;
    this.answered = true;
    this.stopTimer('trying');
    switch (this.state) {
      case 'proceeding':
        if (status < 200) this.send(response);
        else if (status < 300) {
          // RFC 6026 §7.1: 2xx → Accepted; Timer L; the TU retransmits the 2xx (§13.3.1.4).
          this.transition('accepted');
          this.send(response);
          this.startTimer('L', this.values.L, () => this.transition('terminated'));
        } else {
          this.transition('completed');
          this.send(response);
          if (!this.reliable) this.armG(this.values.G);
          this.startTimer('H', this.values.H, () => {
            // "…MUST transition to the Terminated state, and MUST indicate to the TU that a
            // transaction failure has occurred" (§17.2.1).
            this.transition('terminated');
            this.host.failed(this, 'no ACK for the final response (Timer H)');
          });
        }
        return;
      case 'accepted':
        // RFC 6026 §7.1: "…2xx responses from the TU… are passed to the transport layer".
        if (status >= 200 && status < 300) this.send(response);
        return;
      default:
        return;
    }
  }

  /** A retransmission of the INVITE (§17.2.1): the last provisional or the final again. */
  retransmission(): void {
    if (this.state === 'proceeding' || this.state === 'completed') {
      if (this.lastSent) this.host.retransmit(this.lastSent).catch((error: TransportError) => this.transportError(error));
    }
    // Accepted: "the retransmitted INVITE… is absorbed" (RFC 6026 §7.1); Confirmed: absorbed.
  }

  ack(ack: SipMessage): void {
    if (this.state === 'completed') {
      // §17.2.1: ACK → Confirmed; Timer G stops; Timer I starts.
      this.stopTimersExcept();
      this.transition('confirmed');
      this.startTimer('I', this.values.I, () => this.transition('terminated'));
    } else if (this.state === 'accepted') {
      // RFC 6026 §7.1: the ACK for a 2xx is passed to the TU.
      this.host.ackFor2xx(ack, this.route);
    }
  }

  /**
   * RFC 6026 §7.1: "A server transaction MUST NOT discard transaction state based only on
   * encountering a non-recoverable transport error when sending a response. Instead, the
   * associated INVITE server transaction state machine MUST remain in its current state." Its
   * timers end it; meanwhile retransmitted INVITEs are absorbed.
   */
  transportError(_error: TransportError): void {
    this.transportFailed = true;
  }

  /** Whether a response could not be sent (the TU is told through diagnostics only). */
  transportFailed = false;

  private armG(interval: number): void {
    this.startTimer('G', interval, () => {
      if (this.state !== 'completed' || !this.lastSent) return;
      this.host.retransmit(this.lastSent).catch((error: TransportError) => this.transportError(error));
      this.armG(Math.min(interval * 2, this.values.T2));
    });
  }

  private send(response: SipMessage): void {
    const bytes = (this.lastBytes = response.toBuffer());
    this.host.respond(response, this.route, this.id).then(
      (sent) => {
        if (bytes === this.lastBytes) this.lastSent = sent;
      },
      (error: TransportError) => this.transportError(error),
    );
  }
}

/**
 * Non-INVITE server transaction: RFC 3261 §17.2.2 (Figure 8).
 *
 *   trying ──TU 1xx──▶ proceeding ──TU 200-699──▶ completed ──Timer J──▶ terminated
 *     └──TU 200-699─────────────────────────────▲
 */
export class NonInviteServerTransaction extends Transaction<NonInviteState> implements ServerTransaction {
  readonly kind = 'non-invite-server' as const;
  protected readonly table: Record<NonInviteState, readonly NonInviteState[]> = {
    trying: ['proceeding', 'completed', 'terminated'],
    proceeding: ['completed', 'terminated'],
    completed: ['terminated'],
    terminated: [],
  };
  private lastSent: Sent | undefined;
  private lastBytes: Buffer | undefined;

  constructor(
    id: string,
    readonly request: SipMessage,
    private readonly route: ResponseRoute,
    protected override readonly host: ServerTransactionHost,
    values: TimerValues,
  ) {
    super(id, 'trying', host, values);
  }

  respond(response: SipMessage): void {
    if (this.state !== 'trying' && this.state !== 'proceeding') return;
    if (response.status < 200) this.transition('proceeding');
    else {
      this.transition('completed');
      this.startTimer('J', this.values.J, () => this.transition('terminated'));
    }
    // The transport selector may complete the response (a Contact it fills in) and serialize it
    // anew, so the bytes it sent are not these: what is compared is which response was latest.
    const bytes = (this.lastBytes = response.toBuffer());
    this.host.respond(response, this.route, this.id).then(
      (sent) => {
        if (bytes === this.lastBytes) this.lastSent = sent;
      },
      (error: TransportError) => this.transportError(error),
    );
  }

  /** §17.2.2: Trying absorbs retransmissions; Proceeding and Completed resend the last response. */
  retransmission(): void {
    if ((this.state === 'proceeding' || this.state === 'completed') && this.lastSent) {
      this.host.retransmit(this.lastSent).catch((error: TransportError) => this.transportError(error));
    }
  }

  transportError(_error: TransportError): void {
    if (this.state !== 'terminated') this.transition('terminated');
  }
}
