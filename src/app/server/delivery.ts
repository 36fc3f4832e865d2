import { EventEmitter } from 'eventemitter3';
import type { StoredBinding } from '../../tu/dum/location-store.js';
import type { TimerHandle } from '../../util/clock.js';
import type { TimerQueue } from '../../util/timer-queue.js';
import type { Aor } from '../store/aor.js';
import type { MessageLog, StoredMessage } from '../store/store.js';

/**
 * Where a courier takes a recipient's log (a discriminated union on `kind`): a registered
 * device of a local recipient, at its binding; or, for a recipient of another domain, the relay
 * to the next hop (docs/federation.md), which is not a device and has no binding. `cursor` is
 * the name the acknowledged position is kept under in the store.
 */
export type CourierTarget = DeviceTarget | RelayTarget;

export interface DeviceTarget {
  readonly kind: 'device';
  /** The device (deviceOf the binding). */
  readonly cursor: string;
  readonly binding: StoredBinding;
}

export interface RelayTarget {
  readonly kind: 'relay';
  readonly cursor: typeof RELAY_CURSOR;
}

/**
 * The cursor of a foreign recipient's relay courier. Databases of earlier versions keep the
 * relay's position under this name too, so it stays as it was.
 */
export const RELAY_CURSOR = 'parley:relay';

/** The one relay target: it never expires, and the next hop's 2xx moves its cursor. */
export const RELAY: RelayTarget = Object.freeze({ kind: 'relay', cursor: RELAY_CURSOR });

/** How one MESSAGE reaches one target: resolves with its final status (408/503 made locally). */
export type CourierSender = (message: StoredMessage, target: CourierTarget) => Promise<number>;

export interface DeliveryOptions {
  /** MESSAGEs in flight to one target; a function to give some targets (the relay) their own. */
  window: number | ((target: CourierTarget) => number);
  /** Backoff: first wait and cap, ms. */
  retryMs: readonly [number, number];
}

export interface DeliveryEvents {
  /** The target answered 2xx; `first` when it is the first of the recipient's to do so. */
  delivered: [message: StoredMessage, target: CourierTarget, first: boolean];
  /** The target refused it for good (a final status not worth retrying): it is skipped for that target. */
  refused: [message: StoredMessage, target: CourierTarget, status: number];
  /** A round failed (timeout, 408, 480, 486, 5xx…): the next try is in `delayMs`. */
  retrying: [recipient: Aor, target: CourierTarget, status: number, delayMs: number];
}

/** What the scheduler needs of the store: the log and the cursors. */
export type DeliveryLog = Pick<MessageLog, 'after' | 'cursor' | 'touchDevice' | 'acknowledge'>;

/** Messages read from the store at once for one device. */
const READ_AHEAD = 64;

/**
 * Statuses after which a device is tried again later: it is there but cannot take it now. 430
 * Flow Failed (RFC 5626 §5.3, §11.5): the connection it registered over is gone; it registers
 * again on a new flow (which retries at once), so the message waits for it, never skipped.
 */
const RETRYABLE = new Set([408, 430, 480, 486, 500, 503, 504, 600]);

/** A device is its RFC 5626 instance when it has one, else its Contact (docs/server.md "Delivery"). */
export function deviceOf(binding: StoredBinding): string {
  return binding.instance ?? binding.contact;
}

interface InFlight {
  message: StoredMessage;
  outcome: 'sending' | 'delivered' | 'refused' | 'failed';
  status: number;
}

/**
 * Delivers each recipient's log to each of its targets — its registered devices, or the relay
 * for a recipient of another domain — in log order, one target independently of the others: a
 * cursor per target (in the store) moves only over messages the target answered 2xx (or refused
 * for good), so a device that is away resumes where it stopped.
 */
export class DeliveryScheduler extends EventEmitter<DeliveryEvents> {
  private readonly couriers = new Map<string, Courier>();
  private stopped = false;

  constructor(
    readonly store: DeliveryLog,
    readonly timers: Pick<TimerQueue, 'now' | 'schedule'>,
    readonly send: CourierSender,
    readonly options: DeliveryOptions,
    /** Wall-clock ms for the store's device times (registration times are kept across restarts). */
    readonly wallNow: () => number,
  ) {
    super();
  }

  /**
   * The recipient's current bindings (after a registration change): a courier per device, the
   * ones gone stopped. A device that registers again is tried at once, whatever its backoff.
   */
  update(recipient: Aor, bindings: readonly StoredBinding[]): void {
    if (this.stopped) return;
    const now = this.timers.now();
    const live = new Map<string, DeviceTarget>();
    for (const binding of bindings) {
      const cursor = deviceOf(binding);
      if (binding.expiresAt > now) live.set(cursor, { kind: 'device', cursor, binding });
    }
    for (const [key, courier] of this.couriers) {
      if (courier.recipient === recipient && courier.target.kind === 'device' && !live.has(courier.target.cursor)) {
        courier.stop();
        this.couriers.delete(key);
      }
    }
    for (const target of live.values()) {
      this.store.touchDevice(recipient, target.cursor, this.wallNow());
      this.courier(recipient, target).retarget(target);
    }
  }

