import { channel } from 'node:diagnostics_channel';
import { createCancel, generateBranch } from './message/builder.js';
import { parseRetryAfter } from './message/header-values.js';
import type { SipMessage } from './message/sip-message.js';
import type { Via } from './message/via.js';
import type { SipTarget } from './dns/sip-resolver.js';
import type { TargetList } from './dns/target-list.js';
import type { TargetMarks } from './dns/target-marks.js';
import { localFailure, type ClientTransactionUser, type LocalFailureCause } from './transaction/client-transaction.js';
import type { Sent, Target } from './transport/transport-selector.js';

const failoverChannel = channel('parley:dns:failover');

/** A request sent through the stack: its responses as they arrive. */
export interface ClientRequest {
  /** The request as last sent (after a failover, the copy with the new branch). */
  readonly request: SipMessage;
  /** Where the current transaction went; undefined until the first target is known. */
  readonly target: Target | undefined;
  /** Resolves with the final response; a 408 (timeout) or 503 (transport failure, no DNS target) made locally. */
  readonly final: Promise<SipMessage>;
  onProvisional(handler: (response: SipMessage) => void): this;
  /** RFC 6026: retransmissions of a 2xx to an INVITE (the TU sends its ACK again). */
  on2xx(handler: (response: SipMessage) => void): this;
  /** INVITE only (§9.1): sends a CANCEL once a provisional response has arrived. */
  cancel(): void;
}

/** The client transaction an OutgoingRequest started, as far as it needs to know it. */
export interface StartedTransaction {
  /** A CANCEL went out for it (INVITE only: its 64·T1 give-up starts, §9.1). */
  cancelled(): void;
  /** What the request actually went out on, once sent (see ClientTransaction.transmitted). */
  readonly transmitted: Sent | undefined;
}

/** What an OutgoingRequest needs from the stack. */
export interface OutgoingPort {
  start(message: SipMessage, target: Target, user: ClientTransactionUser): StartedTransaction;
  /** Sends a CANCEL in its own client transaction to exactly `target` (§9.1). */
  sendCancel(cancel: SipMessage, target: Target): void;
  stopping(): boolean;
}

/** RFC 3261 §21.5.4 / RFC 3263 §4.3: the longest a 503's Retry-After blacklists a target. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * One request from the TU, carried through RFC 3263 §4.3 failover: it goes to the first target;
 * a transport failure, a timeout with no response at all, or a 503 marks that target and sends
 * "a new request, which is identical to the previous, but has a different value of the Via branch
 * ID" to the next, until one answers or the list runs out — only then does the TU hear of it.
 */
export class OutgoingRequest implements ClientRequest {
  readonly final: Promise<SipMessage>;
  private current: SipMessage;
  private currentTarget: Target | undefined;
  private currentTuple: SipTarget | undefined;
  private transaction: StartedTransaction | undefined;
  private resolveFinal!: (response: SipMessage) => void;
  private readonly provisionalHandlers: Array<(r: SipMessage) => void> = [];
  private readonly retransmittedHandlers: Array<(r: SipMessage) => void> = [];
  private gotResponse = false;
  private gotProvisional = false;
  private cancelWanted = false;
  private cancelSent = false;
  private settled = false;

  constructor(
    message: SipMessage,
    private readonly port: OutgoingPort,
    private readonly targets: { readonly single: Target } | { readonly uri: string; readonly list: TargetList; readonly marks: TargetMarks; readonly allowTcpSwitch: boolean },
  ) {
    this.current = message;
    this.final = new Promise<SipMessage>((resolve) => (this.resolveFinal = resolve));
    if ('single' in targets) this.attempt(message, targets.single, undefined);
    else void this.tryNext(undefined);
  }

  get request(): SipMessage {
    return this.current;
  }

  get target(): Target | undefined {
    return this.currentTarget;
  }

  onProvisional(handler: (response: SipMessage) => void): this {
    this.provisionalHandlers.push(handler);
    return this;
  }

  on2xx(handler: (response: SipMessage) => void): this {
    this.retransmittedHandlers.push(handler);
    return this;
  }

  cancel(): void {
    if (this.current.method !== 'INVITE' || this.settled) return;
    // §9.1: "If no provisional response has been received, the CANCEL request MUST NOT be sent;
    // rather, the client MUST wait for the arrival of a provisional response."
    if (this.gotProvisional) this.sendCancel();
    else this.cancelWanted = true;
  }

