import { EventEmitter } from 'eventemitter3';
import type { ClientSubscription } from '../../tu/dum/client-subscription.js';
import type { DialogUsageManager } from '../../tu/dum/dialog-usage-manager.js';
import type { TimerHandle } from '../../util/clock.js';
import { parseUri, type SipUri } from '../../message/uri.js';
import { wallClockOf, type WallClock } from '../wall-clock.js';
import type { TimerQueue } from '../../util/timer-queue.js';
import { DocumentError, formatHello, HELLO_TYPE, parseHello, parseRoutes, ROUTES_EVENT, ROUTES_TYPE, type Hello, type RoutesDocument } from './documents.js';

export type LinkState = 'connecting' | 'up' | 'down' | 'refused';
/** How we came to know a neighbour. */
export type LinkOrigin = 'config' | 'inbound' | 'discovered';

export interface PeerLinkEvents {
  /** The link changed state; `detail` says why, for the log. */
  state: [state: LinkState, detail: string];
  /** A NOTIFY with routes (in version order; a full one replaces what came before). */
  routes: [document: RoutesDocument];
}

export interface LinkTiming {
  pingIntervalMs: number;
  pingMisses: number;
  retryMs: readonly [number, number];
}

/** Seconds asked for in the link's SUBSCRIBE (refreshed by the DUM at half-time). */
const LINK_EXPIRES = 600;

/**
 * Our side of the link to one neighbour (docs/federation.md "The link"): a `parley-routes`
 * subscription to it (RFC 6665 §4.1), OPTIONS pings while it is up (seed 002's PING/PONG), and
 * a retry with doubling backoff whenever it is down or refused.
 *
 * States (docs/federation.md "Liveness"):
 * | from       | event                                   | to         |
 * |------------|-----------------------------------------|------------|
 * | connecting | a NOTIFY from the expected server       | up         |
 * | connecting | SUBSCRIBE answered 401/403              | refused    |
 * | connecting | SUBSCRIBE failed otherwise, terminated  | down       |
 * | up         | `pingMisses` pings unanswered in a row  | down       |
 * | up         | subscription terminated by the notifier | down       |
 * | up         | a ping answered with another boot id    | connecting |
 * | any        | a NOTIFY or ping answer from another name | refused  |
 * | down/refused | the retry timer, or `connect()`       | connecting |
 */
export class PeerLink extends EventEmitter<PeerLinkEvents> {
  /** Before the first connect(): nothing tried yet, reported as down. */
  private current: LinkState = 'down';
  /** The wait before the next try after the last failure (for the log). */
  retryInMs = 0;
  private changedAt: Date;
  /** `since` in wall-clock time, from the stack's clock. */
  private readonly wall: WallClock;
  private subscription: ClientSubscription | undefined;
  private lastVersion = 0;
  /** The neighbour's boot id from its NOTIFYs: another one in its SUBSCRIBE means it restarted. */
  boot: string | undefined;
  private pingTimer: TimerHandle | undefined;
  private retryTimer: TimerHandle | undefined;
  /** Pings sent, and the latest one answered, since the link came up. */
  private pingsSent = 0;
  private pingAnswered = 0;
  private misses = 0;
  private failures = 0;
  private stopped = false;

  constructor(
    readonly name: string,
    public uri: string,
    readonly origin: LinkOrigin,
    private readonly dum: DialogUsageManager,
    private readonly timers: Pick<TimerQueue, 'schedule'>,
    private readonly hello: () => Hello,
    private readonly timing: LinkTiming,
  ) {
    super();
    this.wall = wallClockOf(dum.clock);
    this.changedAt = new Date(this.wall.now());
  }

  get state(): LinkState {
    return this.current;
  }

  get since(): Date {
    return this.changedAt;
  }

