import { systemClock, type Clock } from './clock.js';

/**
 * Wall-clock time, in milliseconds since the epoch: what goes in `Date` headers and anything
 * stored or compared across restarts (a stack's timer clock promises only a monotonic scale).
 */
export interface WallClock {
  now(): number;
}

/**
 * The wall clock of a stack's `Clock`, so that everything takes its time from the one clock
 * injected into the stack (a ManualClock in tests) and never reads the system's itself.
 *
 * The system clock counts from the start of the process (`performance.now()`), so its wall
 * time is `performance.timeOrigin` plus that: monotonic (never back when NTP steps the system
 * time; it follows NTP's rate corrections). Any other clock is read as epoch milliseconds: a
 * test says `new ManualClock(Date.parse(…))`. Whole milliseconds.
 */
export function wallClockOf(clock: Pick<Clock, 'now'>): WallClock {
  if (clock === systemClock) return { now: () => Math.floor(performance.timeOrigin + systemClock.now()) };
  return { now: () => Math.floor(clock.now()) };
}

/** The wall clock of the system clock (what a stack runs on when it is given none). */
export const systemWallClock: WallClock = wallClockOf(systemClock);
