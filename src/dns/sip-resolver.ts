import { isIP } from 'node:net';
import { parseUri, unbracket, type SipUri } from '../message/uri.js';
import type { Via } from '../message/via.js';
import { systemClock, type Clock } from '../util/clock.js';
import { DnsClient, isSilence, type DnsRecord, type RecordType } from './dns-client.js';
import { DnsError } from './dns-error.js';
import { DnsStub, type RecordSet } from './dns-stub.js';
import { orderSrv, type SrvRecord } from './srv-order.js';
import { parseNameserver, readHostsFile, readResolvConf, type Nameserver } from './system-files.js';
import { TargetMarks, type SipTransport, type TargetTuple } from './target-marks.js';
import { TargetList } from './target-list.js';

/** A next hop: where to send, and the lookups that led there. */
export interface SipTarget extends TargetTuple {
  /** The record path, e.g. `NAPTR example.com > SRV _sip._tcp.example.com > A a.example.com`. */
  readonly via: string;
}

export interface ResolverOptions {
  /** "HOST:PORT", "[V6]:PORT" or a bare address (port 53). Default: from `resolvConf`. */
  nameservers?: ReadonlyArray<string | Nameserver>;
  /** resolv.conf(5) to read when `nameservers` is not given. Default /etc/resolv.conf. */
  resolvConf?: string | false;
  /** hosts(5) consulted for A/AAAA before DNS. Default /etc/hosts. */
  hostsFile?: string | false;
  /** Per query per nameserver. Default 2000 ms (or resolv.conf's `options timeout`). */
  timeoutMs?: number;
  /** Rounds over the nameserver list. Default 2 (or resolv.conf's `options attempts`). */
  attempts?: number;
  /** Transports this element can send on, in its order of preference. Default udp, tcp, tls. */
  transports?: readonly SipTransport[];
  /** Address families this element can reach. Default both. */
  families?: ReadonlyArray<4 | 6>;
  /** AAAA addresses before A ones. Default false. */
  preferIpv6?: boolean;
  clock?: Clock;
  /** [0, 1) for SRV weights. Default Math.random. */
  random?: () => number;
  maxCacheEntries?: number;
  negativeTtlMs?: number;
  blacklistMs?: number;
  greylistMs?: number;
  whitelistMs?: number;
}

/** RFC 3263 §4.1 / RFC 7118 §10.2: NAPTR services and the transports they name. */
const NAPTR_SERVICES: Readonly<Record<string, SipTransport>> = {
  'sip+d2u': 'udp',
  'sip+d2t': 'tcp',
  'sips+d2t': 'tls',
  'sip+d2w': 'ws',
  'sips+d2w': 'wss',
};

const DEFAULT_PORTS: Readonly<Record<SipTransport, number>> = { udp: 5060, tcp: 5060, tls: 5061, ws: 80, wss: 443 };

/** RFC 3263 §4.1: `_sips` for TLS; §4.2 SRV names per transport (none are defined for WebSocket). */
function srvName(transport: SipTransport, domain: string): string | undefined {
  switch (transport) {
    case 'udp':
      return `_sip._udp.${domain}`;
    case 'tcp':
      return `_sip._tcp.${domain}`;
    case 'tls':
      return `_sips._tcp.${domain}`;
    default:
      return undefined;
  }
}

/**
 * RFC 3263 server location (reSIProcate's DnsInterface + DnsResult): turns a SIP URI into an
 * ordered, lazily produced list of targets, and a response's sent-by into one (§5). Lookups go
 * through one DnsStub (hosts file, TTL cache, coalescing); `marks` reorders what comes out.
 */
export class SipResolver {
  readonly marks: TargetMarks;
  private readonly stub: DnsStub;
  private readonly client: DnsClient;
  private readonly transports: readonly SipTransport[];
  private readonly families: ReadonlyArray<4 | 6>;
  private readonly preferIpv6: boolean;
  private readonly random: () => number;

