// A real authoritative DNS server on loopback for the resolver tests, on dns2's UDP (and optionally
// TCP) server: 127.0.0.1, port 0. The zone is a plain list of records the test can change between
// lookups; every query received is recorded, in order, so a test can assert exactly what went out
// on the wire. Answers follow RFC 1034 §4.3.2 closely enough for a stub resolver:
//   - records of the asked type at the name → NOERROR with them in the answer section;
//   - a CNAME at the name (asked type not CNAME) → the CNAME, then the chain followed inside the
//     zone, ending with the last target's records of the asked type (RFC 1034 §3.6.2); a chain that
//     ends at a name missing from the zone is NXDOMAIN, one that ends at a name without the type
//     NODATA (RFC 2308 §2.1, RFC 6604);
//   - a name that exists with other types only (or as an empty non-terminal, e.g. `_tcp.example.com`
//     when `_sip._tcp.example.com` exists) → NOERROR/NODATA, SOA in the authority section;
//   - a name not in the zone → NXDOMAIN (rcode 3), SOA of the closest enclosing zone in authority;
//   - a name in `servfail` → SERVFAIL (rcode 2); `silent` → recorded, never answered.
// NAPTR (type 35) is not known to dns2: its RDATA is encoded by Parley's own `encodeNaptr` and
// handed to dns2 as raw `data`, which dns2's encoder copies as is for unknown types.
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import dns2 from 'dns2';
import { encodeNaptr, NAPTR_TYPE } from '../../src/dns/naptr-record.js';

export type ZoneRecord =
  | { type: 'A'; name: string; address: string; ttl?: number }
  | { type: 'AAAA'; name: string; address: string; ttl?: number }
  | { type: 'CNAME'; name: string; target: string; ttl?: number }
  | { type: 'SRV'; name: string; priority: number; weight: number; port: number; target: string; ttl?: number }
  | { type: 'NAPTR'; name: string; order: number; preference: number; flags: string; service: string; regexp: string; replacement: string; ttl?: number }
  | { type: 'SOA'; name: string; minimum: number; ttl?: number };

export interface DnsServerOptions {
  records?: ZoneRecord[];
  servfail?: string[];
  silent?: boolean;
  tcp?: boolean;
}

export interface TestDnsServer {
  readonly address: string;
  readonly port: number;
  readonly nameserver: string;
  readonly queries: Array<{ name: string; type: string }>;
  records: ZoneRecord[];
  servfail: string[];
  silent: boolean;
  close(): Promise<void>;
}

const { Packet } = dns2;
type DnsPacket = InstanceType<typeof dns2.Packet>;
type Resource = DnsPacket['answers'][number];

const DEFAULT_TTL = 300;
const CLASS_IN = 1;
const RCODE_NOERROR = 0;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
/** Longest CNAME chain the server follows inside the zone (a loop stops here). */
const MAX_CHAIN = 16;

const TYPE_CODES: Record<ZoneRecord['type'], number> = {
  A: Packet.TYPE.A,
  AAAA: Packet.TYPE.AAAA,
  CNAME: Packet.TYPE.CNAME,
  SRV: Packet.TYPE.SRV,
  NAPTR: NAPTR_TYPE,
  SOA: Packet.TYPE.SOA,
};

const TYPE_NAMES: Record<number, string> = {
  [Packet.TYPE.A]: 'A',
  [Packet.TYPE.AAAA]: 'AAAA',
  [Packet.TYPE.SRV]: 'SRV',
  [NAPTR_TYPE]: 'NAPTR',
  [Packet.TYPE.CNAME]: 'CNAME',
};

/** Names compare case-insensitively, without the trailing dot. */
function canonicalName(name: string): string {
  return name.toLowerCase().replace(/\.+$/, '');
}

/** True when `zone` is `name` or one of its label-wise suffixes ('' is the root: every name). */
function isWithin(name: string, zone: string): boolean {
  return zone === '' || name === zone || name.endsWith(`.${zone}`);
}

