import { systemClock, type Clock, type TimerHandle } from './clock.js';

interface Entry {
  at: number;
  seq: number;
  fire: () => void;
  /** Position in the heap, -1 once fired or cancelled. */
  index: number;
}

/**
 * Every protocol timer of a stack in one binary heap over an injectable Clock, with one clock
 * timer armed for the earliest deadline (ARCHITECTURE.md). A cancelled timer is taken out of the
 * heap at once (each entry knows its index), so cancellations never pile up.
 */
export class TimerQueue {
  private heap: Entry[] = [];
  private seq = 0;
  private armed: TimerHandle | undefined;
  private armedAt = Infinity;

  constructor(private readonly clock: Clock = systemClock) {}

  /** Live timers. */
  get size(): number {
    return this.heap.length;
  }

  now(): number {
    return this.clock.now();
  }

  schedule(ms: number, fire: () => void): TimerHandle {
    const entry: Entry = { at: this.clock.now() + Math.max(0, ms), seq: this.seq++, fire, index: this.heap.length };
    this.heap.push(entry);
    this.siftUp(entry.index);
    if (entry.index === 0) this.arm();
    return { cancel: () => this.remove(entry) };
  }

  private remove(entry: Entry): void {
    const i = entry.index;
    if (i < 0) return;
    entry.index = -1;
    const last = this.heap.pop()!;
    if (i < this.heap.length) {
      this.heap[i] = last;
      last.index = i;
      this.siftDown(i);
      this.siftUp(last.index);
    }
    if (i === 0) this.arm();
  }

  /** (Re)arms the one clock timer for the earliest deadline. */
  private arm(): void {
    const first = this.heap[0];
    if (!first) {
      this.armed?.cancel();
      this.armed = undefined;
      this.armedAt = Infinity;
      return;
    }
    if (this.armed && this.armedAt === first.at) return;
    this.armed?.cancel();
    this.armedAt = first.at;
    this.armed = this.clock.setTimer(first.at - this.clock.now(), () => this.expire());
  }

  private expire(): void {
    this.armed = undefined;
    this.armedAt = Infinity;
    const now = this.clock.now();
    // Fire everything due, earliest first; a timer scheduled by a callback for "now" fires too.
    for (let first = this.heap[0]; first && first.at <= now; first = this.heap[0]) {
      this.remove(first);
      first.fire();
    }
    this.arm();
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!this.less(entry, p)) break;
      heap[i] = p;
      p.index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const entry = heap[i]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.less(heap[right]!, heap[left]!) ? right : left;
      const c = heap[child]!;
      if (!this.less(c, entry)) break;
      heap[i] = c;
      c.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}