  constructor(options: ResolverOptions = {}) {
    const clock = options.clock ?? systemClock;
    const conf = options.nameservers ? undefined : options.resolvConf === false ? { nameservers: [] } : readResolvConf(options.resolvConf ?? '/etc/resolv.conf');
    let nameservers = options.nameservers?.map((n) => (typeof n === 'string' ? parseNameserver(n) : n)) ?? conf?.nameservers ?? [];
    // resolv.conf(5): "If no nameserver entries are present, the default is to use the name
    // server on the local machine."
    if (!options.nameservers && nameservers.length === 0 && options.resolvConf !== false) nameservers = [{ address: '127.0.0.1', port: 53 }];
    this.client = new DnsClient({
      nameservers,
      timeoutMs: options.timeoutMs ?? conf?.timeoutMs ?? 2000,
      attempts: options.attempts ?? conf?.attempts ?? 2,
      clock,
    });
    this.stub = new DnsStub({
      client: this.client,
      hosts: options.hostsFile === false ? new Map() : readHostsFile(options.hostsFile ?? '/etc/hosts'),
      clock,
      ...(options.maxCacheEntries !== undefined && { maxEntries: options.maxCacheEntries }),
      ...(options.negativeTtlMs !== undefined && { negativeTtlMs: options.negativeTtlMs }),
    });
    this.marks = new TargetMarks({
      clock,
      ...(options.blacklistMs !== undefined && { blacklistMs: options.blacklistMs }),
      ...(options.greylistMs !== undefined && { greylistMs: options.greylistMs }),
      ...(options.whitelistMs !== undefined && { whitelistMs: options.whitelistMs }),
    });
    this.transports = options.transports ?? ['udp', 'tcp', 'tls'];
    this.families = options.families ?? [4, 6];
    this.preferIpv6 = options.preferIpv6 ?? false;
    this.random = options.random ?? Math.random;
  }

  /** DNS queries put on the wire so far. */
  get wireQueries(): number {
    return this.stub.wireQueries;
  }

  /** Cancels queries in flight; lists waiting on them end with DNS_CLOSED. */
  close(): void {
    this.client.close();
  }

  /** RFC 3263 §4: the targets for a request to `uri` (the first Route's URI or the Request-URI). */
  resolve(uri: SipUri | string): TargetList {
    let parsed: SipUri;
    try {
      parsed = typeof uri === 'string' ? parseUri(uri) : uri;
    } catch (error) {
      return TargetList.failed(new DnsError('DNS_BAD_NAME', `not a SIP URI: ${String(uri)}`, { cause: error }));
    }
    if (!parsed.isSip) return TargetList.failed(new DnsError('DNS_BAD_NAME', `RFC 3263 resolves sip: and sips: URIs, not ${parsed.scheme}:`));
    const sips = parsed.scheme === 'sips';
    const maddr = parsed.params.maddr;
    // RFC 3261 §19.1.1 / RFC 3263 §4: "If the URI contains a maddr parameter, TARGET is that."
    const host = unbracket(maddr ?? parsed.host).toLowerCase();
    const named = parsed.transport;
    let transport: SipTransport | undefined;
    if (named !== undefined) {
      const t = named === 'tcp' && sips ? 'tls' : named === 'ws' && sips ? 'wss' : named;
      if (!isTransport(t)) return TargetList.failed(new DnsError('DNS_NO_TARGETS', `no transport "${named}" for ${parsed.toString()}`));
      // RFC 3261 §26.2: sips: means TLS end to end; it cannot go over UDP.
      if (sips && t === 'udp') return TargetList.failed(new DnsError('DNS_NO_TARGETS', `a sips: URI cannot use transport=udp`));
      transport = t;
    }
    const key = `${parsed.scheme}:${host}:${parsed.port ?? ''};${transport ?? ''}`;
    return new TargetList(key, this.marks, (list) => this.clientTargets(list, host, sips, transport, parsed.port));
  }

