import { LRUCache } from 'lru-cache';
import type { Clock, TimerHandle } from '../util/clock.js';
import { tupleKey } from './address.js';
import { TransportError } from './transport-error.js';
import type { Tuple } from './types.js';

/** What the manager needs of a connection (a TCP/TLS socket or a WebSocket). */
export interface ManagedConnection {
  readonly id: number;
  readonly remote: Tuple;
  /** When bytes last moved either way (clock milliseconds). */
  lastActivity: number;
  /** No message half-received and nothing waiting to be written: safe to close. */
  isIdle(): boolean;
  close(reason: TransportError): void;
}

export interface ConnectionManagerOptions {
  maxConnections: number;
  /** Close a connection with no traffic for this long; 0 = never. */
  idleTimeoutMs: number;
  clock: Clock;
}

/**
 * The connections of one stream transport (reSIProcate's ConnectionManager): found by the remote
 * (protocol, address, port) in an LRU so the same connection serves both directions (RFC 3261
 * §18.2.2, §18.1.1); at the limit the least recently used *idle* connection is closed to make room;
 * a connection without traffic for `idleTimeoutMs` is closed, whether or not it left a message half
 * sent (that is how a peer that trickles bytes forever is shed).
 */
export class ConnectionManager<C extends ManagedConnection> {
  // Recency order only: the manager evicts by hand (an idle one, never a busy one), so the
  // cache's own bound sits above the limit and never fires.
  private readonly byTuple: LRUCache<string, C>;
  private readonly byId = new Map<number, C>();
  private readonly timers = new Map<number, TimerHandle>();

  constructor(private readonly options: ConnectionManagerOptions) {
    this.byTuple = new LRUCache<string, C>({ max: options.maxConnections + 1 });
  }

  get size(): number {
    return this.byId.size;
  }

  /** Whether a connection to this remote tuple is open. */
  has(tuple: Tuple): boolean {
    return this.byTuple.has(tupleKey(tuple));
  }

  /** The open connection to `tuple`, marked most recently used. */
  find(tuple: Tuple): C | undefined {
    return this.byTuple.get(tupleKey(tuple));
  }

  get(id: number): C | undefined {
    return this.byId.get(id);
  }

  /** Takes a new connection in, closing the least recently used idle one when at the limit. */
  admit(connection: C): boolean {
    if (this.byId.size >= this.options.maxConnections && !this.evictOne()) return false;
    this.byId.set(connection.id, connection);
    this.byTuple.set(tupleKey(connection.remote), connection);
    connection.lastActivity = this.options.clock.now();
    this.armIdleTimer(connection, this.options.idleTimeoutMs);
    return true;
  }

  /** Records traffic: the connection becomes most recently used and its idle clock restarts. */
  touch(connection: C): void {
    connection.lastActivity = this.options.clock.now();
    const key = tupleKey(connection.remote);
    if (this.byTuple.peek(key) === connection) this.byTuple.get(key);
  }

  /** Forgets a connection that closed. */
  remove(connection: C): void {
    if (!this.byId.delete(connection.id)) return;
    const key = tupleKey(connection.remote);
    if (this.byTuple.peek(key) === connection) this.byTuple.delete(key);
    this.timers.get(connection.id)?.cancel();
    this.timers.delete(connection.id);
  }

  all(): C[] {
    return [...this.byId.values()];
  }

  closeAll(reason: TransportError): void {
    for (const connection of this.all()) connection.close(reason);
  }

  private evictOne(): boolean {
    // rkeys(): least recently used first.
    for (const key of this.byTuple.rkeys()) {
      const candidate = this.byTuple.peek(key);
      if (candidate && candidate.isIdle()) {
        candidate.close(new TransportError('TRANSPORT_LIMIT', 'closed to make room for a new connection', candidate.remote));
        this.remove(candidate);
        return true;
      }
    }
    return false;
  }

  private armIdleTimer(connection: C, delay: number): void {
    const idle = this.options.idleTimeoutMs;
    if (idle <= 0) return;
    // One timer per idle period, not per message: when it fires early (there was traffic), it
    // re-arms for the time that is left.
    this.timers.set(
      connection.id,
      this.options.clock.setTimer(delay, () => {
        if (!this.byId.has(connection.id)) return;
        const quiet = this.options.clock.now() - connection.lastActivity;
        if (quiet >= idle) {
          connection.close(new TransportError('TRANSPORT_CLOSED', `no traffic for ${idle} ms`, connection.remote));
          this.remove(connection);
        } else this.armIdleTimer(connection, idle - quiet);
      }),
    );
  }
}
