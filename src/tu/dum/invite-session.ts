import type { LocalContact } from '../../message/local-contact.js';
import { EventEmitter } from 'eventemitter3';
import { createResponse } from '../../message/builder.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { TimerHandle } from '../../util/clock.js';
import type { ServerRequest } from '../transaction-user.js';
import type { Dialog } from './dialog.js';
import type { ClosableUsage, DialogUsage, DialogUsageManager } from './dialog-usage-manager.js';
import { acceptsType } from './media-types.js';
import { DumError } from './dum-error.js';
import { glareWaitMs } from './timing.js';

export type SessionEnd = 'bye' | 'local-bye' | 'cancelled' | 'rejected' | 'no-ack' | 'timeout' | 'failed';

export interface InviteSessionEvents {
  provisional: [response: SipMessage];
  established: [response: SipMessage];
  failed: [response: SipMessage];
  terminated: [reason: SessionEnd];
  reinvite: [offer: IncomingReinvite];
  request: [request: IncomingDialogRequest];
}

export type InviteSessionState = 'calling' | 'early' | 'offered' | 'accepted' | 'established' | 'terminated';

export interface SessionBody {
  body?: Uint8Array | string;
  contentType?: string;
}

/** RFC 3261 §14.1: how many times a re-INVITE met by 491 is tried again. */
const GLARE_RETRIES = 3;

/** A re-INVITE from the far end: accept it with an answer, or reject it (the session goes on). */
export class IncomingReinvite {
  private answered = false;

  constructor(
    private readonly session: InviteSession,
    private readonly server: ServerRequest,
  ) {}

  get request(): SipMessage {
    return this.server.message;
  }

  get offer(): Buffer {
    return this.server.message.body;
  }

  get isAnswered(): boolean {
    return this.answered;
  }

  accept(answer: SessionBody = {}): void {
    if (this.answered) return;
    this.answered = true;
    this.session.acceptReinvite(this.server, answer);
  }

  /** §14.2: a refused re-INVITE leaves the session as it was (488 Not Acceptable Here by default). */
  reject(status = 488, reason?: string): void {
    if (this.answered) return;
    this.answered = true;
    this.session.rejectReinvite(this.server, status, reason);
  }
}

/** A request inside a session's dialog (MESSAGE, INFO, NOTIFY…): answered 200 unless the listener answers. */
export class IncomingDialogRequest {
  private answeredWith: number | undefined;

  constructor(private readonly server: ServerRequest) {}

  get request(): SipMessage {
    return this.server.message;
  }

  get method(): string {
    return this.server.message.method;
  }

  get body(): Buffer {
    return this.server.message.body;
  }

  get isAnswered(): boolean {
    return this.answeredWith !== undefined;
  }

  respond(status: number, reason?: string): void {
    if (this.answeredWith !== undefined) return;
    this.answeredWith = status;
    this.server.respond(status, reason);
  }
}

/**
 * What both ends of an INVITE session share (reSIProcate's InviteSession): the dialog, the last
 * body from the far end, BYE, re-INVITE with §14's glare rules, in-dialog requests, and the
 * UAS core's 2xx retransmission until the ACK (§13.3.1.4).
 */
export abstract class InviteSession extends EventEmitter<InviteSessionEvents> implements DialogUsage, ClosableUsage {
  protected currentState: InviteSessionState;
  protected dialogState: Dialog | undefined;
  protected remote: Buffer | undefined;
  /** Our last offer or answer, the default answer to a re-INVITE. */
  protected localBody: SessionBody = {};
  private outgoingReinvite = false;
  private incomingReinvite: ServerRequest | undefined;
  /** 2xx responses of ours waiting for their ACK, by CSeq (§13.3.1.4). */
  private readonly unacked = new Map<number, { retransmit: TimerHandle | undefined; giveUp: TimerHandle; initial: boolean }>();
  private byeSent = false;

  protected constructor(
    protected readonly dum: DialogUsageManager,
    initial: InviteSessionState,
  ) {
    super();
    this.currentState = initial;
  }

  get state(): InviteSessionState {
    return this.currentState;
  }

  /** Undefined until the dialog exists. */
  get dialog(): Dialog {
    return this.dialogState!;
  }

  /** The far end's last offer or answer. */
  get remoteBody(): Buffer | undefined {
    return this.remote;
  }

