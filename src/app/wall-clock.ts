import { systemClock, type Clock } from '../util/clock.js';

// Wall-clock time for the Parley server and client is the stack's (src/util/wall-clock.ts):
// everything in src/app takes its time from the one clock injected into the stack (a
// ManualClock in tests) and never reads the system's itself.
export { systemWallClock, wallClockOf, type WallClock } from '../util/wall-clock.js';

/**
 * What `wallClockOf(clock)` adds to the clock's reading, as a constant: `performance.timeOrigin`
 * for the system clock (it counts from the start of the process), 0 for any other (read as
 * epoch milliseconds). For converting times a DUM keeps on its clock — a binding's end — to
 * and from wall-clock time exactly, with no rounding to drift on a read and write back.
 */
export function epochOffset(clock: Pick<Clock, 'now'>): number {
  return clock === systemClock ? performance.timeOrigin : 0;
}
