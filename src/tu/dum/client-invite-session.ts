import type { SipMessage } from '../../message/sip-message.js';
import { Dialog } from './dialog.js';
import type { DialogUsageManager } from './dialog-usage-manager.js';
import type { DumRequest } from './dum-request.js';
import { InviteSession, type SessionBody } from './invite-session.js';

export interface InviteOptions extends SessionBody {
  /** The Request-URI and To. */
  to: string;
  headers?: Record<string, string | string[]>;
}

/**
 * The caller's side of an INVITE session (RFC 3261 §13.2): sends the offer, hears provisional
 * responses, ACKs the 2xx itself (§13.2.2.4) — again for each retransmission, and answers a 2xx
 * from a second fork with ACK and BYE — and CANCELs on request (§9.1).
 */
export class ClientInviteSession extends InviteSession {
  /** The INVITE's final response (after digest challenges). */
  readonly final: Promise<SipMessage>;
  private readonly pending: DumRequest;
  private cancelWanted = false;
  /** The ACK of the 2xx that made our dialog, sent again for each retransmission. */
  private ack: SipMessage | undefined;

  constructor(dum: DialogUsageManager, options: InviteOptions) {
    super(dum, 'calling');
    this.localBody = options;
    const invite = dum.newRequest('INVITE', options.to, {
      contact: dum.contact(),
      headers: { Allow: dum.allowList(), Supported: 'outbound', ...options.headers },
      body: options.body,
      contentType: options.body !== undefined ? (options.contentType ?? 'application/sdp') : undefined,
    });
    this.pending = dum.send(invite, {
      onProvisional: (response) => {
        if (this.currentState === 'calling' && response.to.tag !== undefined) this.currentState = 'early';
        this.emit('provisional', response);
      },
      on2xx: (response) => this.another2xx(response),
    });
    this.final = this.pending.final.then((response) => {
      this.answered(response);
      return response;
    });
  }

  /** §9.1: CANCELs the INVITE (after a provisional response, which the stack waits for). */
  cancel(): void {
    if (this.currentState !== 'calling' && this.currentState !== 'early') return;
    this.cancelWanted = true;
    this.pending.cancel();
  }

  private answered(response: SipMessage): void {
    const status = response.status;
    if (status >= 300 || status < 200) {
      this.emit('failed', response);
      this.end(status === 487 && this.cancelWanted ? 'cancelled' : status === 408 ? 'timeout' : 'rejected');
      return;
    }
    const invite = this.pending.request;
    const dialog = Dialog.asUac(invite, response);
    this.dialogState = dialog;
    this.dum.addDialog(this);
    this.ack = dialog.createAck(invite);
    const acked = this.dum.sendAck(this.ack);
    if (response.body.length > 0) this.remote = response.body;
    if (this.cancelWanted) {
      // §9.1 and §15: the 200 won the race with our CANCEL; the call is up, so it is ended with a
      // BYE — after the ACK, so the far end sees its 2xx confirmed first.
      this.currentState = 'established';
      this.overrideEnd = 'cancelled';
      void acked.then(() => this.bye()).catch(() => undefined);
      return;
    }
    this.currentState = 'established';
    this.emit('established', response);
  }

  /** What `terminated` reports for a session ended by a BYE we sent after a CANCEL lost the race. */
  private overrideEnd: 'cancelled' | undefined;

  protected override end(reason: Parameters<InviteSession['end']>[0]): void {
    super.end(this.overrideEnd ?? reason);
  }

  /** RFC 6026 §7.2: a 2xx after the first — our ACK was lost, or another fork answered. */
  private another2xx(response: SipMessage): void {
    const dialog = this.dialogState;
    if (dialog && response.to.tag === dialog.remoteTag) {
      if (this.ack) void this.dum.sendAck(this.ack);
      return;
    }
    // §13.2.2.4: "…the UAC core MUST generate an ACK… for each 2xx"; a second dialog we do not
    // want is ended with BYE at once.
    const invite = this.pending.request;
    const other = Dialog.asUac(invite, response);
    void this.dum
      .sendAck(other.createAck(invite))
      .then(() => this.dum.send(other.createRequest('BYE')).final)
      .catch(() => undefined);
  }
}