  /**
   * Where requests on this link go (docs/federation.md "Authentication"): the host[:port] of its
   * URI and of the subscription's remote target (a refresh goes to the neighbour's Contact).
   * Our credentials for the neighbour's realm are offered only there.
   */
  destinations(): string[] {
    const out = new Set<string>();
    const add = (uri: SipUri | undefined): void => {
      if (uri) out.add(uri.port === undefined ? uri.host.toLowerCase() : `${uri.host.toLowerCase()}:${uri.port}`);
    };
    try {
      add(parseUri(this.uri));
    } catch {
      // an unreadable URI is refused when it is used
    }
    const dialog = this.subscription?.dialog;
    if (dialog) add(dialog.routeSet[0]?.uri ?? dialog.remoteTarget);
    return [...out].sort();
  }

  /** Subscribes now (the first time, or again at once: the neighbour showed it is alive). */
  connect(why = `subscribing to ${this.uri}`): void {
    if (this.stopped) return;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.dropSubscription();
    this.setState('connecting', why);
    this.lastVersion = 0;
    const subscription = this.dum.subscribe({
      to: this.uri,
      event: ROUTES_EVENT,
      expires: LINK_EXPIRES,
      accept: [ROUTES_TYPE],
      body: formatHello(this.hello()),
      contentType: HELLO_TYPE,
    });
    this.subscription = subscription;
    subscription.on('notify', (notification) => {
      if (this.subscription !== subscription) return;
      this.onNotify(notification.body, notification.contentType);
    });
    subscription.on('terminated', (reason) => {
      // A SUBSCRIBE refused outright ends the subscription before `ready` settles: that case is
      // the answer's to judge (refused or down), below.
      void subscription.ready.then((response) => {
        if (this.subscription !== subscription || (response.status ?? 500) >= 300) return;
        this.subscription = undefined;
        this.fail('down', `subscription ended${reason ? ` (${reason})` : ''}`);
      }, () => undefined);
    });
    subscription.ready.then(
      (response) => {
        if (this.subscription !== subscription) return;
        const status = response.status ?? 500;
        if (status < 300) return;
        this.subscription = undefined;
        // RFC 3261 §22.1: our credentials were refused; so was a name the neighbour will not take.
        if (status === 401 || status === 403 || status === 407) this.fail('refused', `SUBSCRIBE answered ${status} ${response.reason ?? ''}`.trim());
        else this.fail('down', `SUBSCRIBE answered ${status} ${response.reason ?? ''}`.trim());
      },
      (error: unknown) => {
        if (this.subscription !== subscription) return;
        this.subscription = undefined;
        this.fail('down', `SUBSCRIBE failed: ${String(error)}`);
      },
    );
  }

