import { EventEmitter } from 'eventemitter3';
import type { StoredBinding } from '../../tu/dum/location-store.js';
import type { TimerHandle } from '../../util/clock.js';
import type { TimerQueue } from '../../util/timer-queue.js';
import type { Aor } from '../store/aor.js';
import type { SqliteStore, StoredMessage } from '../store/sqlite-store.js';

/** How one MESSAGE reaches one device: resolves with the device's final status (408/503 made locally). */
export type DeviceSender = (message: StoredMessage, binding: StoredBinding) => Promise<number>;

export interface DeliveryOptions {
  /** MESSAGEs in flight to one device; a function to give some targets (a relay) their own. */
  window: number | ((binding: StoredBinding) => number);
  /** Backoff: first wait and cap, ms. */
  retryMs: readonly [number, number];
}

export interface DeliveryEvents {
  /** The device answered 2xx; `first` when it is the first device of the recipient to do so. */
  delivered: [message: StoredMessage, device: string, first: boolean];
  /** The device refused it for good (a final status not worth retrying): it is skipped for that device. */
  refused: [message: StoredMessage, device: string, status: number];
  /** A round failed (timeout, 408, 480, 486, 5xx…): the next try is in `delayMs`. */
  retrying: [recipient: Aor, device: string, status: number, delayMs: number];
}

/** Messages read from the store at once for one device. */
const READ_AHEAD = 64;

/** Statuses after which a device is tried again later: it is there but cannot take it now. */
const RETRYABLE = new Set([408, 480, 486, 500, 503, 504, 600]);

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
 * Delivers each recipient's log to each of its registered devices, in log order, one device
 * independently of the others: a cursor per device (in the store) moves only over messages the
 * device answered 2xx (or refused for good), so a device that is away resumes where it stopped.
 */
export class DeliveryScheduler extends EventEmitter<DeliveryEvents> {
  private readonly couriers = new Map<string, Courier>();
  private stopped = false;

  constructor(
    readonly store: SqliteStore,
    readonly timers: Pick<TimerQueue, 'now' | 'schedule'>,
    readonly send: DeviceSender,
    readonly options: DeliveryOptions,
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
    const live = new Map<string, StoredBinding>();
    for (const binding of bindings) if (binding.expiresAt > now) live.set(deviceOf(binding), binding);
    for (const [key, courier] of this.couriers) {
      if (courier.recipient === recipient && !live.has(courier.device)) {
        courier.stop();
        this.couriers.delete(key);
      }
    }
    for (const [device, binding] of live) {
      this.store.touchDevice(recipient, device);
      const key = `${recipient}\n${device}`;
      let courier = this.couriers.get(key);
      if (!courier) this.couriers.set(key, (courier = new Courier(this, recipient, device, binding)));
      courier.rebind(binding);
    }
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
  private binding: StoredBinding;
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
    readonly device: string,
    binding: StoredBinding,
  ) {
    this.binding = binding;
  }

  /** A (new) registration of this device: its flow may have changed, and it is worth a try now. */
  rebind(binding: StoredBinding): void {
    this.binding = binding;
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
    if (this.binding.expiresAt <= this.scheduler.timers.now()) return;
    const window = typeof options.window === 'number' ? options.window : options.window(this.binding);
    while (this.flight.length < window) {
      if (this.queue.length === 0) {
        // Read ahead in batches: one query per batch, not one per message.
        const after = Math.max(store.cursor(this.recipient, this.device), this.sentUpTo);
        this.queue = store.after(this.recipient, after, Math.max(2 * window, READ_AHEAD));
        if (this.queue.length === 0) return;
      }
      const message = this.queue.shift()!;
      const item: InFlight = { message, outcome: 'sending', status: 0 };
      this.flight.push(item);
      this.sentUpTo = message.id;
      this.scheduler.send(message, this.binding).then(
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
      const { first } = this.scheduler.store.acknowledge(this.recipient, this.device, done.message.id);
      if (done.outcome === 'delivered') this.scheduler.emit('delivered', done.message, this.device, first);
      else this.scheduler.emit('refused', done.message, this.device, done.status);
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
    this.scheduler.emit('retrying', this.recipient, this.device, failed.status, delay);
    this.retryTimer = this.scheduler.timers.schedule(delay, () => {
      this.retryTimer = undefined;
      this.pump();
    });
  }
}