  /** §15.1.1: ends the session with BYE; resolves once the BYE is answered (any answer ends it). */
  async bye(): Promise<void> {
    const dialog = this.dialogState;
    if (!dialog || this.currentState === 'terminated' || this.byeSent) return;
    this.byeSent = true;
    const request = dialog.createRequest('BYE');
    this.end('local-bye');
    await this.dum.send(request, { onResend: (next) => (dialog.localSeq = next.cseq.seq) }).final;
  }

  /**
   * §14.1: a new offer in the dialog; resolves with the final response. Ours meeting theirs gets a
   * 491 and is sent again after §14.1's wait.
   */
  async reinvite(offer: SessionBody): Promise<SipMessage> {
    const dialog = this.dialogState;
    if (!dialog || this.currentState !== 'established') throw new DumError('DUM_BAD_STATE', `no re-INVITE in state ${this.currentState}`);
    if (this.outgoingReinvite || this.incomingReinvite) throw new DumError('DUM_BAD_STATE', 'an offer is already pending (§14.1)');
    for (let attempt = 0; ; attempt++) {
      this.outgoingReinvite = true;
      let response: SipMessage;
      try {
        response = await this.sendReinvite(dialog, offer);
      } finally {
        // §14.2's 491 is for an INVITE "in progress": not while we only wait to try again.
        this.outgoingReinvite = false;
      }
      if (response.status !== 491 || attempt >= GLARE_RETRIES || this.currentState !== 'established') return response;
      // §14.1: wait 2.1–4 s when we own the Call-ID, 0–2 s when we do not, then try again.
      await new Promise<void>((resolve) => this.dum.timer(glareWaitMs(dialog.isUac), resolve));
      if (this.currentState !== 'established' || this.incomingReinvite) return response;
    }
  }

  /** A request in the dialog that is not INVITE, BYE or ACK; resolves with its final response. */
  async request(method: string, options: SessionBody & { headers?: Record<string, string | string[]> } = {}): Promise<SipMessage> {
    const dialog = this.dialogState;
    if (!dialog || this.currentState === 'terminated') throw new DumError('DUM_NO_DIALOG', 'the session has no dialog');
    const request = dialog.createRequest(method, options);
    return this.dum.send(request, { onResend: (next) => (dialog.localSeq = next.cseq.seq) }).final;
  }

  async close(): Promise<void> {
    await this.bye();
  }

  // ---- from the DUM -------------------------------------------------------------------------

  onRequest(request: ServerRequest): void {
    const message = request.message;
    switch (message.method) {
      case 'INVITE':
        return this.receiveReinvite(request);
      case 'BYE':
        // §15.1.2: "…the UAS MUST… generate a 2xx response to the BYE, and MUST pass that to the server transaction".
        request.respond(200);
        this.end('bye');
        return;
      case 'PRACK':
      case 'UPDATE':
        return this.dum.answer(request, 501);
      default: {
        const incoming = new IncomingDialogRequest(request);
        this.emit('request', incoming);
        if (!incoming.isAnswered) incoming.respond(200);
      }
    }
  }

  onAck(request: ServerRequest): void {
    const pending = this.unacked.get(request.message.cseq.seq);
    if (!pending) return;
    pending.retransmit?.cancel();
    pending.giveUp.cancel();
    this.unacked.delete(request.message.cseq.seq);
    if (request.message.body.length > 0) this.remote = request.message.body;
    this.acked(request.message, pending.initial);
  }

  // ---- for IncomingReinvite -----------------------------------------------------------------

  acceptReinvite(server: ServerRequest, answer: SessionBody): void {
    this.incomingReinvite = undefined;
    this.localBody = answer;
    this.remote = server.message.body.length > 0 ? server.message.body : this.remote;
    this.send2xx(server, answer, false);
  }

  rejectReinvite(server: ServerRequest, status: number, reason?: string): void {
    this.incomingReinvite = undefined;
    server.respond(status, reason);
  }

  // ---- for the two ends ---------------------------------------------------------------------

  /** The ACK for our 2xx arrived: the initial one confirms the session. */
  protected acked(_ack: SipMessage, _initial: boolean): void {}

