// SipResolver (RFC 3263) against a real DNS server on loopback (test/support/dns-server.ts), per
// docs/dns.md: every client path of §4 (numeric, explicit port, explicit transport, NAPTR, SRV,
// A/AAAA), the server path of §5, SRV order (RFC 2782), CNAME chains, the cache (TTL, negative
// caching per RFC 2308 §5, coalescing, no caching of SERVFAIL), nameserver failover on timeouts,
// the hosts file and resolv.conf, target marks, laziness and close().
//
// What went out on the wire is asserted exactly through `server.queries` (every query the server
// received, in order) and `resolver.wireQueries`. TTLs and marks run on a ManualClock; only the
// network timeouts (a silent nameserver) use the real clock, with small `timeoutMs`.
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import dns2 from 'dns2';
import { DnsError, SipResolver, parseUri, parseVia, type ResolverOptions, type SipTarget, type SipTransport, type TargetList } from '../../src/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { startDnsServer, type TestDnsServer, type ZoneRecord } from '../support/dns-server.js';
import { mulberry32 } from '../support/random.js';

// ---------------------------------------------------------------------------------------------
// Zone building and helpers
// ---------------------------------------------------------------------------------------------

const soa = (name: string, minimum: number, ttl?: number): ZoneRecord => ({ type: 'SOA', name, minimum, ...(ttl !== undefined && { ttl }) });
const a = (name: string, address: string, ttl?: number): ZoneRecord => ({ type: 'A', name, address, ...(ttl !== undefined && { ttl }) });
const aaaa = (name: string, address: string, ttl?: number): ZoneRecord => ({ type: 'AAAA', name, address, ...(ttl !== undefined && { ttl }) });
const cname = (name: string, target: string, ttl?: number): ZoneRecord => ({ type: 'CNAME', name, target, ...(ttl !== undefined && { ttl }) });
const srv = (name: string, priority: number, weight: number, port: number, target: string, ttl?: number): ZoneRecord => ({
  type: 'SRV',
  name,
  priority,
  weight,
  port,
  target,
  ...(ttl !== undefined && { ttl }),
});
const naptr = (name: string, order: number, preference: number, flags: string, service: string, replacement: string, regexp = ''): ZoneRecord => ({
  type: 'NAPTR',
  name,
  order,
  preference,
  flags,
  service,
  regexp,
  replacement,
});

interface Tuple {
  transport: SipTransport;
  address: string;
  port: number;
}
const t = (transport: SipTransport, address: string, port: number): Tuple => ({ transport, address, port });
const q = (name: string, type: string): { name: string; type: string } => ({ name, type });

/** Targets without their `via`. */
function tuples(targets: readonly SipTarget[]): Tuple[] {
  return targets.map(({ transport, address, port }) => ({ transport, address, port }));
}

/** Drains a list, failing (instead of hanging) when it takes longer than `ms`. */
async function drain(list: TargetList, ms = 3000): Promise<SipTarget[]> {
  return within(list.all(), 'TargetList.all()', ms);
}

async function targetsOf(list: TargetList): Promise<Tuple[]> {
  return tuples(await drain(list));
}

