import { EventEmitter } from 'eventemitter3';
import type { SubscriptionState } from '../../message/header-values.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { TimerHandle } from '../../util/clock.js';
import type { ServerRequest } from '../transaction-user.js';
import { Dialog } from './dialog.js';
import type { ClosableUsage, DialogSetOwner, DialogUsage, DialogUsageManager } from './dialog-usage-manager.js';
import { refreshDelayMs } from './timing.js';

export interface SubscribeOptions {
  to: string;
  /** Any event package, with parameters (`presence`, `x-routes;id=1`). */
  event: string;
  /** Seconds asked for; default 3600. */
  expires?: number;
  accept?: string[];
  body?: Uint8Array | string;
  contentType?: string;
  headers?: Record<string, string | string[]>;
}

/** A NOTIFY as the subscriber hears it. */
export interface Notification {
  request: SipMessage;
  state: SubscriptionState;
  body: Buffer;
  contentType: string | undefined;
}

export interface ClientSubscriptionEvents {
  notify: [notification: Notification];
  active: [];
  pending: [];
  refreshed: [expires: number];
  terminated: [reason: string | undefined, retryAfter: number | undefined];
  fork: [subscription: ClientSubscription];
}

export type ClientSubscriptionState = 'init' | 'pending' | 'active' | 'terminated';

/** RFC 6665 §4.1.2.2: refresh failures after which "the subscriber MUST consider the subscription terminated". */
function refreshEnds(status: number): boolean {
  return [404, 405, 410, 416, 489, 501, 604].includes(status) || (status >= 480 && status <= 485);
}

/** How long to wait for the final NOTIFY after unsubscribing (64·T1 at the default T1 is 32 s). */
const UNSUBSCRIBE_WAIT_T1 = 64;

/**
 * The subscriber's side of RFC 6665: one SUBSCRIBE and the dialogs it makes. The first dialog is
 * this object; NOTIFYs from other forks become other ClientSubscriptions, announced by `fork`
 * (§4.1.2.4). A NOTIFY may come before the SUBSCRIBE's 2xx and makes the dialog itself.
 */
export class ClientSubscription extends EventEmitter<ClientSubscriptionEvents> implements DialogUsage, DialogSetOwner, ClosableUsage {
  /** The initial SUBSCRIBE's final response. */
  readonly ready: Promise<SipMessage>;
  private currentState: ClientSubscriptionState = 'init';
  private dialogState: Dialog | undefined;
  private subscribe: SipMessage;
  private readonly eventType: string;
  private readonly eventId: string | undefined;
  private readonly eventText: string;
  private expiresAt = 0;
  private refreshTimer: TimerHandle | undefined;
  private expiryTimer: TimerHandle | undefined;
  private timerN: TimerHandle | undefined;
  private unsubscribed: (() => void) | undefined;
  private readonly forks: ClientSubscription[] = [];

  constructor(
    private readonly dum: DialogUsageManager,
    private readonly options: SubscribeOptions,
    fork?: { parent: ClientSubscription },
  ) {
    super();
    this.eventText = options.event;
    const [type, ...params] = options.event.split(';');
    this.eventType = type!.trim().toLowerCase();
    const id = params.map((p) => p.trim()).find((p) => p.toLowerCase().startsWith('id='));
    this.eventId = id?.slice(3);
    if (fork) {
      this.subscribe = fork.parent.subscribe;
      this.ready = fork.parent.ready;
      return;
    }
    const headers: Record<string, string | string[]> = { Event: options.event, Expires: String(options.expires ?? 3600), ...options.headers };
    if (options.accept) headers.Accept = options.accept.join(', ');
    this.subscribe = dum.newRequest('SUBSCRIBE', options.to, { contact: dum.contact(), headers, body: options.body, contentType: options.contentType });
    dum.addDialogSet(this.subscribe.callId, this.subscribe.from.tag!, this);
    this.startTimerN();
    const pending = dum.send(this.subscribe, { onResend: (next) => (this.subscribe = next) });
    this.ready = pending.final.then((response) => {
      this.initialAnswered(response);
      return response;
    });
  }

  get state(): ClientSubscriptionState {
    return this.currentState;
  }

  get dialog(): Dialog | undefined {
    return this.dialogState;
  }

  /** §4.1.2.2: SUBSCRIBE again in the dialog; resolves with its final response. */
  async refresh(expires = this.options.expires ?? 3600): Promise<SipMessage> {
    const dialog = this.dialogState;
    if (!dialog || this.currentState === 'terminated') return Promise.reject(new Error('no subscription to refresh'));
    const request = dialog.createRequest('SUBSCRIBE', { contact: this.dum.contact(), headers: { Event: this.eventText, Expires: String(expires) } });
    this.dum.digest.preauthorize(request);
    if (expires > 0) this.startTimerN();
    const response = await this.dum.send(request, { onResend: (next) => (dialog.localSeq = next.cseq.seq) }).final;
    if (this.isTerminated()) return response;
    if (response.status >= 200 && response.status < 300) {
      if (expires > 0) {
        const granted = response.expires ?? expires;
        this.armRefresh(granted);
        this.emit('refreshed', granted);
      }
    } else if (refreshEnds(response.status) || response.status === 408) {
      // 408 is the stack's own timeout: nobody is there to notify us any more.
      this.end(response.status === 408 ? 'timeout' : 'rejected', undefined);
    }
    return response;
  }