  /**
   * §13.3.1.4: sends a 2xx and, over an unreliable transport, retransmits it at T1, 2·T1… capped
   * at T2 until the ACK comes; with no ACK within 64·T1 "the session SHOULD be terminated" (BYE).
   */
  protected send2xx(server: ServerRequest, answer: SessionBody, initial: boolean): SipMessage {
    const request = server.message;
    const headers: Record<string, string | string[] | LocalContact> = { Contact: this.dum.contact(), Allow: this.dum.allowList(), Supported: 'outbound' };
    const response = createResponse(request, 200, undefined, {
      toTag: this.dialogState?.localTag,
      headers,
      body: answer.body,
      contentType: answer.body !== undefined ? (answer.contentType ?? 'application/sdp') : undefined,
    });
    server.send(response);
    const seq = request.cseq.seq;
    const { t1, t2 } = this.dum.stack.timerBase;
    const entry = {
      retransmit: undefined as TimerHandle | undefined,
      giveUp: this.dum.timer(64 * t1, () => {
        entry.retransmit?.cancel();
        this.unacked.delete(seq);
        void this.noAck();
      }),
      initial,
    };
    if (server.source.protocol === 'udp') {
      const again = (interval: number): void => {
        entry.retransmit = this.dum.timer(interval, () => {
          server.send(response);
          again(Math.min(interval * 2, t2));
        });
      };
      again(t1);
    }
    this.unacked.set(seq, entry);
    return response;
  }

  protected end(reason: SessionEnd): void {
    if (this.currentState === 'terminated') return;
    this.currentState = 'terminated';
    for (const pending of this.unacked.values()) {
      pending.retransmit?.cancel();
      pending.giveUp.cancel();
    }
    this.unacked.clear();
    if (this.dialogState) this.dum.removeDialog(this);
    this.dum.forget(this);
    this.emit('terminated', reason);
  }

  // ---- inside -------------------------------------------------------------------------------

  private async noAck(): Promise<void> {
    if (this.currentState === 'terminated') return;
    const dialog = this.dialogState;
    this.end('no-ack');
    if (dialog && !this.byeSent) {
      this.byeSent = true;
      await this.dum.send(dialog.createRequest('BYE')).final.catch(() => undefined);
    }
  }

  private receiveReinvite(request: ServerRequest): void {
    // §14.2: "A UAS that receives a second INVITE before it sends the final response to a first
    // INVITE with a lower CSeq… MUST return a 500… with a Retry-After… between 0 and 10 seconds."
    if (this.incomingReinvite || this.currentState === 'offered') {
      return this.dum.answer(request, 500, undefined, { 'Retry-After': String(Math.floor(Math.random() * 11)) });
    }
    // "A UAS that receives an INVITE on a dialog while an INVITE it had sent on that dialog is in
    // progress MUST return a 491 (Request Pending)."
    if (this.outgoingReinvite) return this.dum.answer(request, 491);
    if (!acceptsType(this.dum.sessionTypes, request.message.contentType)) {
      return this.dum.answer(request, 415, undefined, { Accept: this.dum.sessionTypes.join(', ') });
    }
    this.incomingReinvite = request;
    const offer = new IncomingReinvite(this, request);
    this.emit('reinvite', offer);
    // Listeners decide synchronously; when none did, the session's last answer stands (bodies are
    // opaque here: media is not this layer's business).
    if (!offer.isAnswered) offer.accept(this.localBody);
  }

  private async sendReinvite(dialog: Dialog, offer: SessionBody): Promise<SipMessage> {
    const request = dialog.createRequest('INVITE', {
      contact: this.dum.contact(),
      body: offer.body,
      contentType: offer.body !== undefined ? (offer.contentType ?? 'application/sdp') : undefined,
    });
    let ack: SipMessage | undefined;
    const pending = this.dum.send(request, {
      onResend: (next) => (dialog.localSeq = next.cseq.seq),
      // RFC 6026 §7.2: a retransmitted 2xx means our ACK was lost: send it again.
      on2xx: () => {
        if (ack) void this.dum.sendAck(ack);
      },
    });
    const response = await pending.final;
    if (response.status >= 200 && response.status < 300) {
      dialog.refreshTarget(response);
      ack = dialog.createAck(pending.request);
      void this.dum.sendAck(ack);
      this.localBody = offer;
      if (response.body.length > 0) this.remote = response.body;
    }
    return response;
  }
}