function within<T>(promise: Promise<T>, label: string, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The queries, as sorted "TYPE name" strings (for order-free comparisons). */
function querySet(queries: ReadonlyArray<{ name: string; type: string }>): string[] {
  return queries.map((x) => `${x.type} ${x.name.toLowerCase()}`).sort();
}

function queriesOfType(server: TestDnsServer, type: string): string[] {
  return server.queries.filter((x) => x.type === type).map((x) => x.name.toLowerCase());
}

/** Every (name, type) asked at most once. */
function expectNoDuplicateQueries(server: TestDnsServer): void {
  const seen = querySet(server.queries);
  expect(seen, 'one wire query per (name, type)').to.deep.equal([...new Set(seen)]);
}

// ---------------------------------------------------------------------------------------------

describe('SipResolver (RFC 3263, docs/dns.md)', function () {
  this.timeout(10_000);

  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function dnsServer(records: ZoneRecord[], options: { servfail?: string[]; silent?: boolean; tcp?: boolean } = {}): Promise<TestDnsServer> {
    const server = await startDnsServer({ records, ...options });
    cleanups.push(() => server.close());
    return server;
  }

  function resolverFor(servers: TestDnsServer | TestDnsServer[], options: ResolverOptions = {}): SipResolver {
    const list = Array.isArray(servers) ? servers : [servers];
    const resolver = new SipResolver({ nameservers: list.map((s) => s.nameserver), hostsFile: false, ...options });
    cleanups.push(() => resolver.close());
    return resolver;
  }

  function tempFile(name: string, text: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'parley-dns-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  const ZONE_SOA = soa('example.com', 60);

  // -------------------------------------------------------------------------------------------
  describe('§4.1/§4.2 numeric hosts: no DNS', () => {
    const cases: Array<[string, Tuple]> = [
      ['sip:192.0.2.1', t('udp', '192.0.2.1', 5060)],
      ['sip:bob@192.0.2.1:5070', t('udp', '192.0.2.1', 5070)],
      ['sip:192.0.2.1;transport=tcp', t('tcp', '192.0.2.1', 5060)],
      ['sip:192.0.2.1;transport=tls', t('tls', '192.0.2.1', 5061)],
      ['sips:192.0.2.1', t('tls', '192.0.2.1', 5061)],
      ['sips:192.0.2.1:5071', t('tls', '192.0.2.1', 5071)],
      ['sip:[2001:db8::1]', t('udp', '2001:db8::1', 5060)],
      ['sip:alice@[2001:db8::1]:5080;transport=tcp', t('tcp', '2001:db8::1', 5080)],
      ['sips:[2001:db8::1]', t('tls', '2001:db8::1', 5061)],
    ];
    for (const [uri, expected] of cases) {
      it(`${uri} → ${expected.transport} ${expected.address}:${expected.port}`, async () => {
        const server = await dnsServer([ZONE_SOA]);
        const resolver = resolverFor(server);
        const list = resolver.resolve(uri);
        const targets = await drain(list);
        expect(tuples(targets)).to.deep.equal([expected]);
        expect(targets[0]!.via).to.be.a('string');
        expect(list.error).to.equal(undefined);
        expect(server.queries).to.deep.equal([]);
        expect(resolver.wireQueries).to.equal(0);
      });
    }

    it('takes a parsed SipUri as well as a string', async () => {
      const server = await dnsServer([ZONE_SOA]);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve(parseUri('sip:bob@192.0.2.7:5090;transport=tcp')))).to.deep.equal([t('tcp', '192.0.2.7', 5090)]);
      expect(server.queries).to.deep.equal([]);
    });

    it('maddr wins over the host (numeric maddr: no DNS at all)', async () => {
      const server = await dnsServer([ZONE_SOA, a('proxy.example.com', '192.0.2.200')]);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sip:bob@proxy.example.com;maddr=192.0.2.99'))).to.deep.equal([t('udp', '192.0.2.99', 5060)]);
      expect(await targetsOf(resolver.resolve('sip:bob@proxy.example.com:5072;maddr=192.0.2.99;transport=tcp'))).to.deep.equal([t('tcp', '192.0.2.99', 5072)]);
      expect(server.queries).to.deep.equal([]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('§4.2 explicit port: A/AAAA only', () => {
    const HOST_ZONE = [
      ZONE_SOA,
      naptr('host.example.com', 10, 10, 's', 'SIP+D2T', '_sip._tcp.host.example.com'),
      srv('_sip._tcp.host.example.com', 10, 0, 5099, 'other.example.com'),
      srv('_sip._udp.host.example.com', 10, 0, 5099, 'other.example.com'),
      a('other.example.com', '192.0.2.250'),
      a('host.example.com', '192.0.2.10'),
      aaaa('host.example.com', '2001:db8::10'),
    ];

    it('sip:host:5080 → udp to every A then AAAA address at 5080; no NAPTR, no SRV', async () => {
      const server = await dnsServer(HOST_ZONE);
      const resolver = resolverFor(server);
      const targets = await drain(resolver.resolve('sip:host.example.com:5080'));
      expect(tuples(targets)).to.deep.equal([t('udp', '192.0.2.10', 5080), t('udp', '2001:db8::10', 5080)]);
      expect(targets[0]!.via).to.match(/\bA\b/);
      expect(targets[1]!.via).to.match(/AAAA/);
      expect(querySet(server.queries)).to.deep.equal(['A host.example.com', 'AAAA host.example.com']);
    });

    it('sips:host:5081 → tls; sip:host:5082;transport=tcp → tcp', async () => {
      const server = await dnsServer(HOST_ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sips:host.example.com:5081'))).to.deep.equal([t('tls', '192.0.2.10', 5081), t('tls', '2001:db8::10', 5081)]);
      expect(await targetsOf(resolver.resolve('sip:host.example.com:5082;transport=tcp'))).to.deep.equal([t('tcp', '192.0.2.10', 5082), t('tcp', '2001:db8::10', 5082)]);
      expect(querySet(server.queries)).to.deep.equal(['A host.example.com', 'AAAA host.example.com']);
    });

    it('maddr (a name) replaces the host, and the URI port applies to it', async () => {
      const server = await dnsServer([...HOST_ZONE, a('maddr.example.com', '192.0.2.11')]);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sip:bob@host.example.com:5083;maddr=maddr.example.com'))).to.deep.equal([t('udp', '192.0.2.11', 5083)]);
      expect(querySet(server.queries)).to.deep.equal(['A maddr.example.com', 'AAAA maddr.example.com']);
    });

    it('host names are case-insensitive and end up in the same cache entry', async () => {
      const server = await dnsServer(HOST_ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sip:host.example.com:5080'))).to.deep.equal([t('udp', '192.0.2.10', 5080), t('udp', '2001:db8::10', 5080)]);
      expect(await targetsOf(resolver.resolve('sip:HOST.Example.COM:5080'))).to.deep.equal([t('udp', '192.0.2.10', 5080), t('udp', '2001:db8::10', 5080)]);
      expect(server.queries.length).to.equal(2);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('§4.2 explicit transport: SRV for that transport, no NAPTR', () => {
    const ZONE = [
      ZONE_SOA,
      naptr('example.com', 10, 10, 's', 'SIP+D2U', '_sip._udp.example.com'),
      srv('_sip._udp.example.com', 10, 0, 5060, 'udp.example.com'),
      srv('_sip._tcp.example.com', 10, 0, 5062, 'tcp.example.com'),
      srv('_sips._tcp.example.com', 10, 0, 5063, 'tls.example.com'),
      a('udp.example.com', '192.0.2.1'),
      a('tcp.example.com', '192.0.2.2'),
      a('tls.example.com', '192.0.2.3'),
      a('plain.example.com', '192.0.2.30'),
      aaaa('plain.example.com', '2001:db8::30'),
    ];

    const cases: Array<[string, string, Tuple]> = [
      ['sip:example.com;transport=udp', '_sip._udp.example.com', t('udp', '192.0.2.1', 5060)],
      ['sip:example.com;transport=tcp', '_sip._tcp.example.com', t('tcp', '192.0.2.2', 5062)],
      ['sip:example.com;transport=tls', '_sips._tcp.example.com', t('tls', '192.0.2.3', 5063)],
      // RFC 3263 §4.2 / RFC 3261 §26.2.2: a SIPS URI over TCP is TLS: _sips._tcp.
      ['sips:example.com;transport=tcp', '_sips._tcp.example.com', t('tls', '192.0.2.3', 5063)],
    ];
    for (const [uri, srvName, expected] of cases) {
      it(`${uri} → SRV ${srvName}`, async () => {
        const server = await dnsServer(ZONE);
        const resolver = resolverFor(server);
        const targets = await drain(resolver.resolve(uri));
        expect(tuples(targets)).to.deep.equal([expected]);
        expect(targets[0]!.via).to.include(srvName);
        expect(queriesOfType(server, 'NAPTR')).to.deep.equal([]);
        expect(queriesOfType(server, 'SRV')).to.deep.equal([srvName]);
      });
    }

    it('no SRV for that transport → A/AAAA at the transport default port (5060 tcp, 5061 tls)', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sip:plain.example.com;transport=tcp'))).to.deep.equal([t('tcp', '192.0.2.30', 5060), t('tcp', '2001:db8::30', 5060)]);
      expect(await targetsOf(resolver.resolve('sip:plain.example.com;transport=tls'))).to.deep.equal([t('tls', '192.0.2.30', 5061), t('tls', '2001:db8::30', 5061)]);
      expect(await targetsOf(resolver.resolve('sips:plain.example.com;transport=tcp'))).to.deep.equal([t('tls', '192.0.2.30', 5061), t('tls', '2001:db8::30', 5061)]);
      expect(queriesOfType(server, 'NAPTR')).to.deep.equal([]);
      expect(queriesOfType(server, 'SRV')).to.deep.equal(['_sip._tcp.plain.example.com', '_sips._tcp.plain.example.com']);
      expect(querySet(server.queries.filter((x) => x.type === 'A' || x.type === 'AAAA'))).to.deep.equal(['A plain.example.com', 'AAAA plain.example.com']);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('§4.1 NAPTR', () => {
    const NAPTR_ZONE: ZoneRecord[] = [
      ZONE_SOA,
      naptr('example.com', 10, 50, 'S', 'SIP+D2T', '_sip._tcp.example.com'), // flags are case-insensitive (RFC 3403 §4.1)
      naptr('example.com', 1, 10, 'u', 'E2U+sip', '', '!^.*$!sip:info@example.com!'), // not a SIP service
      naptr('example.com', 10, 10, 's', 'SIP+D2U', '_sip._udp.example.com'),
      naptr('example.com', 5, 10, 's', 'SIP+D2S', '_sip._sctp.example.com'), // SCTP: not a transport here
      naptr('example.com', 5, 20, 's', 'SIPS+D2U', '_sips._udp.example.com'), // TLS over UDP: no such thing
      naptr('example.com', 2, 10, '', 'SIP+D2U', 'next.example.com'), // not terminal (flag ""): not followed
      naptr('example.com', 20, 10, 's', 'SIPS+D2T', '_sips._tcp.example.com'),
      srv('_sip._udp.example.com', 10, 0, 5060, 'udp.example.com'),
      srv('_sip._tcp.example.com', 10, 0, 5062, 'tcp.example.com'),
      srv('_sips._tcp.example.com', 10, 0, 5063, 'tls.example.com'),
      srv('_sip._sctp.example.com', 10, 0, 5064, 'sctp.example.com'),
      srv('_sips._udp.example.com', 10, 0, 5065, 'dtls.example.com'),
      naptr('next.example.com', 10, 10, 's', 'SIP+D2U', '_sip._udp.next.example.com'),
      srv('_sip._udp.next.example.com', 10, 0, 5066, 'next-udp.example.com'),
      a('udp.example.com', '192.0.2.1'),
      a('tcp.example.com', '192.0.2.2'),
      a('tls.example.com', '192.0.2.3'),
      a('sctp.example.com', '192.0.2.4'),
      a('dtls.example.com', '192.0.2.5'),
      a('next-udp.example.com', '192.0.2.6'),
    ];
    const UDP = t('udp', '192.0.2.1', 5060);
    const TCP = t('tcp', '192.0.2.2', 5062);
    const TLS = t('tls', '192.0.2.3', 5063);

    it('sip: keeps SIP+D2U, SIP+D2T, SIPS+D2T with flag s, by order then preference; drops the rest', async () => {
      const server = await dnsServer(NAPTR_ZONE);
      const resolver = resolverFor(server);
      const targets = await drain(resolver.resolve('sip:bob@example.com'));
      expect(tuples(targets)).to.deep.equal([UDP, TCP, TLS]);
      expect(targets[0]!.via).to.match(/NAPTR/).and.to.include('_sip._udp.example.com');
      expect(targets[1]!.via).to.match(/NAPTR/).and.to.include('_sip._tcp.example.com');
      expect(targets[2]!.via).to.match(/NAPTR/).and.to.include('_sips._tcp.example.com');
      expect(queriesOfType(server, 'NAPTR')).to.deep.equal(['example.com']);
      expect(queriesOfType(server, 'SRV')).to.deep.equal(['_sip._udp.example.com', '_sip._tcp.example.com', '_sips._tcp.example.com']);
      expectNoDuplicateQueries(server);
    });

    it('sips: keeps only SIPS+D2T', async () => {
      const server = await dnsServer(NAPTR_ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sips:bob@example.com'))).to.deep.equal([TLS]);
      expect(queriesOfType(server, 'SRV')).to.deep.equal(['_sips._tcp.example.com']);
    });

    const filtered: Array<[SipTransport[], Tuple[], string[]]> = [
      [['udp'], [UDP], ['_sip._udp.example.com']],
      [['tcp', 'tls'], [TCP, TLS], ['_sip._tcp.example.com', '_sips._tcp.example.com']],
      // NAPTR order decides, not the order of `transports`.
      [['tls', 'udp'], [UDP, TLS], ['_sip._udp.example.com', '_sips._tcp.example.com']],
    ];
    for (const [transports, expected, srvQueries] of filtered) {
      it(`transports: [${transports.join(', ')}] keeps only those services`, async () => {
        const server = await dnsServer(NAPTR_ZONE);
        const resolver = resolverFor(server, { transports });
        expect(await targetsOf(resolver.resolve('sip:example.com'))).to.deep.equal(expected);
        expect(queriesOfType(server, 'SRV')).to.deep.equal(srvQueries);
      });
    }

    it('sips: with no TLS transport → no targets', async () => {
      const server = await dnsServer(NAPTR_ZONE);
      const resolver = resolverFor(server, { transports: ['udp', 'tcp'] });
      const list = resolver.resolve('sips:example.com');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error).to.be.instanceOf(DnsError);
    });

    it('SIP+D2W and SIPS+D2W (RFC 7118) give ws and wss targets when the element has them', async () => {
      const server = await dnsServer([
        ...NAPTR_ZONE,
        naptr('ws.example.com', 10, 10, 's', 'SIP+D2W', '_sip._ws.ws.example.com'),
        naptr('ws.example.com', 20, 10, 's', 'SIPS+D2W', '_sips._ws.ws.example.com'),
        naptr('ws.example.com', 30, 10, 's', 'SIP+D2U', '_sip._udp.example.com'),
        srv('_sip._ws.ws.example.com', 10, 0, 8080, 'udp.example.com'),
        srv('_sips._ws.ws.example.com', 10, 0, 8443, 'tls.example.com'),
      ]);
      const resolver = resolverFor(server, { transports: ['ws', 'wss'] });
      expect(await targetsOf(resolver.resolve('sip:ws.example.com'))).to.deep.equal([t('ws', '192.0.2.1', 8080), t('wss', '192.0.2.3', 8443)]);
      expect(await targetsOf(resolver.resolve('sips:ws.example.com'))).to.deep.equal([t('wss', '192.0.2.3', 8443)]);
      expect(queriesOfType(server, 'SRV')).to.deep.equal(['_sip._ws.ws.example.com', '_sips._ws.ws.example.com']);
    });

    it('is lazy: after the first target only the first NAPTR service was looked up', async () => {
      const server = await dnsServer(NAPTR_ZONE);
      const resolver = resolverFor(server, { families: [4] });
      const list = resolver.resolve('sip:example.com');
      expect(tuples([(await within(list.next(), 'next()'))!])).to.deep.equal([UDP]);
      expect(server.queries).to.deep.equal([q('example.com', 'NAPTR'), q('_sip._udp.example.com', 'SRV'), q('udp.example.com', 'A')]);
      expect(tuples([(await within(list.next(), 'next()'))!])).to.deep.equal([TCP]);
      expect(server.queries.slice(3)).to.deep.equal([q('_sip._tcp.example.com', 'SRV'), q('tcp.example.com', 'A')]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('§4.1 no usable NAPTR → SRV for each supported transport', () => {
    const SRV_ZONE: ZoneRecord[] = [
      ZONE_SOA,
      a('srvonly.example.com', '192.0.2.99'), // the name exists: NAPTR is NODATA
      srv('_sip._udp.srvonly.example.com', 10, 0, 5070, 's-udp.example.com'),
      srv('_sip._tcp.srvonly.example.com', 10, 0, 5071, 's-tcp.example.com'),
      srv('_sips._tcp.srvonly.example.com', 10, 0, 5072, 's-tls.example.com'),
      a('s-udp.example.com', '192.0.2.71'),
      a('s-tcp.example.com', '192.0.2.72'),
      a('s-tls.example.com', '192.0.2.73'),
    ];
    const S_UDP = t('udp', '192.0.2.71', 5070);
    const S_TCP = t('tcp', '192.0.2.72', 5071);
    const S_TLS = t('tls', '192.0.2.73', 5072);
    const byKey = (list: Tuple[]): Tuple[] => [...list].sort((x, y) => `${x.transport}${x.address}`.localeCompare(`${y.transport}${y.address}`));

    it('sip: → the SRV targets of _sips._tcp, _sip._tcp and _sip._udp; never the host A record', async () => {
      const server = await dnsServer(SRV_ZONE);
      const resolver = resolverFor(server);
      const targets = await targetsOf(resolver.resolve('sip:srvonly.example.com'));
      expect(byKey(targets)).to.deep.equal(byKey([S_TLS, S_TCP, S_UDP]));
      expect(queriesOfType(server, 'NAPTR')).to.deep.equal(['srvonly.example.com']);
      expect([...queriesOfType(server, 'SRV')].sort()).to.deep.equal(['_sip._tcp.srvonly.example.com', '_sip._udp.srvonly.example.com', '_sips._tcp.srvonly.example.com']);
      expect(queriesOfType(server, 'A')).to.not.include('srvonly.example.com');
    });

    it('sip: → in the order of `transports`: the default udp, tcp, tls, and a configured tls, tcp, udp', async () => {
      const server = await dnsServer(SRV_ZONE);
      expect(await targetsOf(resolverFor(server).resolve('sip:srvonly.example.com'))).to.deep.equal([S_UDP, S_TCP, S_TLS]);
      const tlsFirst = resolverFor(server, { transports: ['tls', 'tcp', 'udp'] });
      expect(await targetsOf(tlsFirst.resolve('sip:srvonly.example.com'))).to.deep.equal([S_TLS, S_TCP, S_UDP]);
    });

    it('sips: → only _sips._tcp', async () => {
      const server = await dnsServer(SRV_ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sips:srvonly.example.com'))).to.deep.equal([S_TLS]);
      expect(queriesOfType(server, 'SRV')).to.deep.equal(['_sips._tcp.srvonly.example.com']);
    });

    it('only unusable NAPTR records (SIP+D2S) count as none', async () => {
      const server = await dnsServer([...SRV_ZONE, naptr('srvonly.example.com', 10, 10, 's', 'SIP+D2S', '_sip._sctp.srvonly.example.com')]);
      const resolver = resolverFor(server, { transports: ['udp'] });
      expect(await targetsOf(resolver.resolve('sip:srvonly.example.com'))).to.deep.equal([S_UDP]);
      expect(queriesOfType(server, 'SRV')).to.deep.equal(['_sip._udp.srvonly.example.com']);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('§4.1/§4.2 no SRV → A/AAAA on the default port', () => {
    const ZONE = [ZONE_SOA, a('host.example.com', '192.0.2.10'), aaaa('host.example.com', '2001:db8::10')];

    it('sip: → udp 5060 to each address', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sip:host.example.com'))).to.deep.equal([t('udp', '192.0.2.10', 5060), t('udp', '2001:db8::10', 5060)]);
      expect(querySet(server.queries)).to.deep.equal(
        querySet([
          q('host.example.com', 'NAPTR'),
          q('_sip._udp.host.example.com', 'SRV'),
          q('_sip._tcp.host.example.com', 'SRV'),
          q('_sips._tcp.host.example.com', 'SRV'),
          q('host.example.com', 'A'),
          q('host.example.com', 'AAAA'),
        ]),
      );
    });

    it('sips: → tls 5061 to each address', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sips:host.example.com'))).to.deep.equal([t('tls', '192.0.2.10', 5061), t('tls', '2001:db8::10', 5061)]);
      expect(querySet(server.queries)).to.deep.equal(
        querySet([q('host.example.com', 'NAPTR'), q('_sips._tcp.host.example.com', 'SRV'), q('host.example.com', 'A'), q('host.example.com', 'AAAA')]),
      );
    });

    it('maddr (a name, no port) goes through NAPTR/SRV/A for the maddr, not the host', async () => {
      const server = await dnsServer([...ZONE, a('other.example.com', '192.0.2.77')]);
      const resolver = resolverFor(server, { families: [4] });
      expect(await targetsOf(resolver.resolve('sip:bob@other.example.com;maddr=host.example.com'))).to.deep.equal([t('udp', '192.0.2.10', 5060)]);
      expect(server.queries.map((x) => x.name.toLowerCase()).filter((n) => n.includes('other'))).to.deep.equal([]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('A and AAAA', () => {
    const ZONE = [ZONE_SOA, a('dual.example.com', '192.0.2.20'), a('dual.example.com', '192.0.2.21'), aaaa('dual.example.com', '2001:db8::20')];
    const URI = 'sip:dual.example.com:5060';

    it('A first by default', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([t('udp', '192.0.2.20', 5060), t('udp', '192.0.2.21', 5060), t('udp', '2001:db8::20', 5060)]);
      expect(await resolver.lookupAddresses('dual.example.com')).to.deep.equal(['192.0.2.20', '192.0.2.21', '2001:db8::20']);
    });

    it('AAAA first with preferIpv6', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server, { preferIpv6: true });
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([t('udp', '2001:db8::20', 5060), t('udp', '192.0.2.20', 5060), t('udp', '192.0.2.21', 5060)]);
      expect(await resolver.lookupAddresses('dual.example.com')).to.deep.equal(['2001:db8::20', '192.0.2.20', '192.0.2.21']);
    });

    it('families: [4] → A only; families: [6] → AAAA only', async () => {
      const server = await dnsServer(ZONE);
      const v4 = resolverFor(server, { families: [4] });
      expect(await targetsOf(v4.resolve(URI))).to.deep.equal([t('udp', '192.0.2.20', 5060), t('udp', '192.0.2.21', 5060)]);
      expect(await v4.lookupAddresses('dual.example.com')).to.deep.equal(['192.0.2.20', '192.0.2.21']);
      const v6 = resolverFor(server, { families: [6] });
      expect(await targetsOf(v6.resolve(URI))).to.deep.equal([t('udp', '2001:db8::20', 5060)]);
    });

    it('lookupAddresses of a numeric address asks nobody', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server);
      expect(await resolver.lookupAddresses('192.0.2.5')).to.deep.equal(['192.0.2.5']);
      expect(await resolver.lookupAddresses('2001:db8::5')).to.deep.equal(['2001:db8::5']);
      expect(server.queries).to.deep.equal([]);
    });

    it('a truncated UDP answer (TC=1) is asked again over TCP', async () => {
      // 40 A records: 40 × 16 octets do not fit in 512; dns2's server truncates and sets TC.
      const many = Array.from({ length: 40 }, (_, i) => `10.0.0.${i + 1}`);
      const server = await dnsServer([ZONE_SOA, ...many.map((address) => a('big.example.com', address))], { tcp: true });
      const resolver = resolverFor(server, { families: [4] });
      expect(await within(resolver.lookupAddresses('big.example.com'), 'lookupAddresses')).to.deep.equal(many);
      expect(server.queries).to.deep.equal([q('big.example.com', 'A'), q('big.example.com', 'A')]); // UDP, then TCP
      expect(resolver.wireQueries).to.equal(2);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('CNAME chains', () => {
    it('are followed for A/AAAA, and lookupAddresses gives the canonical name\'s addresses', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        cname('alias.example.com', 'alias2.example.com'),
        cname('alias2.example.com', 'real.example.com'),
        a('real.example.com', '192.0.2.30'),
        aaaa('real.example.com', '2001:db8::30'),
      ]);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sip:alias.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.30', 5060), t('udp', '2001:db8::30', 5060)]);
      expect(await resolver.lookupAddresses('alias.example.com')).to.deep.equal(['192.0.2.30', '2001:db8::30']);
      expect(querySet(server.queries)).to.deep.equal(['A alias.example.com', 'AAAA alias.example.com']);
    });

    it('are followed for SRV targets and SRV names', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        cname('_sip._udp.svc.example.com', '_sip._udp.real-svc.example.com'),
        srv('_sip._udp.real-svc.example.com', 10, 0, 5090, 'host-alias.example.com'),
        cname('host-alias.example.com', 'host.example.com'),
        a('host.example.com', '192.0.2.31'),
      ]);
      const resolver = resolverFor(server, { families: [4] });
      expect(await targetsOf(resolver.resolve('sip:svc.example.com;transport=udp'))).to.deep.equal([t('udp', '192.0.2.31', 5090)]);
    });

    it('8 links are followed', async () => {
      const chain = Array.from({ length: 8 }, (_, i) => cname(`c${i}.example.com`, `c${i + 1}.example.com`));
      const server = await dnsServer([ZONE_SOA, ...chain, a('c8.example.com', '192.0.2.38')]);
      const resolver = resolverFor(server, { families: [4] });
      expect(await targetsOf(resolver.resolve('sip:c0.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.38', 5060)]);
    });

    it('more than 8 links are not: no targets', async () => {
      const chain = Array.from({ length: 9 }, (_, i) => cname(`c${i}.example.com`, `c${i + 1}.example.com`));
      const server = await dnsServer([ZONE_SOA, ...chain, a('c9.example.com', '192.0.2.39')]);
      const resolver = resolverFor(server, { families: [4] });
      const list = resolver.resolve('sip:c0.example.com:5060');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error).to.be.instanceOf(DnsError);
    });

    it('a CNAME loop ends the list (no hang)', async () => {
      const server = await dnsServer([ZONE_SOA, cname('loop1.example.com', 'loop2.example.com'), cname('loop2.example.com', 'loop1.example.com')]);
      const resolver = resolverFor(server);
      const list = resolver.resolve('sip:loop1.example.com:5060');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error).to.be.instanceOf(DnsError);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('SRV (RFC 2782)', () => {
    it('lowest priority first, each SRV target expanded to its addresses in place', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        srv('_sip._udp.prio.example.com', 30, 0, 5003, 'c.prio.example.com'),
        srv('_sip._udp.prio.example.com', 10, 0, 5001, 'a.prio.example.com'),
        srv('_sip._udp.prio.example.com', 20, 0, 5002, 'b.prio.example.com'),
        a('a.prio.example.com', '192.0.2.41'),
        a('a.prio.example.com', '192.0.2.42'),
        aaaa('a.prio.example.com', '2001:db8::41'),
        a('b.prio.example.com', '192.0.2.43'),
        a('c.prio.example.com', '192.0.2.44'),
      ]);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolve('sip:prio.example.com;transport=udp'))).to.deep.equal([
        t('udp', '192.0.2.41', 5001),
        t('udp', '192.0.2.42', 5001),
        t('udp', '2001:db8::41', 5001),
        t('udp', '192.0.2.43', 5002),
        t('udp', '192.0.2.44', 5003),
      ]);
    });

    it('a target of "." means "not offered here": no targets, and no A/AAAA fallback', async () => {
      const server = await dnsServer([ZONE_SOA, srv('_sip._udp.none.example.com', 0, 0, 0, '.'), a('none.example.com', '192.0.2.45')]);
      const resolver = resolverFor(server);
      const list = resolver.resolve('sip:none.example.com;transport=udp');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(server.queries).to.deep.equal([q('_sip._udp.none.example.com', 'SRV')]);
      expect(list.error).to.be.instanceOf(DnsError);
    });

    it('an SRV target that does not exist is passed over', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        srv('_sip._udp.gap.example.com', 10, 0, 5060, 'missing.example.com'),
        srv('_sip._udp.gap.example.com', 20, 0, 5060, 'present.example.com'),
        a('present.example.com', '192.0.2.46'),
      ]);
      const resolver = resolverFor(server, { families: [4] });
      expect(await targetsOf(resolver.resolve('sip:gap.example.com;transport=udp'))).to.deep.equal([t('udp', '192.0.2.46', 5060)]);
      expect(server.queries).to.deep.equal([q('_sip._udp.gap.example.com', 'SRV'), q('missing.example.com', 'A'), q('present.example.com', 'A')]);
    });

    it('a target is produced once per list (two SRV records, one address)', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        srv('_sip._udp.dup.example.com', 10, 0, 5060, 'dup1.example.com'),
        srv('_sip._udp.dup.example.com', 20, 0, 5060, 'dup2.example.com'),
        srv('_sip._udp.dup.example.com', 30, 0, 5061, 'dup2.example.com'),
        a('dup1.example.com', '192.0.2.50'),
        a('dup2.example.com', '192.0.2.50'),
      ]);
      const resolver = resolverFor(server, { families: [4] });
      expect(await targetsOf(resolver.resolve('sip:dup.example.com;transport=udp'))).to.deep.equal([t('udp', '192.0.2.50', 5060), t('udp', '192.0.2.50', 5061)]);
    });

    const WEIGHTED = [
      ZONE_SOA,
      srv('_sip._udp.weighted.example.com', 10, 10, 5060, 'w10.example.com'),
      srv('_sip._udp.weighted.example.com', 10, 30, 5060, 'w30.example.com'),
      srv('_sip._udp.weighted.example.com', 10, 60, 5060, 'w60.example.com'),
      srv('_sip._udp.weighted.example.com', 20, 100, 5060, 'backup.example.com'),
      a('w10.example.com', '192.0.2.10'),
      a('w30.example.com', '192.0.2.30'),
      a('w60.example.com', '192.0.2.60'),
      a('backup.example.com', '192.0.2.99'),
    ];

    it('within a priority, the first target is drawn in proportion to weight (10/30/60 over 3000 lookups)', async () => {
      const server = await dnsServer(WEIGHTED);
      const resolver = resolverFor(server, { families: [4], random: mulberry32(2782) });
      const firsts = new Map<string, number>();
      const DRAWS = 3000;
      for (let i = 0; i < DRAWS; i++) {
        const first = await resolver.resolve('sip:weighted.example.com;transport=udp').next();
        firsts.set(first!.address, (firsts.get(first!.address) ?? 0) + 1);
      }
      const share = (address: string): number => (firsts.get(address) ?? 0) / DRAWS;
      expect(share('192.0.2.10')).to.be.closeTo(0.1, 0.05);
      expect(share('192.0.2.30')).to.be.closeTo(0.3, 0.05);
      expect(share('192.0.2.60')).to.be.closeTo(0.6, 0.05);
      expect(firsts.has('192.0.2.99'), 'the priority-20 record is never first').to.equal(false);
      // The zone was asked once: every other lookup came from the cache.
      expect(server.queries.length).to.equal(4);
    });

    it('every list holds each record once, the lower priority ones after', async () => {
      const server = await dnsServer(WEIGHTED);
      const resolver = resolverFor(server, { families: [4], random: mulberry32(7) });
      for (let i = 0; i < 50; i++) {
        const addresses = (await targetsOf(resolver.resolve('sip:weighted.example.com;transport=udp'))).map((x) => x.address);
        expect([...addresses.slice(0, 3)].sort()).to.deep.equal(['192.0.2.10', '192.0.2.30', '192.0.2.60']);
        expect(addresses[3]).to.equal('192.0.2.99');
        expect(addresses.length).to.equal(4);
      }
    });

    it('weight 0 has a small chance of being first', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        srv('_sip._udp.zero.example.com', 10, 0, 5060, 'w0.example.com'),
        srv('_sip._udp.zero.example.com', 10, 100, 5060, 'w100.example.com'),
        a('w0.example.com', '192.0.2.100'),
        a('w100.example.com', '192.0.2.101'),
      ]);
      const resolver = resolverFor(server, { families: [4], random: mulberry32(99) });
      let zeroFirst = 0;
      const DRAWS = 3000;
      for (let i = 0; i < DRAWS; i++) {
        const first = await resolver.resolve('sip:zero.example.com;transport=udp').next();
        if (first!.address === '192.0.2.100') zeroFirst++;
      }
      expect(zeroFirst / DRAWS).to.be.below(0.05);
      expect(zeroFirst, 'chosen at least once in 3000 draws').to.be.above(0);
      // A draw of 0 picks the weight-0 record (RFC 2782: weight 0 records are placed first).
      const zeroDraw = resolverFor(server, { families: [4], random: () => 0 });
      expect((await zeroDraw.resolve('sip:zero.example.com;transport=udp').next())!.address).to.equal('192.0.2.100');
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('failures', () => {
    it('NXDOMAIN → no targets, error DNS_NXDOMAIN', async () => {
      const server = await dnsServer([ZONE_SOA]);
      const resolver = resolverFor(server);
      for (const uri of ['sip:nowhere.example.com', 'sip:nowhere.example.com:5060', 'sip:nowhere.example.com;transport=tcp', 'sips:nowhere.example.com']) {
        const list = resolver.resolve(uri);
        expect(await targetsOf(list), uri).to.deep.equal([]);
        expect(list.error, uri).to.be.instanceOf(DnsError);
        expect(list.error!.code, uri).to.equal('DNS_NXDOMAIN');
      }
    });

    it('lookupAddresses of a name that does not exist → []', async () => {
      const server = await dnsServer([ZONE_SOA]);
      const resolver = resolverFor(server);
      expect(await resolver.lookupAddresses('nowhere.example.com')).to.deep.equal([]);
    });

    it('SERVFAIL → no targets, DNS_SERVFAIL, and not cached', async () => {
      const server = await dnsServer([ZONE_SOA, a('sf.example.com', '192.0.2.60')], { servfail: ['sf.example.com'] });
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, attempts: 1, families: [4] });
      const first = resolver.resolve('sip:sf.example.com:5060');
      expect(await targetsOf(first)).to.deep.equal([]);
      expect(first.error?.code).to.equal('DNS_SERVFAIL');
      expect(server.queries).to.deep.equal([q('sf.example.com', 'A')]);
      // Asked again at once (no time passes): not from a cache.
      const second = resolver.resolve('sip:sf.example.com:5060');
      expect(await targetsOf(second)).to.deep.equal([]);
      expect(second.error?.code).to.equal('DNS_SERVFAIL');
      expect(server.queries).to.deep.equal([q('sf.example.com', 'A'), q('sf.example.com', 'A')]);
      server.servfail = [];
      expect(await targetsOf(resolver.resolve('sip:sf.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.60', 5060)]);
      expect(server.queries.length).to.equal(3);
    });

    it('a SERVFAIL from the first nameserver: the answer comes from the second', async () => {
      const failing = await dnsServer([ZONE_SOA, a('sf.example.com', '192.0.2.65')], { servfail: ['sf.example.com'] });
      const good = await dnsServer([ZONE_SOA, a('sf.example.com', '192.0.2.66')]);
      const resolver = resolverFor([failing, good], { families: [4] });
      expect(await targetsOf(resolver.resolve('sip:sf.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.66', 5060)]);
      expect(failing.queries).to.deep.equal([q('sf.example.com', 'A')]);
      expect(good.queries).to.deep.equal([q('sf.example.com', 'A')]);
    });

    it('a silent first nameserver: the answer comes from the second (timeoutMs 100)', async () => {
      const silent = await dnsServer([ZONE_SOA, a('to.example.com', '192.0.2.61')], { silent: true });
      const good = await dnsServer([ZONE_SOA, a('to.example.com', '192.0.2.62')]);
      const resolver = resolverFor([silent, good], { timeoutMs: 100, families: [4] });
      const started = performance.now();
      expect(await targetsOf(resolver.resolve('sip:to.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.62', 5060)]);
      expect(performance.now() - started).to.be.at.least(90);
      expect(silent.queries).to.deep.equal([q('to.example.com', 'A')]);
      expect(good.queries).to.deep.equal([q('to.example.com', 'A')]);
    });

    it('every nameserver silent → no targets, DNS_TIMEOUT, after `attempts` rounds over the list', async () => {
      const s1 = await dnsServer([ZONE_SOA, a('to.example.com', '192.0.2.61')], { silent: true });
      const s2 = await dnsServer([ZONE_SOA, a('to.example.com', '192.0.2.61')], { silent: true });
      const resolver = resolverFor([s1, s2], { timeoutMs: 50, attempts: 2, families: [4] });
      const list = resolver.resolve('sip:to.example.com:5060');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_TIMEOUT');
      expect(s1.queries).to.deep.equal([q('to.example.com', 'A'), q('to.example.com', 'A')]);
      expect(s2.queries).to.deep.equal([q('to.example.com', 'A'), q('to.example.com', 'A')]);
      expect(resolver.wireQueries).to.equal(4);
    });

    it('a silent NAPTR lookup ends the whole list: no SRV or A/AAAA query waits out the same timeouts', async () => {
      const s1 = await dnsServer([ZONE_SOA, a('walk.example.com', '192.0.2.62')], { silent: true });
      const resolver = resolverFor(s1, { timeoutMs: 50, attempts: 2 });
      const list = resolver.resolve('sip:walk.example.com');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_TIMEOUT');
      expect(s1.queries).to.deep.equal([q('walk.example.com', 'NAPTR'), q('walk.example.com', 'NAPTR')]);
    });

    it('a timeout is not cached: the zone answers the next lookup', async () => {
      const server = await dnsServer([ZONE_SOA, a('to.example.com', '192.0.2.63')], { silent: true });
      const resolver = resolverFor(server, { timeoutMs: 50, attempts: 1, families: [4] });
      const list = resolver.resolve('sip:to.example.com:5060');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_TIMEOUT');
      server.silent = false;
      expect(await targetsOf(resolver.resolve('sip:to.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.63', 5060)]);
      expect(server.queries).to.deep.equal([q('to.example.com', 'A'), q('to.example.com', 'A')]);
    });

    it('nameservers may be given as { address, port }', async () => {
      const server = await dnsServer([ZONE_SOA, a('obj.example.com', '192.0.2.64')]);
      const resolver = new SipResolver({ nameservers: [{ address: server.address, port: server.port }], hostsFile: false, families: [4] });
      cleanups.push(() => resolver.close());
      expect(await targetsOf(resolver.resolve('sip:obj.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.64', 5060)]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('laziness', () => {
    it('two SRV targets: after the first next(), only the first target\'s A/AAAA were asked', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        srv('_sip._udp.lazy.example.com', 10, 0, 5060, 'first.lazy.example.com'),
        srv('_sip._udp.lazy.example.com', 20, 0, 5060, 'second.lazy.example.com'),
        a('first.lazy.example.com', '192.0.2.81'),
        aaaa('first.lazy.example.com', '2001:db8::81'),
        a('second.lazy.example.com', '192.0.2.82'),
      ]);
      const resolver = resolverFor(server);
      const list = resolver.resolve('sip:lazy.example.com;transport=udp');
      const first = await within(list.next(), 'next()');
      expect(tuples([first!])).to.deep.equal([t('udp', '192.0.2.81', 5060)]);
      expect(server.queries[0]).to.deep.equal(q('_sip._udp.lazy.example.com', 'SRV'));
      expect(querySet(server.queries.slice(1))).to.deep.equal(['A first.lazy.example.com', 'AAAA first.lazy.example.com']);
      // The first target's AAAA comes next, still without asking about the second.
      expect(tuples([(await within(list.next(), 'next()'))!])).to.deep.equal([t('udp', '2001:db8::81', 5060)]);
      expect(server.queries.length).to.equal(3);
      expect(tuples([(await within(list.next(), 'next()'))!])).to.deep.equal([t('udp', '192.0.2.82', 5060)]);
      expect(querySet(server.queries.slice(3))).to.deep.equal(['A second.lazy.example.com', 'AAAA second.lazy.example.com']);
      expect(await within(list.next(), 'next()')).to.equal(undefined);
      expect(await within(list.next(), 'next() again')).to.equal(undefined);
    });

    it('next() calls made together are answered in order, each target once', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        srv('_sip._udp.lazy.example.com', 10, 0, 5060, 'first.lazy.example.com'),
        srv('_sip._udp.lazy.example.com', 20, 0, 5060, 'second.lazy.example.com'),
        a('first.lazy.example.com', '192.0.2.81'),
        a('second.lazy.example.com', '192.0.2.82'),
      ]);
      const resolver = resolverFor(server, { families: [4] });
      const list = resolver.resolve('sip:lazy.example.com;transport=udp');
      const results = await within(Promise.all([list.next(), list.next(), list.next(), list.next()]), '4 × next()');
      expect(results.map((x) => x && `${x.address}:${x.port}`)).to.deep.equal(['192.0.2.81:5060', '192.0.2.82:5060', undefined, undefined]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('cache', () => {
    it('answers are kept for their TTL, then asked again (and a changed zone is seen)', async () => {
      const server = await dnsServer([soa('example.com', 3600, 3600), a('ttl.example.com', '192.0.2.90', 30)]);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock });
      const URI = 'sip:ttl.example.com:5060';
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([t('udp', '192.0.2.90', 5060)]);
      expect(querySet(server.queries)).to.deep.equal(['A ttl.example.com', 'AAAA ttl.example.com']);
      expect(resolver.wireQueries).to.equal(2);

      server.records = [soa('example.com', 3600, 3600), a('ttl.example.com', '192.0.2.91', 30)];
      clock.advance(30_000 - 1);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([t('udp', '192.0.2.90', 5060)]);
      expect(await resolver.lookupAddresses('ttl.example.com')).to.deep.equal(['192.0.2.90']);
      expect(server.queries.length).to.equal(2);
      expect(resolver.wireQueries).to.equal(2);

      clock.advance(2); // 30 s + 1 ms: the A record has expired; the NODATA for AAAA (SOA: 3600 s) has not
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([t('udp', '192.0.2.91', 5060)]);
      expect(server.queries.slice(2)).to.deep.equal([q('ttl.example.com', 'A')]);
      expect(resolver.wireQueries).to.equal(3);
    });

    it('a CNAME chain lives as long as its shortest TTL', async () => {
      const server = await dnsServer([soa('example.com', 3600, 3600), cname('short.example.com', 'long.example.com', 10), a('long.example.com', '192.0.2.92', 300)]);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4] });
      expect(await resolver.lookupAddresses('short.example.com')).to.deep.equal(['192.0.2.92']);
      clock.advance(10_000 - 1);
      expect(await resolver.lookupAddresses('short.example.com')).to.deep.equal(['192.0.2.92']);
      expect(server.queries.length).to.equal(1);
      clock.advance(2);
      expect(await resolver.lookupAddresses('short.example.com')).to.deep.equal(['192.0.2.92']);
      expect(server.queries).to.deep.equal([q('short.example.com', 'A'), q('short.example.com', 'A')]);
    });

    it('SRV and NAPTR answers are cached too: a second resolve sends nothing', async () => {
      const server = await dnsServer([
        soa('example.com', 3600, 3600), // the AAAA NODATA lives as long as the records
        naptr('example.com', 10, 10, 's', 'SIP+D2U', '_sip._udp.example.com'),
        srv('_sip._udp.example.com', 10, 0, 5060, 'udp.example.com'),
        a('udp.example.com', '192.0.2.1'),
      ]);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock });
      const expected = [t('udp', '192.0.2.1', 5060)];
      expect(await targetsOf(resolver.resolve('sip:example.com'))).to.deep.equal(expected);
      const sent = server.queries.length;
      expect(sent).to.equal(4); // NAPTR, SRV, A, AAAA
      clock.advance(299_000);
      expect(await targetsOf(resolver.resolve('sip:example.com'))).to.deep.equal(expected);
      expect(server.queries.length).to.equal(sent);
      expect(resolver.wireQueries).to.equal(sent);
    });

    it('NXDOMAIN is kept for min(SOA TTL, SOA minimum) = the minimum, then asked again', async () => {
      const server = await dnsServer([soa('neg.test', 45, 120)]);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4] });
      const URI = 'sip:gone.neg.test:5060';
      const list = resolver.resolve(URI);
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_NXDOMAIN');
      expect(server.queries).to.deep.equal([q('gone.neg.test', 'A')]);

      server.records = [soa('neg.test', 45, 120), a('gone.neg.test', '192.0.2.93')];
      clock.advance(45_000 - 1);
      const cached = resolver.resolve(URI);
      expect(await targetsOf(cached)).to.deep.equal([]);
      expect(cached.error?.code).to.equal('DNS_NXDOMAIN');
      expect(server.queries.length).to.equal(1);

      clock.advance(2);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([t('udp', '192.0.2.93', 5060)]);
      expect(server.queries).to.deep.equal([q('gone.neg.test', 'A'), q('gone.neg.test', 'A')]);
    });

    it('NXDOMAIN is kept for min(SOA TTL, SOA minimum) = the SOA TTL when that is smaller', async () => {
      const server = await dnsServer([soa('neg2.test', 100, 20)]);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4] });
      expect(await resolver.lookupAddresses('gone.neg2.test')).to.deep.equal([]);
      clock.advance(20_000 - 1);
      expect(await resolver.lookupAddresses('gone.neg2.test')).to.deep.equal([]);
      expect(server.queries.length).to.equal(1);
      clock.advance(2);
      expect(await resolver.lookupAddresses('gone.neg2.test')).to.deep.equal([]);
      expect(server.queries.length).to.equal(2);
    });

    it('NODATA is cached like NXDOMAIN (RFC 2308 §5)', async () => {
      const server = await dnsServer([soa('example.com', 40, 300), a('v4only.example.com', '192.0.2.94')]);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [6] });
      const list = resolver.resolve('sip:v4only.example.com:5060');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_NODATA');
      clock.advance(40_000 - 1);
      expect(await targetsOf(resolver.resolve('sip:v4only.example.com:5060'))).to.deep.equal([]);
      expect(server.queries).to.deep.equal([q('v4only.example.com', 'AAAA')]);
      clock.advance(2);
      expect(await targetsOf(resolver.resolve('sip:v4only.example.com:5060'))).to.deep.equal([]);
      expect(server.queries).to.deep.equal([q('v4only.example.com', 'AAAA'), q('v4only.example.com', 'AAAA')]);
    });

    it('a negative answer without an SOA is kept for negativeTtlMs', async () => {
      const server = await dnsServer([]); // no SOA anywhere: NXDOMAIN with an empty authority section
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4], negativeTtlMs: 5000 });
      expect(await resolver.lookupAddresses('nosoa.test')).to.deep.equal([]);
      clock.advance(5000 - 1);
      expect(await resolver.lookupAddresses('nosoa.test')).to.deep.equal([]);
      expect(server.queries.length).to.equal(1);
      clock.advance(2);
      expect(await resolver.lookupAddresses('nosoa.test')).to.deep.equal([]);
      expect(server.queries.length).to.equal(2);
    });

    it('maxCacheEntries bounds the cache (least recently used first out)', async () => {
      const server = await dnsServer([ZONE_SOA, a('n1.example.com', '192.0.2.1'), a('n2.example.com', '192.0.2.2'), a('n3.example.com', '192.0.2.3')]);
      const resolver = resolverFor(server, { clock: new ManualClock(), families: [4], maxCacheEntries: 2 });
      for (const name of ['n1', 'n2', 'n3', 'n3', 'n2', 'n1']) expect(await resolver.lookupAddresses(`${name}.example.com`)).to.have.length(1);
      expect(server.queries.map((x) => x.name)).to.deep.equal(['n1.example.com', 'n2.example.com', 'n3.example.com', 'n1.example.com']);
    });

    it('20 concurrent resolve() and lookupAddresses() of one name share one query per (name, type)', async () => {
      const server = await dnsServer([ZONE_SOA, a('co.example.com', '192.0.2.95'), aaaa('co.example.com', '2001:db8::95')]);
      const resolver = resolverFor(server);
      const results = await within(
        Promise.all([
          ...Array.from({ length: 20 }, () => targetsOf(resolver.resolve('sip:co.example.com:5060'))),
          ...Array.from({ length: 20 }, () => resolver.lookupAddresses('co.example.com')),
        ]),
        '40 lookups',
      );
      for (const result of results.slice(0, 20)) expect(result).to.deep.equal([t('udp', '192.0.2.95', 5060), t('udp', '2001:db8::95', 5060)]);
      for (const result of results.slice(20)) expect(result).to.deep.equal(['192.0.2.95', '2001:db8::95']);
      expect(querySet(server.queries)).to.deep.equal(['A co.example.com', 'AAAA co.example.com']);
      expect(resolver.wireQueries).to.equal(2);
    });

    it('20 concurrent resolve() through NAPTR/SRV: still one query per (name, type)', async () => {
      const server = await dnsServer([
        ZONE_SOA,
        naptr('example.com', 10, 10, 's', 'SIP+D2U', '_sip._udp.example.com'),
        naptr('example.com', 20, 10, 's', 'SIP+D2T', '_sip._tcp.example.com'),
        srv('_sip._udp.example.com', 10, 0, 5060, 'udp.example.com'),
        srv('_sip._tcp.example.com', 10, 0, 5060, 'tcp.example.com'),
        a('udp.example.com', '192.0.2.1'),
        a('tcp.example.com', '192.0.2.2'),
      ]);
      const resolver = resolverFor(server);
      const results = await within(Promise.all(Array.from({ length: 20 }, () => targetsOf(resolver.resolve('sip:example.com')))), '20 lists');
      for (const result of results) expect(result).to.deep.equal([t('udp', '192.0.2.1', 5060), t('tcp', '192.0.2.2', 5060)]);
      expectNoDuplicateQueries(server);
      expect(server.queries.length).to.equal(7); // NAPTR, 2 SRV, 2 × (A, AAAA)
      expect(resolver.wireQueries).to.equal(7);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('hosts file and resolv.conf', () => {
    it('names in the hosts file answer A/AAAA without any query, and never expire', async () => {
      const hosts = tempFile('hosts', ['# test hosts', '192.0.2.77   hosty.example.com hosty', '2001:db8::77 hosty.example.com', '192.0.2.78 v4only.test   # comment', ''].join('\n'));
      const server = await dnsServer([ZONE_SOA, a('hosty.example.com', '192.0.2.1')]);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { hostsFile: hosts, clock });
      expect(await targetsOf(resolver.resolve('sip:hosty.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.77', 5060), t('udp', '2001:db8::77', 5060)]);
      expect(await resolver.lookupAddresses('HOSTY.Example.com')).to.deep.equal(['192.0.2.77', '2001:db8::77']);
      expect(await resolver.lookupAddresses('hosty')).to.deep.equal(['192.0.2.77']); // the alias is on the IPv4 line only
      expect(await resolver.lookupAddresses('v4only.test')).to.deep.equal(['192.0.2.78']);
      clock.advance(86_400_000 * 7);
      expect(await resolver.lookupAddresses('hosty.example.com')).to.deep.equal(['192.0.2.77', '2001:db8::77']);
      expect(server.queries).to.deep.equal([]);
      expect(resolver.wireQueries).to.equal(0);
    });

    it('a name in the hosts file has no NAPTR/SRV: its addresses on the default port, nothing asked of DNS', async () => {
      const hosts = tempFile('hosts', '192.0.2.77 hosty.example.com\n');
      const server = await dnsServer([ZONE_SOA, a('hosty.example.com', '192.0.2.1')]);
      const resolver = resolverFor(server, { hostsFile: hosts });
      expect(await targetsOf(resolver.resolve('sip:hosty.example.com'))).to.deep.equal([t('udp', '192.0.2.77', 5060)]);
      expect(await targetsOf(resolver.resolve('sips:hosty.example.com'))).to.deep.equal([t('tls', '192.0.2.77', 5061)]);
      expect(await targetsOf(resolver.resolve('sip:hosty.example.com;transport=tcp'))).to.deep.equal([t('tcp', '192.0.2.77', 5060)]);
      expect(server.queries).to.deep.equal([]);
    });

    it('a nameserver that refuses (ICMP port unreachable) ends the list at once with DNS_UNREACHABLE', async () => {
      const closed = createSocket('udp4');
      await new Promise<void>((resolve) => closed.bind(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const resolver = new SipResolver({ nameservers: [`127.0.0.1:${port}`], hostsFile: false, timeoutMs: 10_000 });
      cleanups.push(() => resolver.close());
      const started = Date.now();
      const list = resolver.resolve('sip:example.com');
      expect(await list.all()).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_UNREACHABLE');
      // One NAPTR query per round (attempts 2); no SRV or A/AAAA after the nameserver proved silent.
      expect(resolver.wireQueries).to.equal(2);
      expect(Date.now() - started).to.be.below(5_000);
    });

    it('resolv.conf is ignored when nameservers are given', async () => {
      const conf = tempFile('resolv.conf', 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
      const server = await dnsServer([ZONE_SOA, a('rc.example.com', '192.0.2.79')]);
      const resolver = resolverFor(server, { resolvConf: conf, families: [4] });
      expect(await targetsOf(resolver.resolve('sip:rc.example.com:5060'))).to.deep.equal([t('udp', '192.0.2.79', 5060)]);
      expect(server.queries).to.deep.equal([q('rc.example.com', 'A')]);
    });

    it('without nameservers, the resolv.conf nameserver (port 53) is asked', async function () {
      // resolv.conf has no port syntax: a raw socket on an otherwise unused loopback address, port
      // 53, stands for the nameserver (binding port 53 needs privileges: skipped without them).
      const address = '127.83.63.53';
      let raw: DgramSocket;
      try {
        raw = await bindUdp(address, 53);
      } catch {
        this.skip();
      }
      cleanups.push(() => new Promise<void>((resolve) => raw.close(() => resolve())));
      const seen: Array<{ name: string; type: number }> = [];
      raw.on('message', (message) => {
        const question = dns2.Packet.parse(message).questions[0];
        if (question) seen.push({ name: question.name, type: question.type });
      });
      const conf = tempFile('resolv.conf', `# test\nnameserver ${address}\noptions timeout:1 attempts:1\n`);
      const resolver = new SipResolver({ resolvConf: conf, hostsFile: false, timeoutMs: 100, attempts: 1, families: [4] });
      cleanups.push(() => resolver.close());
      const list = resolver.resolve('sip:rc.example.com:5060');
      expect(await targetsOf(list)).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_TIMEOUT');
      expect(seen).to.deep.equal([{ name: 'rc.example.com', type: 1 }]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('marks', () => {
    const ZONE = [
      ZONE_SOA,
      srv('_sip._udp.marked.example.com', 10, 0, 5001, 'ma.example.com'),
      srv('_sip._udp.marked.example.com', 20, 0, 5002, 'mb.example.com'),
      srv('_sip._udp.marked.example.com', 30, 0, 5003, 'mc.example.com'),
      srv('_sip._udp.marked2.example.com', 10, 0, 5001, 'ma.example.com'),
      srv('_sip._udp.marked2.example.com', 20, 0, 5002, 'mb.example.com'),
      srv('_sip._udp.marked2.example.com', 30, 0, 5003, 'mc.example.com'),
      a('ma.example.com', '192.0.2.1'),
      a('mb.example.com', '192.0.2.2'),
      a('mc.example.com', '192.0.2.3'),
    ];
    const URI = 'sip:marked.example.com;transport=udp';
    const A = t('udp', '192.0.2.1', 5001);
    const B = t('udp', '192.0.2.2', 5002);
    const C = t('udp', '192.0.2.3', 5003);

    it('black targets are skipped until the mark expires', async () => {
      const server = await dnsServer(ZONE);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4], blacklistMs: 10_000 });
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, B, C]);
      resolver.marks.black(B);
      expect(resolver.marks.markOf(B)).to.equal('black');
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, C]);
      clock.advance(10_000 - 1);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, C]);
      clock.advance(1);
      expect(resolver.marks.markOf(B)).to.equal(undefined);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, B, C]);
    });

    it('black(target, ms) uses that time', async () => {
      const server = await dnsServer(ZONE);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4] });
      resolver.marks.black(A, 500);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([B, C]);
      clock.advance(500);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, B, C]);
    });

    it('grey targets come after every other', async () => {
      const server = await dnsServer(ZONE);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4], greylistMs: 10_000 });
      resolver.marks.grey(A);
      expect(resolver.marks.markOf(A)).to.equal('grey');
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([B, C, A]);
      resolver.marks.grey(B);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([C, A, B]);
      clock.advance(10_000);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, B, C]);
    });

    it('the whitelisted last known good of a query comes first next time', async () => {
      const server = await dnsServer(ZONE);
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, families: [4], whitelistMs: 60_000 });
      const list = resolver.resolve(URI);
      const targets = await drain(list);
      expect(tuples(targets)).to.deep.equal([A, B, C]);
      resolver.marks.white(targets[2]!, list.key);
      expect(resolver.marks.markOf(C)).to.equal('white');
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([C, A, B]);
      // The same query written differently (a user part, other parameters) is the same query…
      expect(await targetsOf(resolver.resolve('sip:bob@MARKED.example.com;transport=udp;lr'))).to.deep.equal([C, A, B]);
      // …another query reaching the same targets is not affected.
      expect(await targetsOf(resolver.resolve('sip:marked2.example.com;transport=udp'))).to.deep.equal([A, B, C]);
      clock.advance(60_000);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, B, C]);
    });

    it('a blacklisted last known good is not tried first', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server, { clock: new ManualClock(), families: [4] });
      const list = resolver.resolve(URI);
      await drain(list);
      resolver.marks.white(C, list.key);
      resolver.marks.black(C);
      expect(await targetsOf(resolver.resolve(URI))).to.deep.equal([A, B]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('§5 resolveResponse(via): the sent-by', () => {
    const ZONE = [
      ZONE_SOA,
      a('dual.example.com', '192.0.2.20'),
      aaaa('dual.example.com', '2001:db8::20'),
      naptr('resp.example.com', 10, 10, 's', 'SIP+D2T', '_sip._tcp.resp.example.com'),
      srv('_sip._udp.resp.example.com', 10, 0, 5080, 'r-udp.example.com'),
      srv('_sip._tcp.resp.example.com', 10, 0, 5081, 'r-tcp.example.com'),
      srv('_sips._tcp.resp.example.com', 10, 0, 5082, 'r-tls.example.com'),
      a('r-udp.example.com', '192.0.2.101'),
      a('r-tcp.example.com', '192.0.2.102'),
      a('r-tls.example.com', '192.0.2.103'),
      a('resp.example.com', '192.0.2.100'),
    ];

    const numeric: Array<[string, Tuple]> = [
      ['SIP/2.0/UDP 192.0.2.60:5070;branch=z9hG4bK-1', t('udp', '192.0.2.60', 5070)],
      ['SIP/2.0/UDP 192.0.2.60;branch=z9hG4bK-1', t('udp', '192.0.2.60', 5060)],
      ['SIP/2.0/TCP [2001:db8::61]:5071;branch=z9hG4bK-1', t('tcp', '2001:db8::61', 5071)],
      ['SIP/2.0/TLS 192.0.2.62;branch=z9hG4bK-1', t('tls', '192.0.2.62', 5061)],
    ];
    for (const [text, expected] of numeric) {
      it(`numeric sent-by: ${text} → ${expected.transport} ${expected.address}:${expected.port}, no DNS`, async () => {
        const server = await dnsServer(ZONE);
        const resolver = resolverFor(server);
        expect(await targetsOf(resolver.resolveResponse(parseVia(text)))).to.deep.equal([expected]);
        expect(server.queries).to.deep.equal([]);
      });
    }

    it('a name with a port → A/AAAA at that port (no NAPTR, no SRV)', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolveResponse(parseVia('SIP/2.0/UDP dual.example.com:5072;branch=z9hG4bK-2')))).to.deep.equal([
        t('udp', '192.0.2.20', 5072),
        t('udp', '2001:db8::20', 5072),
      ]);
      expect(querySet(server.queries)).to.deep.equal(['A dual.example.com', 'AAAA dual.example.com']);
    });

    const named: Array<[string, string, Tuple]> = [
      ['SIP/2.0/UDP resp.example.com;branch=z9hG4bK-3', '_sip._udp.resp.example.com', t('udp', '192.0.2.101', 5080)],
      ['SIP/2.0/TCP resp.example.com;branch=z9hG4bK-3', '_sip._tcp.resp.example.com', t('tcp', '192.0.2.102', 5081)],
      ['SIP/2.0/TLS resp.example.com;branch=z9hG4bK-3', '_sips._tcp.resp.example.com', t('tls', '192.0.2.103', 5082)],
    ];
    for (const [text, srvName, expected] of named) {
      it(`a name without a port: ${text} → SRV ${srvName} only (no NAPTR)`, async () => {
        const server = await dnsServer(ZONE);
        const resolver = resolverFor(server, { families: [4] });
        expect(await targetsOf(resolver.resolveResponse(parseVia(text)))).to.deep.equal([expected]);
        expect(queriesOfType(server, 'NAPTR')).to.deep.equal([]);
        expect(queriesOfType(server, 'SRV')).to.deep.equal([srvName]);
      });
    }

    it('a name without a port and no SRV → A/AAAA at the transport default port', async () => {
      const server = await dnsServer(ZONE);
      const resolver = resolverFor(server);
      expect(await targetsOf(resolver.resolveResponse(parseVia('SIP/2.0/UDP dual.example.com;branch=z9hG4bK-4')))).to.deep.equal([
        t('udp', '192.0.2.20', 5060),
        t('udp', '2001:db8::20', 5060),
      ]);
      expect(await targetsOf(resolver.resolveResponse(parseVia('SIP/2.0/TLS dual.example.com;branch=z9hG4bK-4')))).to.deep.equal([
        t('tls', '192.0.2.20', 5061),
        t('tls', '2001:db8::20', 5061),
      ]);
      expect(queriesOfType(server, 'SRV')).to.deep.equal(['_sip._udp.dual.example.com', '_sips._tcp.dual.example.com']);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('close()', () => {
    it('ends a list waiting on a lookup: next() gives undefined and error is DNS_CLOSED', async () => {
      const server = await dnsServer([ZONE_SOA, a('slow.example.com', '192.0.2.110')], { silent: true });
      const resolver = resolverFor(server, { timeoutMs: 5000 });
      const list = resolver.resolve('sip:slow.example.com:5060');
      const pending = list.next();
      await until(() => server.queries.length > 0, 'the query to reach the server');
      const started = performance.now();
      resolver.close();
      expect(await within(pending, 'next() after close()', 1000)).to.equal(undefined);
      expect(performance.now() - started).to.be.below(1000);
      expect(list.error?.code).to.equal('DNS_CLOSED');
    });

    it('cancels its query timers (ManualClock: none left pending)', async () => {
      const server = await dnsServer([ZONE_SOA, a('slow.example.com', '192.0.2.110')], { silent: true });
      const clock = new ManualClock();
      const resolver = resolverFor(server, { clock, timeoutMs: 5000 });
      const list = resolver.resolve('sip:slow.example.com:5060');
      const pending = list.next();
      await until(() => server.queries.length === 2, 'the A and AAAA queries to reach the server');
      expect(clock.pending).to.equal(2);
      resolver.close();
      expect(await within(pending, 'next() after close()', 1000)).to.equal(undefined);
      expect(clock.pending).to.equal(0);
    });

    it('a pending lookupAddresses() rejects with DNS_CLOSED', async () => {
      const server = await dnsServer([ZONE_SOA, a('slow.example.com', '192.0.2.110')], { silent: true });
      const resolver = resolverFor(server, { timeoutMs: 5000 });
      const pending = resolver.lookupAddresses('slow.example.com');
      pending.catch(() => undefined);
      await until(() => server.queries.length > 0, 'the query to reach the server');
      resolver.close();
      const error = await within(
        pending.then(
          (value) => new Error(`resolved with ${JSON.stringify(value)}`),
          (e: unknown) => e,
        ),
        'lookupAddresses after close()',
        1000,
      );
      expect(error).to.be.instanceOf(DnsError);
      expect((error as DnsError).code).to.equal('DNS_CLOSED');
    });

    it('after close(), a new resolve ends at once without targets', async () => {
      const server = await dnsServer([ZONE_SOA, a('late.example.com', '192.0.2.111')]);
      const resolver = resolverFor(server, { timeoutMs: 5000 });
      resolver.close();
      const list = resolver.resolve('sip:late.example.com:5060');
      expect(await within(targetsOf(list), 'a list after close()', 1000)).to.deep.equal([]);
      expect(list.error?.code).to.equal('DNS_CLOSED');
      expect(server.queries).to.deep.equal([]);
    });
  });
});

function bindUdp(address: string, port: number): Promise<DgramSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind(port, address, () => resolve(socket));
  });
}

async function until(condition: () => boolean, label: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${label}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
}