  /** Ends the link (SUBSCRIBE Expires: 0, RFC 6665 §4.1.2.3); resolves when answered or after `boundMs`. */
  async stop(boundMs: number): Promise<void> {
    this.stopped = true;
    this.pingTimer?.cancel();
    this.retryTimer?.cancel();
    const subscription = this.subscription;
    this.subscription = undefined;
    if (!subscription || subscription.state === 'terminated') return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([subscription.unsubscribe().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, boundMs)))]);
    clearTimeout(timer);
  }

  private onNotify(body: Buffer, contentType: string | undefined): void {
    // A NOTIFY without state (a refresh's, or a final one) changes nothing.
    if (body.length === 0 || (contentType !== undefined && !contentType.toLowerCase().startsWith(ROUTES_TYPE))) return;
    let document: RoutesDocument;
    try {
      document = parseRoutes(body);
    } catch (error) {
      if (error instanceof DocumentError) return this.fail('down', `unreadable routes: ${error.message}`);
      throw error;
    }
    if (document.server !== this.name) {
      // A misconfigured URI: whoever answers there is not the neighbour we meant.
      return this.fail('refused', `${this.uri} is ${document.server}, not ${this.name}`);
    }
    if (!document.full && document.version <= this.lastVersion) return; // a repeat (a refresh's NOTIFY)
    if (!document.full && document.version !== this.lastVersion + 1) {
      // A partial update was lost: subscribe again for the full state.
      this.connect();
      return;
    }
    this.lastVersion = document.version;
    this.boot = document.boot;
    if (document.uri !== this.uri && this.origin !== 'config') this.uri = document.uri;
    const comingUp = this.current !== 'up';
    if (comingUp) {
      this.failures = 0;
      this.misses = 0;
      this.pingsSent = 0;
      this.pingAnswered = 0;
      this.current = 'up';
      this.changedAt = new Date(this.wall.now());
      this.schedulePing();
    }
    // Routes first, then "up": whoever retries on "up" (the relay couriers) finds them in the table.
    this.emit('routes', document);
    if (comingUp) this.emit('state', 'up', 'routes received');
  }

  private schedulePing(): void {
    this.pingTimer?.cancel();
    this.pingTimer = this.timers.schedule(this.timing.pingIntervalMs, () => this.ping());
  }

  /**
   * One OPTIONS per interval (RFC 3261 §11), whatever became of the last one: a ping not
   * answered 2xx by the next tick is a miss, so a neighbour that went silent is down after
   * `pingMisses` intervals, not after as many transaction timeouts.
   */
  private ping(): void {
    if (this.stopped || this.current !== 'up') return;
    if (this.pingsSent > this.pingAnswered && ++this.misses >= this.timing.pingMisses) return this.fail('down', `${this.misses} pings missed`);
    this.schedulePing();
    const sequence = ++this.pingsSent;
    // Asking for the neighbour's hello: its boot id tells a restart the pings alone would miss.
    this.dum.request('OPTIONS', { to: this.uri, headers: { Accept: HELLO_TYPE } }).then(
      (response) => {
        if (response.status === undefined || response.status >= 300 || this.current !== 'up') return;
        // Any answer shows the neighbour is there: the count of misses starts again.
        this.pingAnswered = Math.max(this.pingAnswered, sequence);
        this.misses = 0;
        this.checkHello(response.body, response.contentType);
      },
      () => undefined,
    );
  }

  /**
   * The neighbour's hello in a ping's answer: another name at that URI refuses the link; another
   * boot id means it restarted and lost our subscription (and its link back to us, if we were
   * not in its configuration), so we subscribe again at once.
   */
  private checkHello(body: Buffer, contentType: string | undefined): void {
    if (body.length === 0 || !(contentType ?? '').toLowerCase().startsWith(HELLO_TYPE)) return;
    let hello: Hello;
    try {
      hello = parseHello(body);
    } catch {
      return;
    }
    if (hello.server !== this.name) return this.fail('refused', `${this.uri} is ${hello.server}, not ${this.name}`);
    if (this.boot !== undefined && hello.boot !== this.boot) {
      this.connect(`it restarted (boot ${hello.boot})`);
    }
  }

  private fail(state: 'down' | 'refused', detail: string): void {
    if (this.stopped) return;
    this.pingTimer?.cancel();
    this.pingTimer = undefined;
    this.dropSubscription();
    const [first, cap] = this.timing.retryMs;
    const delay = Math.min(cap, first * 2 ** this.failures);
    this.failures++;
    this.retryInMs = delay;
    this.setState(state, detail);
    this.retryTimer?.cancel();
    this.retryTimer = this.timers.schedule(delay, () => {
      this.retryTimer = undefined;
      this.connect();
    });
  }

  private dropSubscription(): void {
    const subscription = this.subscription;
    this.subscription = undefined;
    // Best effort: a neighbour that is gone never answers; one that is there forgets the dialog.
    if (subscription && subscription.state !== 'terminated') void subscription.unsubscribe().catch(() => undefined);
  }

  private setState(state: LinkState, detail: string): void {
    const changed = state !== this.current;
    this.current = state;
    if (changed) this.changedAt = new Date(this.wall.now());
    if (changed || state !== 'connecting') this.emit('state', state, detail);
  }
}