  /** §4.1.2.3: SUBSCRIBE with Expires: 0; resolves once the final NOTIFY came (or 64·T1 passed). */
  async unsubscribe(): Promise<void> {
    if (this.currentState === 'terminated') return;
    if (!this.dialogState) {
      this.end('unsubscribed', undefined);
      return;
    }
    const done = new Promise<void>((resolve) => {
      const timer = this.dum.timer(UNSUBSCRIBE_WAIT_T1 * this.dum.stack.timerBase.t1, () => {
        this.end('timeout', undefined);
      });
      this.unsubscribed = () => {
        timer.cancel();
        resolve();
      };
    });
    const response = await this.refresh(0).catch(() => undefined);
    if (!response || response.status >= 300) this.end(response?.status === 481 ? 'noresource' : 'timeout', undefined);
    await done;
  }

  async close(): Promise<void> {
    await Promise.all([this.unsubscribe(), ...this.forks.map((f) => f.unsubscribe())]);
  }

  // ---- from the DUM -------------------------------------------------------------------------

  /** §4.1.2.4: a NOTIFY for our SUBSCRIBE with no dialog yet: it makes one (ours, or a fork's). */
  onDialogCreatingNotify(request: ServerRequest): boolean {
    if (this.currentState === 'terminated' || !this.matchesEvent(request.message)) return false;
    if (!this.dialogState) this.join(request);
    else {
      // The application hears of the fork first, so its listeners get the fork's first NOTIFY too.
      const fork = new ClientSubscription(this.dum, this.options, { parent: this });
      this.forks.push(fork);
      this.emit('fork', fork);
      fork.join(request);
    }
    return true;
  }

  onRequest(request: ServerRequest): void {
    const message = request.message;
    if (message.method !== 'NOTIFY') return this.dum.answer(request, 405, undefined, { Allow: 'NOTIFY' });
    // RFC 6665 §4.1.3: a NOTIFY whose Event does not match the subscription gets 481.
    if (!this.matchesEvent(message)) return this.dum.answer(request, 481);
    const state = message.subscriptionState;
    // §8.2.3 makes Subscription-State mandatory in NOTIFY.
    if (!state) return this.dum.answer(request, 400, 'Missing Subscription-State');
    this.cancelTimerN();
    this.dialogState?.refreshTarget(message);
    this.emit('notify', { request: message, state, body: message.body, contentType: message.contentType });
    request.respond(200);
    this.applyState(state);
  }

  // ---- inside -------------------------------------------------------------------------------

  private isTerminated(): boolean {
    return this.currentState === 'terminated';
  }

  /** Makes this subscription's dialog from a NOTIFY and handles the NOTIFY in it. */
  protected join(notify: ServerRequest): void {
    const dialog = Dialog.asUac(this.subscribe, notify.message);
    this.dialogState = dialog;
    this.dum.addDialog(this);
    this.onRequest(notify);
  }

  private initialAnswered(response: SipMessage): void {
    const status = response.status;
    if (status < 200) return;
    if (status >= 300) {
      // "Non-200-class final responses indicate that no subscription… has been created."
      if (!this.dialogState) this.end('rejected', undefined);
      return;
    }
    if (!this.dialogState && response.to.tag !== undefined) {
      this.dialogState = Dialog.asUac(this.subscribe, response);
      this.dum.addDialog(this);
    }
    // RFC 6665 §4.1.2's diagram: a 2xx leaves the subscriber waiting for the NOTIFY ('init');
    // only a NOTIFY says pending or active.
    this.armRefresh(response.expires ?? this.options.expires ?? 3600);
  }

  private applyState(state: SubscriptionState): void {
    if (state.state === 'terminated') {
      this.end(state.reason, state.retryAfter);
      return;
    }
    if (state.expires !== undefined) {
      // The NOTIFY's expires is the notifier's latest word on the duration (§4.1.2.2).
      const remaining = this.expiresAt - this.dum.clock.now();
      if (this.expiresAt === 0 || state.expires * 1000 < remaining) this.armRefresh(state.expires);
    }
    const next = state.state === 'active' ? 'active' : 'pending';
    if (next !== this.currentState) {
      this.currentState = next;
      this.emit(next);
    }
  }

  private armRefresh(seconds: number): void {
    this.refreshTimer?.cancel();
    this.expiryTimer?.cancel();
    this.expiresAt = this.dum.clock.now() + seconds * 1000;
    if (seconds <= 0) return;
    this.refreshTimer = this.dum.timer(refreshDelayMs(seconds), () => {
      this.refreshTimer = undefined;
      void this.refresh().catch(() => undefined);
    });
    // A subscription nobody managed to refresh ends with its time (§4.1.2.2).
    this.expiryTimer = this.dum.timer(seconds * 1000, () => this.end('timeout', undefined));
  }

  private startTimerN(): void {
    this.cancelTimerN();
    // §4.1.2.4: "…a subscriber starts a Timer N, set to 64*T1, when it sends a SUBSCRIBE request."
    this.timerN = this.dum.timer(64 * this.dum.stack.timerBase.t1, () => {
      this.timerN = undefined;
      this.end('timeout', undefined);
    });
  }

  private cancelTimerN(): void {
    this.timerN?.cancel();
    this.timerN = undefined;
  }

  private matchesEvent(message: SipMessage): boolean {
    const event = message.event;
    return event !== undefined && event.type.toLowerCase() === this.eventType && event.id === this.eventId;
  }

  private end(reason: string | undefined, retryAfter: number | undefined): void {
    if (this.currentState === 'terminated') return;
    this.currentState = 'terminated';
    this.refreshTimer?.cancel();
    this.expiryTimer?.cancel();
    this.cancelTimerN();
    if (this.dialogState) this.dum.removeDialog(this);
    if (this.forks.every((f) => f.state === 'terminated')) this.dum.removeDialogSet(this.subscribe.callId, this.subscribe.from.tag!);
    this.dum.forget(this);
    this.emit('terminated', reason, retryAfter);
    this.unsubscribed?.();
  }
}
