import { channel } from 'node:diagnostics_channel';
import type { TimerHandle } from '../util/clock.js';
import { ParleyError } from '../util/errors.js';
import type { TimerQueue } from '../util/timer-queue.js';
import type { TimerValues } from './timers.js';

/** A transition the state table does not allow: a bug in the stack, never a network condition. */
export class IllegalTransitionError extends ParleyError {
  constructor(kind: string, from: string, to: string) {
    super('TRANSACTION_ILLEGAL_TRANSITION', `${kind} transaction cannot go from ${from} to ${to}`);
  }
}

export type TransactionKind = 'invite-client' | 'non-invite-client' | 'invite-server' | 'non-invite-server';

const stateChannel = channel('parley:transaction:state');

/** What every transaction needs from the layer that owns it. */
export interface TransactionHost {
  readonly timers: TimerQueue;
  /** The transaction reached Terminated: forget it. */
  terminated(transaction: Transaction<string>): void;
}

/**
 * What the four machines share: an explicit table of allowed transitions (an illegal one throws),
 * named timers on the stack's TimerQueue, and a Terminated state that leaves nothing behind.
 */
export abstract class Transaction<S extends string> {
  abstract readonly kind: TransactionKind;
  protected abstract readonly table: Readonly<Record<S, readonly S[]>>;
  private state_: S;
  private readonly timers = new Map<string, TimerHandle>();

  constructor(
    /** The matching key (§17.1.3 / §17.2.3); also the tid given to the transport layer. */
    readonly id: string,
    initial: S,
    protected readonly host: TransactionHost,
    protected readonly values: TimerValues,
  ) {
    this.state_ = initial;
  }

  get state(): S {
    return this.state_;
  }

  get terminated(): boolean {
    return this.state_ === ('terminated' as S);
  }

  /** Still working toward a final response (not merely absorbing retransmissions). */
  get active(): boolean {
    const state: string = this.state_;
    return state === 'calling' || state === 'trying' || state === 'proceeding';
  }

  /** Ends the transaction without another message (the stack is shutting down). */
  abandon(): void {
    if (!this.terminated) this.transition('terminated' as S);
  }

  protected transition(to: S): void {
    const from = this.state_;
    if (from === to) return;
    if (!this.table[from].includes(to)) throw new IllegalTransitionError(this.kind, from, to);
    this.state_ = to;
    if (stateChannel.hasSubscribers) stateChannel.publish({ id: this.id, kind: this.kind, from, to });
    if (to === ('terminated' as S)) {
      for (const timer of this.timers.values()) timer.cancel();
      this.timers.clear();
      this.host.terminated(this);
    }
  }

  /** Starts (or restarts) a named timer. */
  protected startTimer(name: string, ms: number, fire: () => void): void {
    this.timers.get(name)?.cancel();
    this.timers.set(
      name,
      this.host.timers.schedule(ms, () => {
        this.timers.delete(name);
        fire();
      }),
    );
  }

  protected stopTimer(name: string): void {
    this.timers.get(name)?.cancel();
    this.timers.delete(name);
  }

  /** Stops every timer but the named ones. */
  protected stopTimersExcept(...keep: string[]): void {
    for (const [name, timer] of this.timers) {
      if (keep.includes(name)) continue;
      timer.cancel();
      this.timers.delete(name);
    }
  }
}
