import { EventEmitter } from 'eventemitter3';
import { createResponse, generateTag } from '../../message/builder.js';
import type { EventHeader } from '../../message/header-values.js';
import type { NameAddr } from '../../message/name-addr.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { TimerHandle } from '../../util/clock.js';
import type { ServerRequest } from '../transaction-user.js';
import { Dialog } from './dialog.js';
import type { ClosableUsage, DialogUsage, DialogUsageManager } from './dialog-usage-manager.js';
import { DumError } from './dum-error.js';

export interface ServerSubscriptionEvents {
  refreshed: [expires: number];
  terminated: [reason: string];
}

export type ServerSubscriptionState = 'offered' | 'pending' | 'active' | 'terminated';

export interface NotifyContent {
  body?: Uint8Array | string;
  contentType?: string;
}

/** RFC 6665 §4.2.1.1 bounds: below the minimum (and not 0) → 423; above the maximum → lowered. */
const MIN_EXPIRES = 60;
const MAX_EXPIRES = 86_400;
const DEFAULT_EXPIRES = 3600;

/**
 * The notifier's side of RFC 6665: a SUBSCRIBE the application accepts or rejects, then NOTIFYs
 * carrying state with the time left, refreshes, and the final NOTIFY when it ends — by timeout
 * (§4.2.2), by the subscriber's Expires: 0, or by the application.
 */
export class ServerSubscription extends EventEmitter<ServerSubscriptionEvents> implements DialogUsage, ClosableUsage {
  readonly request: SipMessage;
  readonly event: EventHeader;
  private currentState: ServerSubscriptionState = 'offered';
  private dialogState: Dialog | undefined;
  private granted: number;
  private expiresAt = 0;
  private expiryTimer: TimerHandle | undefined;
  private last: NotifyContent = {};

  private constructor(
    private readonly dum: DialogUsageManager,
    private readonly server: ServerRequest,
    event: EventHeader,
    requested: number,
  ) {
    super();
    this.request = server.message;
    this.event = event;
    this.granted = Math.min(requested, MAX_EXPIRES);
  }

  /** A new SUBSCRIBE: checks its expiry (423) and makes the subscription the handler decides on. */
  static receive(dum: DialogUsageManager, request: ServerRequest): ServerSubscription | undefined {
    const message = request.message;
    const requested = message.expires ?? DEFAULT_EXPIRES;
    // §4.2.1.1: "If and only if the expiration interval is greater than zero AND smaller than one
    // hour AND less than a notifier-configured minimum, the notifier MAY return a 423".
    if (requested > 0 && requested < 3600 && requested < MIN_EXPIRES) {
      dum.answer(request, 423, undefined, { 'Min-Expires': String(MIN_EXPIRES) });
      return undefined;
    }
    return new ServerSubscription(dum, request, message.event!, requested);
  }

  get state(): ServerSubscriptionState {
    return this.currentState;
  }

  get subscriber(): NameAddr {
    return this.request.from;
  }

  /** Seconds granted. */
  get expires(): number {
    return this.granted;
  }

  get dialog(): Dialog | undefined {
    return this.dialogState;
  }

  /**
   * Accepts: 200 with the granted Expires (never more than asked, §4.2.1.1), then at once the
   * first NOTIFY with the state (§4.2.1.2: "…the notifier… SHOULD immediately construct and send
   * a NOTIFY request").
   */
  accept(options: { expires?: number; state?: 'active' | 'pending' } & NotifyContent = {}): void {
    if (this.currentState !== 'offered') throw new DumError('DUM_BAD_STATE', `the subscription is already ${this.currentState}`);
    if (options.expires !== undefined) this.granted = Math.min(options.expires, this.granted);
    const tag = generateTag();
    this.dialogState = Dialog.asUas(this.request, tag);
    this.currentState = options.state ?? 'active';
    this.dum.addDialog(this);
    this.server.send(createResponse(this.request, 200, undefined, { toTag: tag, headers: { Expires: String(this.granted), Contact: this.dum.contact() } }));
    this.armExpiry(this.granted);
    this.last = { body: options.body, contentType: options.contentType };
    if (this.granted === 0) {
      // §4.4.3 (a fetch): one NOTIFY with the state, and the subscription is over.
      void this.terminate('timeout');
      return;
    }
    void this.notify(this.last).catch(() => undefined);
  }

  /** Refuses with a status, or with a whole response (an authenticator's 401 challenge). */
  reject(status: number | SipMessage = 403, reason?: string): void {
    if (this.currentState !== 'offered') throw new DumError('DUM_BAD_STATE', `the subscription is already ${this.currentState}`);
    this.currentState = 'terminated';
    if (typeof status === 'number') this.dum.answer(this.server, status, reason);
    else this.server.send(status);
  }

