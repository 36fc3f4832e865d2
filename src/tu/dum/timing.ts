/**
 * When usages act on their own: refreshes before a registration or subscription runs out,
 * retries after failures (RFC 5626 §4.5), and the wait before a re-INVITE that met glare (§14.1).
 */

/**
 * When to refresh something granted for `seconds`: halfway for short grants, a minute before the
 * end for long ones — early enough for a refresh that itself needs 32 s of retransmissions.
 */
export function refreshDelayMs(seconds: number): number {
  return Math.max(seconds / 2, seconds - 60) * 1000;
}

/** RFC 5626 §4.5 defaults: "max-time… 1800 seconds", "base-time (if all failed)… 30 seconds". */
const MAX_TIME_S = 1800;
const BASE_TIME_S = 30;

/**
 * RFC 5626 §4.5: after `failures` consecutive failures, wait a uniform random time between 50 and
 * 100% of W = min(max-time, base-time · 2^failures) — 30–60 s after the first.
 */
export function retryBackoffMs(failures: number, random: () => number = Math.random): number {
  const upper = Math.min(MAX_TIME_S, BASE_TIME_S * 2 ** Math.max(1, failures));
  return Math.round(upper * (0.5 + 0.5 * random()) * 1000);
}

/**
 * RFC 3261 §14.1: after a 491, "If the UAC is the owner of the Call-ID…, T has a randomly chosen
 * value between 2.1 and 4 seconds in units of 10 ms. If the UAC is not the owner…, T has a randomly
 * chosen value of between 0 and 2 seconds in units of 10 ms."
 */
export function glareWaitMs(ownsCallId: boolean, random: () => number = Math.random): number {
  return ownsCallId ? 2100 + 10 * Math.floor(random() * 191) : 10 * Math.floor(random() * 201);
}
