/** The stack's base timer values (RFC 3261 §17.1.1.1, Table 4). */
export interface TimerBase {
  /** RTT estimate, default 500 ms. */
  t1: number;
  /** Maximum retransmission interval for non-INVITE requests and INVITE responses, default 4 s. */
  t2: number;
  /** Maximum time a message stays in the network, default 5 s. */
  t4: number;
}

export const DEFAULT_TIMERS: TimerBase = { t1: 500, t2: 4000, t4: 5000 };

/** Every RFC 3261 §17 timer (and RFC 6026's L and M) for one transport reliability (Table 4). */
export interface TimerValues {
  /** INVITE request retransmission, initially T1, doubling (unreliable only). */
  A: number;
  /** INVITE transaction timeout: 64·T1. */
  B: number;
  /** Wait for response retransmissions: ≥ 32 s unreliable, 0 reliable. */
  D: number;
  /** Non-INVITE request retransmission, initially T1, doubling to T2 (unreliable only). */
  E: number;
  /** Non-INVITE transaction timeout: 64·T1. */
  F: number;
  /** INVITE response retransmission, initially T1, doubling to T2 (unreliable only). */
  G: number;
  /** Wait for ACK receipt: 64·T1. */
  H: number;
  /** Wait for ACK retransmissions: T4 unreliable, 0 reliable. */
  I: number;
  /** Wait for non-INVITE request retransmissions: 64·T1 unreliable, 0 reliable. */
  J: number;
  /** Wait for response retransmissions: T4 unreliable, 0 reliable. */
  K: number;
  /** RFC 6026: wait for 2xx-to-INVITE retransmissions in Accepted (server): 64·T1. */
  L: number;
  /** RFC 6026: wait for 2xx-to-INVITE retransmissions in Accepted (client): 64·T1. */
  M: number;
  T2: number;
}

export function timerValues(base: TimerBase, reliable: boolean): TimerValues {
  const { t1, t2, t4 } = base;
  return {
    A: t1,
    B: 64 * t1,
    D: reliable ? 0 : Math.max(32_000, 64 * t1),
    E: t1,
    F: 64 * t1,
    G: t1,
    H: 64 * t1,
    I: reliable ? 0 : t4,
    J: reliable ? 0 : 64 * t1,
    K: reliable ? 0 : t4,
    L: 64 * t1,
    M: 64 * t1,
    T2: t2,
  };
}

/** §17.2.1: the server transaction sends 100 Trying when the TU is silent this long. */
export const TRYING_DELAY_MS = 200;
