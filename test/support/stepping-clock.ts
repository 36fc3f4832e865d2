// A ManualClock that knows its own deadlines, so a test can move time from one timer to the next
// and let the event loop run (FIFOs drain on setImmediate, sends resolve on promises) between
// them. Every protocol timer then fires at its exact virtual time and whatever it sends is seen at
// that time, without any test sleeping on the real clock.
import { ManualClock, type TimerHandle } from '../../src/index.js';

interface Tracked {
  at: number;
  live: boolean;
}

/** Lets queued immediates and promise callbacks run: `rounds` turns of the event loop. */
export async function settle(rounds = 12): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class SteppingClock extends ManualClock {
  private readonly tracked = new Set<Tracked>();
  /** setTimer calls so far. */
  setTimerCalls = 0;
  /** The most clock timers that were live at once. */
  maxLive = 0;

  override setTimer(ms: number, fire: () => void): TimerHandle {
    this.setTimerCalls++;
    const entry: Tracked = { at: this.now() + Math.max(0, ms), live: true };
    this.tracked.add(entry);
    this.maxLive = Math.max(this.maxLive, this.tracked.size);
    const handle = super.setTimer(ms, () => {
      if (!entry.live) return;
      entry.live = false;
      this.tracked.delete(entry);
      fire();
    });
    return {
      cancel: () => {
        if (!entry.live) return;
        entry.live = false;
        this.tracked.delete(entry);
        handle.cancel();
      },
    };
  }

  /** Clock timers set and neither fired nor cancelled. */
  get live(): number {
    return this.tracked.size;
  }

  /** Deadlines of the live clock timers, earliest first. */
  get deadlines(): number[] {
    return [...this.tracked].map((t) => t.at).sort((a, b) => a - b);
  }

  /** The earliest live deadline, or undefined. */
  get nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const t of this.tracked) if (next === undefined || t.at < next) next = t.at;
    return next;
  }

  /**
   * Moves time forward by `ms`, stopping at every deadline on the way: fires what is due, then lets
   * the event loop settle (so sends triggered by a timer happen at the timer's time) before moving on.
   * Timers set for "now" by what just ran fire before time moves.
   */
  async step(ms: number, rounds = 12): Promise<void> {
    const target = this.now() + ms;
    await settle(rounds);
    for (let guard = 0; ; guard++) {
      if (guard > 1_000_000) throw new Error('SteppingClock.step: timers keep rescheduling for now');
      const next = this.nextDeadline;
      if (next === undefined || next > target) break;
      this.advance(Math.max(0, next - this.now()));
      await settle(rounds);
    }
    // (Something that ran may have moved the clock past the target itself: time never goes back.)
    if (target > this.now()) this.advance(target - this.now());
    await settle(rounds);
  }

  /** `step` to an absolute time. */
  async stepTo(time: number, rounds = 12): Promise<void> {
    if (time < this.now()) throw new Error(`stepTo(${time}): the clock is already at ${this.now()}`);
    await this.step(time - this.now(), rounds);
  }
}
