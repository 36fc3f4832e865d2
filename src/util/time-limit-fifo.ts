import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

/**
 * A Fifo that knows how long its oldest item has waited (reSIProcate's TimeLimitFifo). When the
 * wait passes `limitMs`, `admits('request')` says no: new work is refused (the caller answers 503
 * with Retry-After) while work that finishes something already admitted — responses, ACKs — is
 * always taken. A hard cap on length bounds memory whatever the clock says.
 */
export type WorkKind = 'request' | 'other';

export class TimeLimitFifo<T> {
  private items: Array<{ item: T; at: number }> = [];
  private head = 0;
  private scheduled = false;

  constructor(
    private readonly consume: (item: T) => void,
    private readonly options: { limitMs: number; maxLength?: number; batch?: number; clock?: Clock },
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** How long the oldest queued item has waited, ms. */
  get wait(): number {
    const oldest = this.items[this.head];
    return oldest ? this.clock.now() - oldest.at : 0;
  }

  /** Whether work of this kind would be taken now. */
  admits(kind: WorkKind): boolean {
    if (kind !== 'request') return true;
    return this.wait <= this.options.limitMs && this.size < (this.options.maxLength ?? 10_000);
  }

  /** Queues an item; returns false (and drops it) when a request is refused. */
  push(item: T, kind: WorkKind = 'other'): boolean {
    if (!this.admits(kind)) return false;
    this.items.push({ item, at: this.clock.now() });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
    return true;
  }

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const end = Math.min(this.items.length, this.head + (this.options.batch ?? 64));
    while (this.head < end) {
      const entry = this.items[this.head]!;
      this.items[this.head++] = undefined as unknown as { item: T; at: number };
      this.consume(entry.item);
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  };
}
