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
 * The wall clock of a stack's `Clock`, so that everything in src/app takes its time from the one
 * clock injected into the stack (a ManualClock in tests) and never reads the system's itself.
 *
 * The system clock counts from the start of the process (`performance.now()`), so its wall
 * time is `performance.timeOrigin` plus that: monotonic (never back when NTP steps the system
 * time; it follows NTP's rate corrections). Any other clock is read as epoch milliseconds, as
 * the DUM's digest nonces read an injected clock: a test says `new ManualClock(Date.parse(…))`.
 * Whole milliseconds: the store keeps integers.
 */
export function wallClockOf(clock: Pick<Clock, 'now'>): WallClock {
  if (clock === systemClock) return { now: () => Math.floor(performance.timeOrigin + systemClock.now()) };
  return { now: () => Math.floor(clock.now()) };
}

/** The wall clock of the system clock (what a stack runs on when it is given none). */
export const systemWallClock: WallClock = wallClockOf(systemClock);
