import { generateTag } from '../../message/builder.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { ServerRequest } from '../transaction-user.js';
import { Dialog } from './dialog.js';
import type { DialogUsageManager } from './dialog-usage-manager.js';
import { DumError } from './dum-error.js';
import { InviteSession, type SessionBody } from './invite-session.js';

/**
 * The callee's side of an INVITE session (RFC 3261 §13.3): the application rings, accepts with
 * an answer or rejects; the 2xx is retransmitted until the ACK (§13.3.1.4); a CANCEL before the
 * answer ends it with 487 (§9.2).
 */
export class ServerInviteSession extends InviteSession {
  /** The INVITE that started the session. */
  readonly invite: SipMessage;

  constructor(
    dum: DialogUsageManager,
    private readonly server: ServerRequest,
  ) {
    super(dum, 'offered');
    this.invite = server.message;
    // The To tag is chosen now so provisional responses make an early dialog (§12.1.1).
    this.dialogState = Dialog.asUas(this.invite, generateTag());
    this.remote = this.invite.body.length > 0 ? this.invite.body : undefined;
    dum.addDialog(this);
    if (server.transaction) dum.addInviteServer(server.transaction, this);
  }

  /** The caller's offer (empty when the INVITE carried none: our 2xx then holds the offer). */
  get offer(): Buffer {
    return this.invite.body;
  }

  /** A provisional response (180 Ringing by default), with a body for early media when given. */
  provisional(status = 180, options: SessionBody = {}): void {
    this.expectOffered('send a provisional response');
    if (status <= 100 || status >= 200) throw new DumError('DUM_BAD_STATE', `${status} is not a provisional status`);
    this.server.respond(status, undefined, {
      toTag: this.dialog.localTag,
      headers: { Contact: this.dum.contact() },
      body: options.body,
      contentType: options.body !== undefined ? (options.contentType ?? 'application/sdp') : undefined,
    });
  }

  /** 200 with the answer; the session is established when the ACK arrives. */
  accept(answer: SessionBody = {}): void {
    this.expectOffered('accept');
    this.currentState = 'accepted';
    this.localBody = answer;
    this.forgetTransaction();
    this.send2xx(this.server, answer, true);
  }

  /** A final non-2xx (486 Busy Here by default): the session ends. */
  reject(status = 486, reason?: string): void {
    this.expectOffered('reject');
    if (status < 300) throw new DumError('DUM_BAD_STATE', `${status} does not reject an INVITE`);
    this.forgetTransaction();
    this.server.respond(status, reason, { toTag: this.dialog.localTag });
    this.end('rejected');
  }

  /** §9.2: the caller CANCELled before we answered: "…the UAS SHOULD… respond to the INVITE with a 487". */
  cancelled(): void {
    if (this.currentState !== 'offered') return;
    this.forgetTransaction();
    this.server.respond(487, undefined, { toTag: this.dialog.localTag });
    this.end('cancelled');
  }

  /** A handler that threw before deciding: 500. */
  failedHandler(): void {
    if (this.currentState === 'offered') this.reject(500);
  }

  override async close(): Promise<void> {
    if (this.currentState === 'offered') this.reject(480);
    else await super.close();
  }

  protected override acked(ack: SipMessage, initial: boolean): void {
    if (!initial || this.currentState !== 'accepted') return;
    this.currentState = 'established';
    this.emit('established', ack);
  }

  private forgetTransaction(): void {
    if (this.server.transaction) this.dum.removeInviteServer(this.server.transaction);
  }

  private expectOffered(what: string): void {
    if (this.currentState !== 'offered') throw new DumError('DUM_BAD_STATE', `cannot ${what} in state ${this.currentState}`);
  }
}