  /** Sends a NOTIFY with the state and the time left; resolves with its final response. */
  async notify(content: NotifyContent & { state?: 'active' | 'pending' } = {}): Promise<SipMessage> {
    if (!this.dialogState || this.currentState === 'terminated' || this.currentState === 'offered') {
      throw new DumError('DUM_BAD_STATE', `no NOTIFY in state ${this.currentState}`);
    }
    if (content.state) this.currentState = content.state;
    this.last = { body: content.body, contentType: content.contentType };
    const remaining = Math.max(0, Math.round((this.expiresAt - this.dum.clock.now()) / 1000));
    const response = await this.sendNotify(`${this.currentState};expires=${remaining}`, this.last);
    // §4.2.2: a NOTIFY answered 481, or one that times out, removes the subscription.
    if (response.status === 481 || response.status === 408) this.end(response.status === 481 ? 'rejected' : 'timeout');
    return response;
  }

  /** The final NOTIFY (Subscription-State: terminated with the reason) and the end (§4.2.2). */
  async terminate(reason = 'noresource', retryAfter?: number): Promise<void> {
    if (!this.dialogState || this.currentState === 'terminated') return;
    this.end(reason);
    const state = `terminated;reason=${reason}${retryAfter !== undefined ? `;retry-after=${retryAfter}` : ''}`;
    await this.sendNotify(state, reason === 'timeout' ? this.last : {}).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.currentState === 'offered') this.reject(480);
    else await this.terminate('deactivated');
  }

  /** A handler that threw before deciding: 500, as for any request it could not process. */
  failedHandler(): void {
    if (this.currentState === 'offered') this.reject(500);
  }

  // ---- from the DUM -------------------------------------------------------------------------

  onRequest(request: ServerRequest): void {
    const message = request.message;
    if (message.method !== 'SUBSCRIBE') return this.dum.answer(request, 405, undefined, { Allow: 'SUBSCRIBE' });
    const event = message.event;
    if (!event || event.type.toLowerCase() !== this.event.type.toLowerCase() || event.id !== this.event.id) {
      return this.dum.answer(request, 489, undefined, { 'Allow-Events': this.event.type });
    }
    const requested = message.expires ?? DEFAULT_EXPIRES;
    if (requested > 0 && requested < 3600 && requested < MIN_EXPIRES) {
      return this.dum.answer(request, 423, undefined, { 'Min-Expires': String(MIN_EXPIRES) });
    }
    const granted = Math.min(requested, MAX_EXPIRES);
    request.respond(200, undefined, { headers: { Expires: String(granted), Contact: this.dum.contact() } });
    if (granted === 0) {
      // §4.2.1.4 / §4.2.2: unsubscribing is expiry now: a final NOTIFY "with a reason code of timeout".
      this.emitEnd = 'unsubscribed';
      void this.terminate('timeout');
      return;
    }
    this.granted = granted;
    this.armExpiry(granted);
    this.emit('refreshed', granted);
    // §4.2.1.2: a refresh is answered with a NOTIFY carrying the current state.
    void this.notify(this.last).catch(() => undefined);
  }

  // ---- inside -------------------------------------------------------------------------------

  /** What `terminated` reports when the subscriber ended it (its reason on the wire is `timeout`). */
  private emitEnd: string | undefined;

  private sendNotify(subscriptionState: string, content: NotifyContent): Promise<SipMessage> {
    const dialog = this.dialogState!;
    const eventText = this.event.id !== undefined ? `${this.event.type};id=${this.event.id}` : this.event.type;
    const notify = dialog.createRequest('NOTIFY', {
      contact: this.dum.contact(),
      headers: { Event: eventText, 'Subscription-State': subscriptionState },
      body: content.body,
      contentType: content.contentType,
    });
    return this.dum.send(notify, { onResend: (next) => (dialog.localSeq = next.cseq.seq) }).final;
  }

  private armExpiry(seconds: number): void {
    this.expiryTimer?.cancel();
    this.expiresAt = this.dum.clock.now() + seconds * 1000;
    if (seconds <= 0) return;
    // §4.2.2: "If no refresh… is received before its expiration time, the subscription is removed"
    // with a NOTIFY carrying "reason=timeout".
    this.expiryTimer = this.dum.timer(seconds * 1000, () => void this.terminate('timeout'));
  }

  private end(reason: string): void {
    if (this.currentState === 'terminated') return;
    this.currentState = 'terminated';
    this.expiryTimer?.cancel();
    if (this.dialogState) this.dum.removeDialog(this);
    this.dum.forget(this);
    this.emit('terminated', this.emitEnd ?? reason);
  }
}
