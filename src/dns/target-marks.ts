import { LRUCache } from 'lru-cache';
import { systemClock, type Clock } from '../util/clock.js';

/** The transports RFC 3263 can pick (RFC 7118 adds the WebSocket pair). */
export type SipTransport = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** A place a request can go. */
export interface TargetTuple {
  readonly transport: SipTransport;
  readonly address: string;
  readonly port: number;
}

export type Mark = 'black' | 'grey' | 'white';

export interface TargetMarksOptions {
  clock?: Clock;
  /** Default blacklisting. Default 32 s (64·T1, a whole transaction's lifetime). */
  blacklistMs?: number;
  greylistMs?: number;
  /** How long a target that answered stays the query's first choice. Default 5 minutes. */
  whitelistMs?: number;
  /** Targets remembered at most. Default 10,000. */
  maxEntries?: number;
}

interface Marked {
  readonly mark: Mark;
  readonly until: number;
}

/**
 * reSIProcate's TupleMarkManager: what the stack learned about each target. Black targets are
 * skipped, grey ones tried after all others, each for a while; a white target answered and is
 * the "last known good" for the query that found it, tried first the next time.
 */
export class TargetMarks {
  private readonly clock: Clock;
  private readonly marks: LRUCache<string, Marked>;
  private readonly lastGood: LRUCache<string, { target: TargetTuple; until: number }>;
  private readonly blacklistMs: number;
  private readonly greylistMs: number;
  private readonly whitelistMs: number;

  constructor(options: TargetMarksOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.blacklistMs = options.blacklistMs ?? 32_000;
    this.greylistMs = options.greylistMs ?? 32_000;
    this.whitelistMs = options.whitelistMs ?? 300_000;
    this.marks = new LRUCache({ max: options.maxEntries ?? 10_000 });
    this.lastGood = new LRUCache({ max: options.maxEntries ?? 10_000 });
  }

  black(target: TargetTuple, ms = this.blacklistMs): void {
    this.set(target, 'black', ms);
  }

  grey(target: TargetTuple, ms = this.greylistMs): void {
    this.set(target, 'grey', ms);
  }

  /** The target answered: clears black/grey, and with `key` makes it that query's first choice. */
  white(target: TargetTuple, key?: string): void {
    this.set(target, 'white', this.whitelistMs);
    if (key !== undefined) this.lastGood.set(key, { target: { transport: target.transport, address: target.address, port: target.port }, until: this.clock.now() + this.whitelistMs });
  }

  markOf(target: TargetTuple): Mark | undefined {
    const key = keyOf(target);
    const marked = this.marks.get(key);
    if (!marked) return undefined;
    if (marked.until <= this.clock.now()) {
      this.marks.delete(key);
      return undefined;
    }
    return marked.mark;
  }

  /** The query's last known good target, while it is still white. */
  lastKnownGood(key: string): TargetTuple | undefined {
    const entry = this.lastGood.get(key);
    if (!entry) return undefined;
    if (entry.until <= this.clock.now() || this.markOf(entry.target) !== 'white') {
      this.lastGood.delete(key);
      return undefined;
    }
    return entry.target;
  }

  private set(target: TargetTuple, mark: Mark, ms: number): void {
    this.marks.set(keyOf(target), { mark, until: this.clock.now() + Math.max(0, ms) });
  }
}

export function keyOf(target: TargetTuple): string {
  return `${target.transport}|${target.address}|${target.port}`;
}
