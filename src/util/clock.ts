/** A timer set on a `Clock`. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Time, injected: every timer in the stack goes through a Clock so tests can drive time by hand
 * (ARCHITECTURE.md: no test sleeps to wait for a protocol timer).
 */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  setTimer(ms: number, fire: () => void): TimerHandle;
}

/** The real clock: `performance.now()` and unref'd Node timers (they never hold the process open). */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fire) {
    const timer = setTimeout(fire, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

interface ManualTimer {
  at: number;
  seq: number;
  fire: () => void;
  cancelled: boolean;
}

/** A clock that moves only when told to; `advance()` fires due timers in deadline order. */
export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fire: () => void): TimerHandle {
    const timer: ManualTimer = { at: this.time + Math.max(0, ms), seq: this.seq++, fire, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Timers still waiting to fire. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, including ones set meanwhile. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: ManualTimer | undefined;
      for (const t of this.timers) {
        if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.time = next.at;
      next.cancelled = true;
      next.fire();
    }
    this.time = target;
  }
}