  /**
   * RFC 3263 §5: where a response goes when the request's connection (or `received`) failed —
   * the top Via's sent-by over the Via's transport: a numeric host as is, a name with a port by
   * A/AAAA, a name without one by SRV for that transport (`_sips._tcp` for TLS), then A/AAAA.
   */
  resolveResponse(via: Via): TargetList {
    const named = via.transport.toLowerCase();
    if (!isTransport(named)) return TargetList.failed(new DnsError('DNS_NO_TARGETS', `no transport ${via.transport} for a response`));
    const host = unbracket(via.host).toLowerCase();
    const port = via.port;
    return new TargetList(`via:${named}:${host}:${port ?? ''}`, this.marks, (list) => this.responseTargets(list, host, named, port));
  }

  /** A/AAAA for `name` (hosts file first), in this resolver's family preference; rejects only with DNS_CLOSED. */
  async lookupAddresses(name: string): Promise<string[]> {
    const host = unbracket(name);
    if (isIP(host)) return [host];
    const sets = await Promise.all(this.familyOrder().map((type) => this.stub.lookup(host, type)));
    const closed = sets.find((set) => set.error?.code === 'DNS_CLOSED');
    if (closed) throw closed.error;
    return sets.flatMap((set) => set.records.map((r) => (r as Extract<DnsRecord, { address: string }>).address));
  }

  private async *responseTargets(list: TargetList, host: string, transport: SipTransport, port: number | undefined): AsyncGenerator<SipTarget, void, undefined> {
    if (isIP(host) || port !== undefined) {
      yield* this.addressTargets(list, host, transport, port ?? DEFAULT_PORTS[transport], 'Via > ');
      return;
    }
    const name = srvName(transport, host);
    if (name && (yield* this.srvTargets(list, name, transport, 'Via > '))) return;
    yield* this.addressTargets(list, host, transport, DEFAULT_PORTS[transport], 'Via > ');
  }

  private async *clientTargets(list: TargetList, host: string, sips: boolean, transport: SipTransport | undefined, port: number | undefined): AsyncGenerator<SipTarget, void, undefined> {
    const fallback: SipTransport = transport ?? (sips ? 'tls' : 'udp');
    // §4.1/§4.2: a numeric TARGET needs no DNS: the transport parameter or UDP (TLS for sips:),
    // the URI's port or that transport's default.
    if (isIP(host)) {
      yield { transport: fallback, address: host, port: port ?? DEFAULT_PORTS[fallback], via: 'numeric' };
      return;
    }
    // hosts(5) holds addresses only: a name listed there (localhost, say) is a name without NAPTR
    // or SRV records, so §4.1/§4.2 give its addresses at the URI's port or the default one.
    if (this.stub.inHostsFile(host)) {
      yield* this.addressTargets(list, host, fallback, port ?? DEFAULT_PORTS[fallback], 'hosts file > ');
      return;
    }
    // §4.2: "If the TARGET was not a numeric IP address, but a port is present in the URI, the
    // client performs an A or AAAA record lookup of the domain name."
    if (port !== undefined) {
      yield* this.addressTargets(list, host, fallback, port, '');
      return;
    }
    // §4.2: an explicit transport skips NAPTR: SRV for that transport ("_sips" for a SIPS URI).
    if (transport !== undefined) {
      const name = srvName(transport, host);
      if (name && (yield* this.srvTargets(list, name, transport, ''))) return;
      yield* this.addressTargets(list, host, transport, DEFAULT_PORTS[transport], '');
      return;
    }
    // §4.1: NAPTR for the domain, keeping the services this client has (only SIPS ones for a
    // SIPS URI), "s" flags (the replacement is an SRV name), sorted by order then preference.
    const naptr = await this.lookup(list, host, 'NAPTR');
    if (naptr.error?.code === 'DNS_NXDOMAIN') return; // RFC 8020: nothing exists under this name.
    const services = naptr.records
      .filter((r): r is Extract<DnsRecord, { type: 'NAPTR' }> => r.type === 'NAPTR')
      .map((r) => ({ record: r, transport: NAPTR_SERVICES[r.service.toLowerCase()] }))
      .filter((s): s is typeof s & { transport: SipTransport } => {
        if (!s.transport || !this.transports.includes(s.transport)) return false;
        if (sips && !s.record.service.toLowerCase().startsWith('sips+')) return false;
        return s.record.flags.toLowerCase() === 's' && s.record.replacement !== '';
      })
      .sort((a, b) => a.record.order - b.record.order || a.record.preference - b.record.preference);
    let found = false;
    for (const { record, transport: t } of services) {
      found = (yield* this.srvTargets(list, record.replacement, t, `NAPTR ${host} > `)) || found;
    }
    if (found) return;
    // §4.1: "If no NAPTR records are found, the client constructs SRV queries for those transport
    // protocols it supports" — in this element's order of preference; a SIPS URI only _sips._tcp.
    for (const t of this.transports) {
      if (sips && t !== 'tls') continue;
      const name = srvName(t, host);
      if (name) found = (yield* this.srvTargets(list, name, t, '')) || found;
    }
    if (found) return;
    // §4.1/§4.2: "If no SRV records are found, the client SHOULD use TCP for a SIPS URI, and UDP
    // for a SIP URI", at the default port of that transport, from A/AAAA.
    yield* this.addressTargets(list, host, sips ? 'tls' : 'udp', DEFAULT_PORTS[sips ? 'tls' : 'udp'], '');
  }