export async function startDnsServer(options: DnsServerOptions = {}): Promise<TestDnsServer> {
  const queries: Array<{ name: string; type: string }> = [];
  const state = {
    records: options.records ?? [],
    servfail: options.servfail ?? [],
    silent: options.silent ?? false,
  };

  const handle = (request: DnsPacket, send: (response: DnsPacket | Buffer) => Promise<Buffer>): void => {
    const question = request.questions[0];
    if (question) queries.push({ name: question.name, type: TYPE_NAMES[question.type] ?? String(question.type) });
    if (state.silent) return;
    const response = answer(request, state.records, state.servfail);
    send(response).catch(() => {
      // The client went away (its socket closed before the answer): nothing to do.
    });
  };

  const udp = dns2.createUDPServer({ type: 'udp4' });
  udp.on('request', handle);
  udp.on('requestError', () => {
    // Undecodable datagrams are dropped, as a server would.
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(0, '127.0.0.1', () => {
      udp.off('error', reject);
      resolve();
    });
  });
  const port = udp.address().port;

  let tcp: NetServer | undefined;
  const sockets = new Set<Socket>();
  if (options.tcp) {
    const server = dns2.createTCPServer();
    server.on('request', handle);
    server.on('requestError', () => {
      // A broken frame: dns2 destroys the connection itself.
    });
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    // The same port number as UDP: a resolver retries a truncated answer over TCP at the same
    // nameserver address.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    tcp = server;
    if ((server.address() as AddressInfo).port !== port) throw new Error('dns-server: TCP bound another port');
  }

  let closed: Promise<void> | undefined;
  const server: TestDnsServer = {
    address: '127.0.0.1',
    port,
    nameserver: `127.0.0.1:${port}`,
    queries,
    get records() {
      return state.records;
    },
    set records(value: ZoneRecord[]) {
      state.records = value;
    },
    get servfail() {
      return state.servfail;
    },
    set servfail(value: string[]) {
      state.servfail = value;
    },
    get silent() {
      return state.silent;
    },
    set silent(value: boolean) {
      state.silent = value;
    },
    close() {
      closed ??= Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        tcp === undefined
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              for (const socket of sockets) socket.destroy();
              tcp!.close(() => resolve());
            }),
      ]).then(() => undefined);
      return closed;
    },
  };
  return server;
}

/** Builds the response to `request` from the zone. */
function answer(request: DnsPacket, records: readonly ZoneRecord[], servfail: readonly string[]): DnsPacket {
  const response = Packet.createResponseFromRequest(request);
  response.header.aa = 1;
  response.header.ra = 0;
  const question = request.questions[0];
  if (!question) {
    response.header.rcode = 1; // FORMERR
    return response;
  }
  const qname = canonicalName(question.name);
  const qtype = question.type;
  if (servfail.some((name) => canonicalName(name) === qname)) {
    response.header.rcode = RCODE_SERVFAIL;
    return response;
  }

  let name = qname;
  let owner = question.name; // the answer's owner name: the query's own spelling first
  const seen = new Set<string>();
  for (let links = 0; ; links++) {
    const here = records.filter((r) => canonicalName(r.name) === name);
    const matching = here.filter((r) => TYPE_CODES[r.type] === qtype);
    if (matching.length > 0) {
      for (const record of matching) response.answers.push(toResource(record, owner));
      return response;
    }
    const cname = here.find((r): r is Extract<ZoneRecord, { type: 'CNAME' }> => r.type === 'CNAME');
    if (cname && qtype !== Packet.TYPE.CNAME && links < MAX_CHAIN && !seen.has(name)) {
      seen.add(name);
      response.answers.push(toResource(cname, owner));
      name = canonicalName(cname.target);
      owner = cname.target.replace(/\.+$/, '');
      continue;
    }
    // Nothing of the asked type at `name`: NODATA when the name exists, NXDOMAIN otherwise.
    const exists = here.length > 0 || records.some((r) => canonicalName(r.name).endsWith(`.${name}`));
    response.header.rcode = exists ? RCODE_NOERROR : RCODE_NXDOMAIN;
    const soa = enclosingSoa(name, records);
    if (soa) response.authorities.push(toResource(soa, soa.name.replace(/\.+$/, '')));
    return response;
  }
}

/** The SOA of the closest enclosing zone: the SOA record with the longest name that is `name` or a suffix of it. */
function enclosingSoa(name: string, records: readonly ZoneRecord[]): Extract<ZoneRecord, { type: 'SOA' }> | undefined {
  let best: Extract<ZoneRecord, { type: 'SOA' }> | undefined;
  for (const record of records) {
    if (record.type !== 'SOA') continue;
    const zone = canonicalName(record.name);
    if (!isWithin(name, zone)) continue;
    if (!best || zone.length > canonicalName(best.name).length) best = record;
  }
  return best;
}

function toResource(record: ZoneRecord, owner: string): Resource {
  const base = { name: owner, type: TYPE_CODES[record.type], class: CLASS_IN, ttl: record.ttl ?? DEFAULT_TTL };
  let fields: Record<string, unknown>;
  switch (record.type) {
    case 'A':
    case 'AAAA':
      fields = { address: record.address };
      break;
    case 'CNAME':
      fields = { domain: record.target.replace(/\.+$/, '') };
      break;
    case 'SRV':
      fields = { priority: record.priority, weight: record.weight, port: record.port, target: record.target };
      break;
    case 'NAPTR':
      fields = {
        data: encodeNaptr({
          order: record.order,
          preference: record.preference,
          flags: record.flags,
          service: record.service,
          regexp: record.regexp,
          replacement: record.replacement,
        }),
      };
      break;
    case 'SOA': {
      const zone = canonicalName(record.name);
      const suffix = zone === '' ? '' : `.${zone}`;
      fields = {
        primary: `ns1${suffix}`,
        admin: `hostmaster${suffix}`,
        serial: 2024010101,
        refresh: 3600,
        retry: 600,
        expiration: 604800,
        minimum: record.minimum,
      };
      break;
    }
  }
  return new Packet.Resource({ ...base, ...fields } as Partial<Resource>);
}
