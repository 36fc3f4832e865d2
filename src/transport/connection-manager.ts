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
  /** Inbound connections from one source address at once; 0 = no limit. */
  maxConnectionsPerSource?: number;
  /** An inbound connection must deliver a complete message within this long; 0 = never. */
  firstMessageTimeoutMs?: number;
  clock: Clock;
}

/** How much a connection is worth keeping, lowest first: the eviction order at the limit. */
const Rank = {
  /** Inbound, and no complete message yet (a bare connect, a half-sent head): first to go. */
  Fresh: 0,
  /** Carried traffic, or opened by us. */
  Used: 1,
  /** Marked by the layer above as a flow a binding lives on (RFC 5626 §6): last to go. */
  Flow: 2,
} as const;
type Rank = (typeof Rank)[keyof typeof Rank];

interface Entry {
  rank: Rank;
  inbound: boolean;
  firstMessageTimer: TimerHandle | undefined;
}

/**
 * The connections of one stream transport (reSIProcate's ConnectionManager): found by the remote
 * (protocol, address, port) in an LRU so the same connection serves both directions (RFC 3261
 * §18.2.2, §18.1.1).
 *
 * Limits (docs/security.md):
 * - at `maxConnections` one connection is closed to make room, in this order: an inbound
 *   connection that never carried a complete message (oldest first, idle or not: a peer holding
 *   one byte gains nothing), then the least recently used idle connection that carried traffic,
 *   then the least recently used idle connection marked as a flow (`markFlow`); when none
 *   qualifies the new connection is refused;
 * - at most `maxConnectionsPerSource` inbound connections from one source address: more are refused;
 * - an inbound connection that sends no complete message within `firstMessageTimeoutMs` is closed;
 * - a connection without traffic for `idleTimeoutMs` is closed, whether or not it left a message
 *   half sent.
 */
export class ConnectionManager<C extends ManagedConnection> {
  // Recency order only: the manager evicts by hand (an idle one, never a busy one), so the
  // cache's own bound sits above the limit and never fires.
  private readonly byTuple: LRUCache<string, C>;
  private readonly byId = new Map<number, C>();
  private readonly entries = new Map<number, Entry>();
  /** Inbound connections without a complete message yet, oldest first (Map keeps insertion order). */
  private readonly fresh = new Map<number, C>();
  /** Inbound connections per source address. */
  private readonly perSource = new Map<string, number>();
  private readonly timers = new Map<number, TimerHandle>();

  constructor(private readonly options: ConnectionManagerOptions) {
    this.byTuple = new LRUCache<string, C>({ max: options.maxConnections + 1 });
  }

  get size(): number {
    return this.byId.size;
  }

  /** Inbound connections open from this source address. */
  fromSource(address: string): number {
    return this.perSource.get(address) ?? 0;
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

  /**
   * Why a new inbound connection from `address` would be refused before it is made (the
   * per-source limit), or undefined.
   */
  refuses(address: string): string | undefined {
    const limit = this.options.maxConnectionsPerSource ?? 0;
    if (limit > 0 && this.fromSource(address) >= limit) return `more than ${limit} connections from ${address}`;
    return undefined;
  }

  /**
   * Takes a new connection in, making room when at the limit (see the class comment). `inbound`
   * connections count against their source's limit and must deliver a first message in time.
   */
  admit(connection: C, inbound = false): boolean {
    if (inbound && this.refuses(connection.remote.address) !== undefined) return false;
    if (this.byId.size >= this.options.maxConnections && !this.evictOne()) return false;
    this.byId.set(connection.id, connection);
    this.byTuple.set(tupleKey(connection.remote), connection);
    const entry: Entry = { rank: inbound ? Rank.Fresh : Rank.Used, inbound, firstMessageTimer: undefined };
    this.entries.set(connection.id, entry);
    if (inbound) {
      this.fresh.set(connection.id, connection);
      const address = connection.remote.address;
      this.perSource.set(address, this.fromSource(address) + 1);
      const deadline = this.options.firstMessageTimeoutMs ?? 0;
      if (deadline > 0) {
        entry.firstMessageTimer = this.options.clock.setTimer(deadline, () => {
          if (this.entries.get(connection.id) !== entry || entry.rank !== Rank.Fresh) return;
          connection.close(new TransportError('TRANSPORT_TIMEOUT', `no complete message within ${deadline} ms`, connection.remote));
          this.remove(connection);
        });
      }
    }
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

  /** A complete message arrived on the connection: it is no longer first in line for eviction. */
  carried(connection: C): void {
    const entry = this.entries.get(connection.id);
    if (!entry || entry.rank !== Rank.Fresh) return;
    entry.rank = Rank.Used;
    entry.firstMessageTimer?.cancel();
    entry.firstMessageTimer = undefined;
    this.fresh.delete(connection.id);
  }

  /**
   * Marks (or unmarks) a connection as a flow a binding lives on (RFC 5626 §6): it is evicted
   * only when nothing else can be. False when there is no such connection.
   */
  markFlow(connectionId: number, flow = true): boolean {
    const connection = this.byId.get(connectionId);
    if (!connection) return false;
    if (flow) this.carried(connection);
    this.entries.get(connectionId)!.rank = flow ? Rank.Flow : Rank.Used;
    return true;
  }

  /** Whether the connection is marked as a flow. */
  isFlow(connectionId: number): boolean {
    return this.entries.get(connectionId)?.rank === Rank.Flow;
  }

  /** Whether the connection is inbound and has not yet carried a complete message. */
  isFresh(connectionId: number): boolean {
    return this.fresh.has(connectionId);
  }

  /** Forgets a connection that closed. */
  remove(connection: C): void {
    if (!this.byId.delete(connection.id)) return;
    const key = tupleKey(connection.remote);
    if (this.byTuple.peek(key) === connection) this.byTuple.delete(key);
    this.timers.get(connection.id)?.cancel();
    this.timers.delete(connection.id);
    const entry = this.entries.get(connection.id);
    this.entries.delete(connection.id);
    this.fresh.delete(connection.id);
    if (entry) {
      entry.firstMessageTimer?.cancel();
      if (entry.inbound) {
        const address = connection.remote.address;
        const left = this.fromSource(address) - 1;
        if (left > 0) this.perSource.set(address, left);
        else this.perSource.delete(address);
      }
    }
  }

  all(): C[] {
    return [...this.byId.values()];
  }

  closeAll(reason: TransportError): void {
    for (const connection of this.all()) connection.close(reason);
  }

  private evictOne(): boolean {
    // Fresh first: the oldest inbound connection that never carried a message, busy or not.
    for (const candidate of this.fresh.values()) return this.evict(candidate);
    // rkeys(): least recently used first.
    for (const rank of [Rank.Used, Rank.Flow] as const) {
      for (const key of this.byTuple.rkeys()) {
        const candidate = this.byTuple.peek(key);
        if (candidate && this.entries.get(candidate.id)?.rank === rank && candidate.isIdle()) return this.evict(candidate);
      }
    }
    return false;
  }

  private evict(candidate: C): true {
    candidate.close(new TransportError('TRANSPORT_LIMIT', 'closed to make room for a new connection', candidate.remote));
    this.remove(candidate);
    return true;
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
