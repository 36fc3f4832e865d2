// Waiting on real I/O while protocol time stands still (a ManualClock): loopback sockets and
// promises get turns of the event loop, with a cap in real time so a missing event fails with
// its name instead of a mocha timeout. Never a sleep standing in for a protocol timer.

/** Real-time cap on waiting for loopback I/O. */
export const IO_MS = 5000;

/** Turns the event loop until `condition` holds; fails after `ms` of real time. */
export async function until(condition: () => boolean, what: string, ms = IO_MS): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out (${ms} ms real time) waiting for ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Lets I/O run for `ms` of real time (to assert that something did NOT happen). */
export async function drain(ms = 40): Promise<void> {
  const end = performance.now() + ms;
  do await new Promise<void>((resolve) => setImmediate(resolve));
  while (performance.now() < end);
}

/** The promise's value, or a failure naming `what` when it has not settled after `ms` of real time. */
export async function within<T>(promise: Promise<T>, what: string, ms = IO_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms of real time`)), ms);
  });
  try {
    return await Promise.race([promise, cap]);
  } finally {
    clearTimeout(timer);
  }
}
