import { channel } from 'node:diagnostics_channel';

/** A consumer threw (or its promise rejected): `{ queue, item, error }`. The item is skipped, the rest run. */
export const consumerErrorChannel = channel('parley:fifo:consumer-error');

/**
 * What a queue does when its consumer throws on one item (ARCHITECTURE.md: a bug in one layer or
 * an embedder's TU must not take the batch, the layer or the process with it). Reported on
 * `parley:fifo:consumer-error` always; `onError` may answer for the item too.
 */
export function consumerFailed<T>(queue: string, item: T, error: unknown, onError: ((item: T, error: unknown) => void) | undefined): void {
  if (consumerErrorChannel.hasSubscribers) consumerErrorChannel.publish({ queue, item, error });
  try {
    onError?.(item, error);
  } catch (secondary) {
    if (consumerErrorChannel.hasSubscribers) consumerErrorChannel.publish({ queue, item, error: secondary });
  }
}

export interface FifoOptions<T> {
  /** Items handed to the consumer per turn of the event loop. Default 64. */
  batch?: number;
  /** A name for diagnostics. */
  name?: string;
  /** Called for an item the consumer threw on (after it is reported). */
  onError?: (item: T, error: unknown) => void;
}

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

  private readonly batch: number;

  constructor(
    private readonly consume: (item: T) => void,
    private readonly options: FifoOptions<T> = {},
  ) {
    this.batch = options.batch ?? 64;
  }

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
      try {
        this.consume(item);
      } catch (error) {
        consumerFailed(this.options.name ?? 'fifo', item, error, this.options.onError);
      }
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
