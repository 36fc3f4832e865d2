/** Anything a layer can push events into: a `Fifo`, or a plain collector in a test. */
export interface Sink<T> {
  push(item: T): void;
}

/**
 * The queue between two layers (ARCHITECTURE.md): the producer pushes, the consumer drains in
 * bounded batches on `setImmediate`, so each item runs to completion, I/O interleaves, and no
 * layer re-enters another from inside a socket callback.
 */
export class Fifo<T> implements Sink<T> {
  private items: T[] = [];
  private head = 0;
  private scheduled = false;

  constructor(
    private readonly consume: (item: T) => void,
    private readonly batch = 64,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const end = Math.min(this.items.length, this.head + this.batch);
    while (this.head < end) {
      const item = this.items[this.head]!;
      this.items[this.head++] = undefined as T;
      this.consume(item);
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
