import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import { consumerFailed } from './fifo.js';

/** New work (refused under overload) or work that finishes something admitted (always taken). */
export type WorkKind = 'request' | 'other';

export interface TimeLimitFifoOptions {
  /** Refuse new work when its expected wait passes this, ms. */
  limitMs: number;
  /** Hard cap on queued items, whatever the clock says. Default 10,000. */
  maxLength?: number;
  /** Items handed to the consumer per turn of the event loop. Default 64. */
  batch?: number;
  /** Items whose returned promise may be pending at once. Default 1 (one at a time). */
  concurrency?: number;
  clock?: Clock;
  /** A name for diagnostics. */
  name?: string;
}

/**
 * A FIFO that knows how long its work waits (reSIProcate's TimeLimitFifo). New work is refused
 * when either the oldest queued item has already waited longer than `limitMs`, or the queue's
 * length times the measured time to serve one item says the newcomer would. Work that finishes
 * something already admitted (responses, ACKs) is always taken. A consumer may return a promise:
 * the queue then waits for it (up to `concurrency` at once) before handing over more.
 */
export class TimeLimitFifo<T> {
  private items: Array<{ item: T; at: number }> = [];
  private head = 0;
  private scheduled = false;
  private inFlight = 0;
  /** Moving average of the time one item takes to serve, ms. */
  private serviceMs = 0;

  constructor(
    private readonly consume: (item: T) => void | Promise<void>,
    private readonly options: TimeLimitFifoOptions,
    /** Called for an item whose consumer threw or rejected (after it is reported on the channel). */
    private readonly onError?: (item: T, error: unknown) => void,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** How long the oldest queued item has waited, ms. */
  get wait(): number {
    const oldest = this.items[this.head];
    return oldest ? this.clock.now() - oldest.at : 0;
  }

  /**
   * The wait a newcomer can expect, ms: none while a slot is free; else one service time for
   * every `concurrency` items ahead of it beyond the slots (items in flight run side by side, so
   * 25 handlers waiting on one 80 ms disk commit are an 80 ms wait, not 2 s).
   */
  get expectedWait(): number {
    const concurrency = this.options.concurrency ?? 1;
    const ahead = this.size + this.inFlight;
    const rounds = ahead < concurrency ? 0 : Math.ceil((ahead - concurrency + 1) / concurrency);
    return Math.max(this.wait, rounds * this.serviceMs);
  }

  admits(kind: WorkKind): boolean {
    if (kind !== 'request') return true;
    return this.expectedWait <= this.options.limitMs && this.size < (this.options.maxLength ?? 10_000);
  }

  /** Queues an item; returns false (and drops it) when new work is refused. */
  push(item: T, kind: WorkKind = 'other'): boolean {
    if (!this.admits(kind)) return false;
    this.items.push({ item, at: this.clock.now() });
    this.schedule();
    return true;
  }

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.drain);
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const concurrency = this.options.concurrency ?? 1;
    let served = 0;
    const batch = this.options.batch ?? 64;
    while (this.head < this.items.length && served < batch && this.inFlight < concurrency) {
      const entry = this.items[this.head]!;
      this.items[this.head++] = undefined as unknown as { item: T; at: number };
      served++;
      const started = this.clock.now();
      let result: void | Promise<void>;
      try {
        result = this.consume(entry.item);
      } catch (error) {
        this.failed(entry.item, error);
        this.measure(started);
        continue;
      }
      if (result && typeof (result as Promise<void>).then === 'function') {
        this.inFlight++;
        const item = entry.item;
        (result as Promise<void>).then(
          () => this.finished(started),
          (error: unknown) => {
            this.failed(item, error);
            this.finished(started);
          },
        );
      } else this.measure(started);
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.inFlight < concurrency) this.schedule();
  };

  private failed(item: T, error: unknown): void {
    consumerFailed(this.options.name ?? 'time-limit-fifo', item, error, this.onError);
  }

  private finished(started: number): void {
    this.inFlight--;
    this.measure(started);
    if (this.size > 0) this.schedule();
  }

  private measure(started: number): void {
    const took = this.clock.now() - started;
    this.serviceMs = this.serviceMs === 0 ? took : this.serviceMs * 0.8 + took * 0.2;
  }
}