  private sendCancel(): void {
    // Not while stopping: the INVITE's own timers end it then.
    if (this.port.stopping() || this.cancelSent || !this.transaction) return;
    // §9.1: "The destination address, port, and transport for the CANCEL MUST be identical to those
    // used to send the original request" — what the INVITE went out on, not the target it was
    // given (a UDP INVITE over 1300 bytes went over TCP, §18.1.1), and never switched itself.
    // A provisional came, so the INVITE is on the wire and `transmitted` is known (else: at the next one).
    const sent = this.transaction.transmitted;
    if (!sent) {
      this.cancelWanted = true;
      return;
    }
    this.cancelSent = true;
    const target: Target = { protocol: sent.target.protocol, address: sent.target.address, port: sent.target.port, allowTcpSwitch: false };
    // The INVITE as sent: its top Via carries the sent-by and transport the transport layer gave it.
    this.port.sendCancel(createCancel(this.current), target);
    this.transaction.cancelled();
  }

  private attempt(message: SipMessage, target: Target, tuple: SipTarget | undefined): void {
    this.current = message;
    this.currentTarget = target;
    this.currentTuple = tuple;
    this.gotResponse = false;
    const user: ClientTransactionUser = {
      provisional: (r) => {
        this.gotResponse = true;
        this.gotProvisional = true;
        if (this.cancelWanted) {
          this.cancelWanted = false;
          this.sendCancel();
        }
        for (const h of this.provisionalHandlers) h(r);
      },
      final: (r, cause) => this.finalFromTransaction(r, cause),
      retransmitted2xx: (r) => {
        for (const h of this.retransmittedHandlers) h(r);
      },
    };
    this.transaction = this.port.start(message, target, user);
  }

  private finalFromTransaction(response: SipMessage, cause: LocalFailureCause | undefined): void {
    const dns = 'list' in this.targets ? this.targets : undefined;
    const tuple = this.currentTuple;
    if (!dns || !tuple || this.cancelSent || this.cancelWanted || this.port.stopping()) {
      this.finish(response);
      return;
    }
    // RFC 3263 §4.3: what counts as failure, and the mark each failure leaves (docs/dns.md).
    let failed = true;
    if (cause === 'transport') dns.marks.black(tuple);
    else if (cause === 'timeout' && !this.gotResponse) dns.marks.grey(tuple);
    else if (cause === undefined && response.status === 503) {
      const seconds = parseRetryAfter(response.header('retry-after'));
      if (seconds !== undefined) dns.marks.black(tuple, Math.min(seconds * 1000, MAX_RETRY_AFTER_MS));
    } else failed = false;
    if (!failed) {
      if (cause === undefined) dns.marks.white(tuple, dns.list.key);
      this.finish(response);
      return;
    }
    void this.tryNext(response);
  }

  /** The next target from the list, or the TU hears `last` (or a 503 when there was no target at all). */
  private async tryNext(last: SipMessage | undefined): Promise<void> {
    const dns = this.targets as { uri: string; list: TargetList; marks: TargetMarks; allowTcpSwitch: boolean };
    const next = await dns.list.next();
    if (!next) {
      const why = `no DNS targets for ${dns.uri}${dns.list.error ? ` (${dns.list.error.code}: ${dns.list.error.message})` : ''}`;
      this.finish(last ?? localFailure(this.current, 503, why));
      return;
    }
    if (this.port.stopping()) {
      this.finish(last ?? localFailure(this.current, 503, 'the stack is stopping'));
      return;
    }
    let message = this.current;
    if (last) {
      message = this.current.clone();
      message.update<Via>('via', 0, (via) => (via.branch = generateBranch()));
      if (failoverChannel.hasSubscribers) {
        failoverChannel.publish({ from: this.currentTuple, to: next, status: last.status, callId: message.callId });
      }
    }
    this.attempt(message, targetFrom(next, dns.allowTcpSwitch), next);
  }

  private finish(response: SipMessage): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveFinal(response);
  }
}

/** A resolver's target as the transport selector takes it. */
export function targetFrom(target: SipTarget, allowTcpSwitch: boolean): Target {
  return { protocol: target.transport, address: target.address, port: target.port, allowTcpSwitch };
}
