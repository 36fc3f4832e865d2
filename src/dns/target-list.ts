import { DnsError } from './dns-error.js';
import type { SipTarget } from './sip-resolver.js';
import { keyOf, type TargetMarks } from './target-marks.js';

/** Which failure best explains an empty list: a real failure beats "no records of this type". */
const ERROR_RANK: Readonly<Record<string, number>> = { DNS_NODATA: 0, DNS_NO_TARGETS: 0, DNS_NXDOMAIN: 1 };

/**
 * An RFC 3263 target list, produced lazily (reSIProcate's DnsResult): each lookup happens only
 * when the targets before it are used up. Marks reorder it: the query's last known good target
 * first, blacklisted targets never, greylisted ones after every other; each target once.
 */
export class TargetList {
  private readonly seen = new Set<string>();
  private readonly greyed: SipTarget[] = [];
  private source: AsyncGenerator<SipTarget, void, undefined> | undefined;
  private started = false;
  private queue: Promise<unknown> = Promise.resolve();
  private produced = 0;
  private failure: DnsError | undefined;

  constructor(
    /** Identifies the query for "last known good": `marks.white(target, list.key)`. */
    readonly key: string,
    private readonly marks: TargetMarks | undefined,
    produce: ((list: TargetList) => AsyncGenerator<SipTarget, void, undefined>) | undefined,
  ) {
    this.source = produce?.(this);
  }

  /** A list with no targets, for a URI that cannot be resolved at all. */
  static failed(error: DnsError): TargetList {
    const list = new TargetList('', undefined, undefined);
    list.failure = error;
    return list;
  }

  /** Why the list gave no (or no more) targets; undefined while nothing went wrong. */
  get error(): DnsError | undefined {
    return this.failure;
  }

  /** The next target, or undefined when there are no more. Never rejects; calls are served in order. */
  next(): Promise<SipTarget | undefined> {
    const result = this.queue.then(() => this.pull());
    this.queue = result;
    return result;
  }

  async all(): Promise<SipTarget[]> {
    const out: SipTarget[] = [];
    for (let target = await this.next(); target; target = await this.next()) out.push(target);
    return out;
  }

  /** Lookups report their failures here; the most telling one is kept. */
  noteError(error: DnsError): void {
    if (!this.failure || (ERROR_RANK[error.code] ?? 2) > (ERROR_RANK[this.failure.code] ?? 2)) this.failure = error;
  }

  private async pull(): Promise<SipTarget | undefined> {
    if (!this.started) {
      this.started = true;
      const good = this.marks?.lastKnownGood(this.key);
      if (good) {
        this.seen.add(keyOf(good));
        this.produced++;
        return { ...good, via: 'last known good' };
      }
    }
    while (this.source) {
      let step: IteratorResult<SipTarget, void>;
      try {
        step = await this.source.next();
      } catch (error) {
        this.noteError(error instanceof DnsError ? error : new DnsError('DNS_BAD_RESPONSE', String(error), { cause: error }));
        this.source = undefined;
        break;
      }
      if (step.done) {
        this.source = undefined;
        break;
      }
      const target = step.value;
      const key = keyOf(target);
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      const mark = this.marks?.markOf(target);
      if (mark === 'black') continue;
      if (mark === 'grey') {
        this.greyed.push(target);
        continue;
      }
      this.produced++;
      return target;
    }
    const grey = this.greyed.shift();
    if (grey) {
      this.produced++;
      return grey;
    }
    if (this.produced === 0 && !this.failure) this.failure = new DnsError('DNS_NO_TARGETS', `no usable targets for ${this.key}`);
    return undefined;
  }
}