  /**
   * The recipient's log goes to the next hop (docs/federation.md): a relay courier, started
   * when there is none, and tried at once whatever its backoff (a route appeared, a link came up).
   */
  relay(recipient: Aor): void {
    if (this.stopped) return;
    // Seen now, like a device that registers: a purge keeps the relay's cursor while it is in use.
    this.store.touchDevice(recipient, RELAY_CURSOR, this.wallNow());
    this.courier(recipient, RELAY).retarget(RELAY);
  }

  private courier(recipient: Aor, target: CourierTarget): Courier {
    const key = `${recipient}\n${target.cursor}`;
    let courier = this.couriers.get(key);
    if (!courier) this.couriers.set(key, (courier = new Courier(this, recipient, target)));
    return courier;
  }

  /** New messages were committed for the recipient. */
  kick(recipient: Aor): void {
    for (const courier of this.couriers.values()) if (courier.recipient === recipient) courier.pump();
  }

  /** Devices being delivered to, for the admin view and tests. */
  get deviceCount(): number {
    return this.couriers.size;
  }

  stop(): void {
    this.stopped = true;
    for (const courier of this.couriers.values()) courier.stop();
    this.couriers.clear();
  }
}

class Courier {
  private flight: InFlight[] = [];
  /** Read from the store, not yet sent, in log order. */
  private queue: StoredMessage[] = [];
  /** The highest id sent in this round (messages after the cursor already in flight). */
  private sentUpTo = 0;
  private retryTimer: TimerHandle | undefined;
  private failures = 0;
  private roundFailed = false;
  private stopped = false;

  constructor(
    private readonly scheduler: DeliveryScheduler,
    readonly recipient: Aor,
    public target: CourierTarget,
  ) {}

  /** A (new) registration of this device, or a reason to try the relay: its flow may have changed, and it is worth a try now. */
  retarget(target: CourierTarget): void {
    this.target = target;
    if (this.retryTimer) {
      this.retryTimer.cancel();
      this.retryTimer = undefined;
      this.failures = 0;
    }
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
  }

  pump(): void {
    if (this.stopped || this.retryTimer || this.roundFailed) return;
    const { store, options } = this.scheduler;
    // A device's binding ends; the relay does not.
    if (this.target.kind === 'device' && this.target.binding.expiresAt <= this.scheduler.timers.now()) return;
    const window = typeof options.window === 'number' ? options.window : options.window(this.target);
    while (this.flight.length < window) {
      if (this.queue.length === 0) {
        // Read ahead in batches: one query per batch, not one per message.
        const after = Math.max(store.cursor(this.recipient, this.target.cursor), this.sentUpTo);
        this.queue = store.after(this.recipient, after, Math.max(2 * window, READ_AHEAD));
        if (this.queue.length === 0) return;
      }
      const message = this.queue.shift()!;
      const item: InFlight = { message, outcome: 'sending', status: 0 };
      this.flight.push(item);
      this.sentUpTo = message.id;
      this.scheduler.send(message, this.target).then(
        (status) => this.settle(item, status),
        () => this.settle(item, 503),
      );
    }
  }

  private settle(item: InFlight, status: number): void {
    item.status = status;
    item.outcome = status >= 200 && status < 300 ? 'delivered' : RETRYABLE.has(status) ? 'failed' : 'refused';
    if (item.outcome === 'failed') this.roundFailed = true;
    if (this.stopped) return;
    // The cursor moves over the settled prefix only: log order per device.
    while (this.flight.length > 0 && (this.flight[0]!.outcome === 'delivered' || this.flight[0]!.outcome === 'refused')) {
      const done = this.flight.shift()!;
      const { first } = this.scheduler.store.acknowledge(this.recipient, this.target.cursor, done.message.id, this.scheduler.wallNow());
      if (done.outcome === 'delivered') this.scheduler.emit('delivered', done.message, this.target, first);
      else this.scheduler.emit('refused', done.message, this.target, done.status);
    }
    if (!this.roundFailed) {
      this.failures = 0;
      this.pump();
      return;
    }
    if (this.flight.some((f) => f.outcome === 'sending')) return;
    // Every request of the failed round has settled: start again after the cursor, after a wait.
    const failed = this.flight.find((f) => f.outcome === 'failed')!;
    this.flight = [];
    this.queue = [];
    this.sentUpTo = 0;
    this.roundFailed = false;
    const [first, cap] = this.scheduler.options.retryMs;
    const delay = Math.min(cap, first * 2 ** this.failures);
    this.failures++;
    this.scheduler.emit('retrying', this.recipient, this.target, failed.status, delay);
    this.retryTimer = this.scheduler.timers.schedule(delay, () => {
      this.retryTimer = undefined;
      this.pump();
    });
  }
}