  /** The targets of one SRV name in RFC 2782 order; returns whether the name had SRV records. */
  private async *srvTargets(list: TargetList, name: string, transport: SipTransport, path: string): AsyncGenerator<SipTarget, boolean, undefined> {
    const set = await this.lookup(list, name, 'SRV');
    const records = set.records.filter((r): r is SrvRecord => r.type === 'SRV');
    if (records.length === 0) return false;
    // RFC 2782: "A Target of '.' means that the service is decidedly not available at this domain."
    if (records.length === 1 && records[0]!.target === '') return true;
    for (const srv of orderSrv(records.filter((r) => r.target !== ''), this.random)) {
      yield* this.addressTargets(list, srv.target, transport, srv.port, `${path}SRV ${name} > `);
    }
    return true;
  }

  /** A and AAAA of `host` (both asked at once), each address at `port` over `transport`. */
  private async *addressTargets(list: TargetList, host: string, transport: SipTransport, port: number, path: string): AsyncGenerator<SipTarget, void, undefined> {
    if (isIP(host)) {
      yield { transport, address: host, port, via: `${path}numeric` };
      return;
    }
    const types = this.familyOrder();
    const sets = await Promise.all(types.map((type) => this.lookup(list, host, type)));
    for (const set of sets) {
      for (const r of set.records) {
        if (r.type === 'A' || r.type === 'AAAA') yield { transport, address: r.address, port, via: `${path}${r.type} ${host}` };
      }
    }
  }

  private familyOrder(): Array<'A' | 'AAAA'> {
    const order: Array<'A' | 'AAAA'> = this.preferIpv6 ? ['AAAA', 'A'] : ['A', 'AAAA'];
    return order.filter((type) => this.families.includes(type === 'A' ? 4 : 6));
  }

  private async lookup(list: TargetList, name: string, type: RecordType): Promise<RecordSet> {
    // Once every nameserver failed to answer one lookup (after all its rounds), the rest of this
    // list would only wait out the same timeouts, step after step: end it with that error.
    if (isSilence(list.error) || list.error?.code === 'DNS_CLOSED') return { name, type, records: [], error: list.error! };
    const set = await this.stub.lookup(name, type);
    if (set.error) list.noteError(set.error);
    return set;
  }
}

function isTransport(text: string): text is SipTransport {
  return text === 'udp' || text === 'tcp' || text === 'tls' || text === 'ws' || text === 'wss';
}
