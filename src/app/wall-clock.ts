import { systemClock, type Clock } from '../util/clock.js';

/**
 * Wall-clock time, in milliseconds since the epoch: what the Parley server stores (a message's
 * `receivedAt`, a device's last registration), writes in `Date` headers and CPIM `DateTime`, and
 * compares with retention. It must mean the same after a restart, which a stack's timer clock
 * does not promise.
 */
export interface WallClock {
  now(): number;
}

/**
 * What to add to a stack clock's reading to get epoch milliseconds. The system clock counts
 * from the start of the process (`performance.now()`), so its offset is `performance.timeOrigin`
 * — a constant: its wall time is monotonic, never back when NTP steps the system time (it follows
 * NTP's rate corrections). Any other clock is read as epoch milliseconds (offset 0), as the
 * DUM's digest nonces read an injected clock: a test says `new ManualClock(Date.parse(…))`.
 */
export function epochOffset(clock: Pick<Clock, 'now'>): number {
  return clock === systemClock ? performance.timeOrigin : 0;
}

/**
 * The wall clock of a stack's `Clock`, so that everything in src/app takes its time from the one
 * clock injected into the stack (a ManualClock in tests) and never reads the system's itself.
 * Whole milliseconds: the store keeps integers.
 */
export function wallClockOf(clock: Pick<Clock, 'now'>): WallClock {
  const offset = epochOffset(clock);
  return { now: () => Math.floor(offset + clock.now()) };
}

/** The wall clock of the system clock (what a stack runs on when it is given none). */
export const systemWallClock: WallClock = wallClockOf(systemClock);
