import { LRUCache } from 'lru-cache';
import { systemClock, type Clock } from '../util/clock.js';
import { DnsError } from './dns-error.js';
import { lower, RCODE, type DnsClient, type DnsRecord, type DnsReply, type RecordType } from './dns-client.js';
import type { HostsTable } from './system-files.js';

/** What a lookup found: the records of the asked type (CNAMEs followed), or why there are none. */
export interface RecordSet {
  readonly name: string;
  readonly type: RecordType;
  readonly records: readonly DnsRecord[];
  /** Set when `records` is empty: NXDOMAIN, NODATA, or the failure that kept us from knowing. */
  readonly error: DnsError | undefined;
}

export interface DnsStubOptions {
  client: DnsClient;
  hosts?: HostsTable;
  clock?: Clock;
  /** Record sets kept at most. Default 10,000. */
  maxEntries?: number;
  /** How long NXDOMAIN / NODATA is kept when the answer carries no SOA. Default 60 s. */
  negativeTtlMs?: number;
  /** A ceiling on every TTL. Default one day. */
  maxTtlMs?: number;
}

interface Entry {
  readonly set: RecordSet;
  readonly expiresAt: number;
}

/** RFC 1034 §3.6.2 leaves chain length open; 8 links stops loops without hurting real zones. */
const MAX_CNAME_LINKS = 8;

/**
 * Record lookups with a cache (reSIProcate's DnsStub + RRCache): the hosts file first for A/AAAA,
 * then the cache, then one wire query shared by everyone asking the same thing meanwhile.
 * Answers are kept for their TTL (RFC 1035 §3.2.1), NXDOMAIN and NODATA for the SOA's negative TTL
 * (RFC 2308 §5); failures (SERVFAIL, REFUSED, timeouts) are not kept, so the next lookup asks again.
 */
export class DnsStub {
  private readonly client: DnsClient;
  private readonly hosts: HostsTable;
  private readonly clock: Clock;
  private readonly cache: LRUCache<string, Entry>;
  private readonly inFlight = new Map<string, Promise<RecordSet>>();
  private readonly negativeTtlMs: number;
  private readonly maxTtlMs: number;

  constructor(options: DnsStubOptions) {
    this.client = options.client;
    this.hosts = options.hosts ?? new Map();
    this.clock = options.clock ?? systemClock;
    this.cache = new LRUCache({ max: options.maxEntries ?? 10_000 });
    this.negativeTtlMs = options.negativeTtlMs ?? 60_000;
    this.maxTtlMs = options.maxTtlMs ?? 86_400_000;
  }

  /** Wire queries sent so far. */
  get wireQueries(): number {
    return this.client.sent;
  }

  /** Whether hosts(5) lists the name (its A/AAAA then never go to DNS). */
  inHostsFile(name: string): boolean {
    return this.hosts.has(lower(name));
  }

  /** Never rejects: a failure is the set's `error`. */
  lookup(rawName: string, type: RecordType): Promise<RecordSet> {
    const name = lower(rawName);
    if (type === 'A' || type === 'AAAA') {
      const host = this.hosts.get(name);
      if (host) {
        const addresses = type === 'A' ? host.v4 : host.v6;
        const records = addresses.map((address): DnsRecord => ({ type, name, ttl: Infinity, address }));
        const error = records.length ? undefined : new DnsError('DNS_NODATA', `${name} is in the hosts file without an ${type} address`);
        return Promise.resolve({ name, type, records, error });
      }
    }
    const key = `${type} ${name}`;
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > this.clock.now()) return Promise.resolve(cached.set);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetch(name, type, 0).then((entry) => {
        this.inFlight.delete(key);
        if (entry.expiresAt > this.clock.now()) this.cache.set(key, entry);
        return entry.set;
      });
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async fetch(name: string, type: RecordType, links: number): Promise<Entry> {
    let reply: DnsReply;
    try {
      reply = await this.client.query(name, type);
    } catch (error) {
      const failure = error instanceof DnsError ? error : new DnsError('DNS_BAD_RESPONSE', String(error), { cause: error });
      return { set: { name, type, records: [], error: failure }, expiresAt: 0 };
    }
    const now = this.clock.now();
    if (reply.rcode === RCODE.NXDOMAIN) {
      return this.negative(name, type, reply, new DnsError('DNS_NXDOMAIN', `${name} does not exist (NXDOMAIN)`));
    }
    // Follow CNAMEs inside the answer (RFC 1034 §3.6.2); the set lives as long as its shortest link.
    let current = name;
    let ttl = Infinity;
    for (let link = links; link <= MAX_CNAME_LINKS; link++) {
      const found = reply.answers.filter((r) => r.type === type && r.name === current);
      if (found.length > 0) {
        for (const r of found) ttl = Math.min(ttl, r.ttl);
        return { set: { name, type, records: found, error: undefined }, expiresAt: now + this.ttlMs(ttl) };
      }
      const alias = reply.answers.find((r): r is Extract<DnsRecord, { type: 'CNAME' }> => r.type === 'CNAME' && r.name === current);
      if (!alias) break;
      ttl = Math.min(ttl, alias.ttl);
      current = alias.target;
      if (link === MAX_CNAME_LINKS) {
        return { set: { name, type, records: [], error: new DnsError('DNS_BAD_RESPONSE', `more than ${MAX_CNAME_LINKS} CNAME links from ${name}`) }, expiresAt: 0 };
      }
      // The chain leaves the answer: ask for the canonical name itself.
      if (!reply.answers.some((r) => r.name === current)) {
        const rest = await this.fetch(current, type, link + 1);
        return { set: { ...rest.set, name }, expiresAt: Math.min(rest.expiresAt, now + this.ttlMs(ttl)) };
      }
    }
    return this.negative(name, type, reply, new DnsError('DNS_NODATA', `${name} has no ${type} records`));
  }

  /** RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM) seconds. */
  private negative(name: string, type: RecordType, reply: DnsReply, error: DnsError): Entry {
    const soa = reply.authorities.find((r): r is Extract<DnsRecord, { type: 'SOA' }> => r.type === 'SOA');
    const ms = soa ? this.ttlMs(Math.min(soa.ttl, soa.minimum)) : this.negativeTtlMs;
    return { set: { name, type, records: [], error }, expiresAt: this.clock.now() + ms };
  }

  private ttlMs(seconds: number): number {
    return Math.min(seconds * 1000, this.maxTtlMs);
  }
}
