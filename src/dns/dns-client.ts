import { randomInt } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { channel } from 'node:diagnostics_channel';
import { connect, isIP, type Socket as TcpSocket } from 'node:net';
import dns2 from 'dns2';
import { systemClock, type Clock, type TimerHandle } from '../util/clock.js';
import { DnsError } from './dns-error.js';
import { decodeNaptr, NAPTR_TYPE } from './naptr-record.js';
import type { Nameserver } from './system-files.js';

const { Packet } = dns2;
const queryChannel = channel('parley:dns:query');

/** The record types RFC 3263 needs. */
export type RecordType = 'A' | 'AAAA' | 'CNAME' | 'SRV' | 'NAPTR' | 'SOA';

const TYPE_CODES: Record<RecordType, number> = { A: 1, AAAA: 28, CNAME: 5, SRV: 33, NAPTR: NAPTR_TYPE, SOA: 6 };

interface RecordBase {
  readonly name: string;
  readonly ttl: number;
}
export type DnsRecord =
  | (RecordBase & { readonly type: 'A' | 'AAAA'; readonly address: string })
  | (RecordBase & { readonly type: 'CNAME'; readonly target: string })
  | (RecordBase & { readonly type: 'SRV'; readonly priority: number; readonly weight: number; readonly port: number; readonly target: string })
  | (RecordBase & { readonly type: 'NAPTR'; readonly order: number; readonly preference: number; readonly flags: string; readonly service: string; readonly regexp: string; readonly replacement: string })
  | (RecordBase & { readonly type: 'SOA'; readonly minimum: number });

/** RFC 1035 §4.1.1 response codes the resolver tells apart. */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** An answer from a nameserver: NOERROR (with or without records) or NXDOMAIN. */
export interface DnsReply {
  readonly rcode: number;
  readonly answers: DnsRecord[];
  readonly authorities: DnsRecord[];
}

export interface DnsClientOptions {
  nameservers: readonly Nameserver[];
  /** How long to wait for one nameserver's answer. Default 2000 ms. */
  timeoutMs?: number;
  /** Rounds over the nameserver list. Default 2. */
  attempts?: number;
  clock?: Clock;
}

/** The largest TCP answer we accept (RFC 1035 §4.2.2 frames with a 16-bit length). */
const MAX_TCP_ANSWER = 65535;

/**
 * Asks nameservers one query at a time (reSIProcate's DnsStub transport): UDP from a fresh socket
 * with a random source port and a random 16-bit id (RFC 5452 §9.2), answers accepted only from the
 * server asked, with that id and that question; a truncated answer is asked again over TCP
 * (RFC 1035 §4.2.1). A timeout, SERVFAIL or REFUSED moves on to the next nameserver, for
 * `attempts` rounds over the list.
 */
export class DnsClient {
  /** Queries put on the wire (UDP and TCP), for tests and diagnostics. */
  sent = 0;
  private readonly nameservers: readonly Nameserver[];
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly clock: Clock;
  private readonly pending = new Set<() => void>();
  private closed = false;

  constructor(options: DnsClientOptions) {
    this.nameservers = options.nameservers;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.attempts = Math.max(1, options.attempts ?? 2);
    this.clock = options.clock ?? systemClock;
  }

  async query(name: string, type: RecordType): Promise<DnsReply> {
    if (this.nameservers.length === 0) throw new DnsError('DNS_UNREACHABLE', `no nameserver to ask for ${type} ${name}`);
    let lastError: DnsError | undefined;
    for (let round = 0; round < this.attempts; round++) {
      for (const server of this.nameservers) {
        if (this.closed) throw new DnsError('DNS_CLOSED', 'the resolver is closed');
        try {
          const reply = await this.ask(server, name, type, 'udp');
          if (reply.rcode === RCODE.NOERROR || reply.rcode === RCODE.NXDOMAIN) return reply;
          lastError = worse(lastError, rcodeError(reply.rcode, name, type, server));
        } catch (error) {
          if (error instanceof DnsError && error.code === 'DNS_CLOSED') throw error;
          lastError = worse(lastError, error instanceof DnsError ? error : new DnsError('DNS_TIMEOUT', `${formatServer(server)}: ${(error as Error).message}`, { cause: error }));
        }
      }
    }
    throw lastError!;
  }

  /** Ends every query in flight with DNS_CLOSED. */
  close(): void {
    this.closed = true;
    for (const cancel of [...this.pending]) cancel();
  }

  private ask(server: Nameserver, name: string, type: RecordType, over: 'udp' | 'tcp'): Promise<DnsReply> {
    const id = randomInt(0x10000);
    const bytes = encodeQuery(id, name, TYPE_CODES[type]);
    this.sent++;
    if (queryChannel.hasSubscribers) queryChannel.publish({ name, type, server: formatServer(server), over });
    return new Promise<DnsReply>((resolve, reject) => {
      let udp: UdpSocket | undefined;
      let tcp: TcpSocket | undefined;
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        this.pending.delete(cancel);
        timer.cancel();
        udp?.close();
        tcp?.destroy();
      };
      const cancel = (): void => {
        finish();
        reject(new DnsError('DNS_CLOSED', 'the resolver is closed'));
      };
      this.pending.add(cancel);
      const timer: TimerHandle = this.clock.setTimer(this.timeoutMs, () => {
        finish();
        reject(new DnsError('DNS_TIMEOUT', `${formatServer(server)} did not answer ${type} ${name} within ${this.timeoutMs} ms`));
      });
      /** Takes a datagram or TCP message; true when it was the answer (finished either way then). */
      const take = (message: Buffer): boolean => {
        const reply = decodeReply(message, id, name, TYPE_CODES[type]);
        if (reply === undefined) return false;
        if (reply === 'truncated') {
          finish();
          this.ask(server, name, type, 'tcp').then(resolve, reject);
          return true;
        }
        finish();
        if (reply instanceof DnsError) reject(reply);
        else resolve(reply);
        return true;
      };
      const fail = (error: Error): void => {
        finish();
        const errno = (error as NodeJS.ErrnoException).code;
        if (errno === 'ECONNREFUSED' || errno === 'EHOSTUNREACH' || errno === 'ENETUNREACH') {
          reject(new DnsError('DNS_UNREACHABLE', `${formatServer(server)} cannot be reached (${errno}): is a nameserver listening there?`, { cause: error }));
        } else reject(new DnsError('DNS_TIMEOUT', `${formatServer(server)}: ${error.message}`, { cause: error }));
      };
      if (over === 'udp') {
        udp = createSocket(isIP(server.address.replace(/%.*$/, '')) === 6 ? 'udp6' : 'udp4');
        udp.on('error', fail);
        udp.on('message', (message, from) => {
          // RFC 5452 §9.1: only the server we asked, from the port we sent to.
          if (from.port !== server.port || stripZone(from.address) !== stripZone(server.address)) return;
          take(message);
        });
        // Connected, so an ICMP port unreachable ends the wait at once (ECONNREFUSED) instead of
        // after the timeout: a wrong --dns port is then a quick, clear failure.
        udp.connect(server.port, server.address, () => udp?.send(bytes, (error) => error && fail(error)));
      } else {
        tcp = connect({ host: server.address, port: server.port });
        tcp.on('error', fail);
        let buffered = Buffer.alloc(0);
        tcp.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (buffered.length < 2) return;
          const length = buffered.readUInt16BE(0);
          if (buffered.length < 2 + length) return;
          if (!take(buffered.subarray(2, 2 + length))) fail(new Error('an answer over TCP that does not match the query'));
        });
        tcp.on('end', () => fail(new Error('the TCP connection closed before the answer')));
        const framed = Buffer.alloc(2 + bytes.length);
        framed.writeUInt16BE(bytes.length, 0);
        bytes.copy(framed, 2);
        tcp.end(framed);
      }
    });
  }
}

/**
 * A standard query (RFC 1035 §4.1): header with RD set and one question, class IN. Written here
 * rather than through dns2's bit-level writer, which cost more than the rest of a lookup.
 */
export function encodeQuery(id: number, name: string, type: number): Buffer {
  const labels = lower(name) === '' ? [] : lower(name).split('.');
  let length = 12 + 1 + 4;
  for (const label of labels) {
    const bytes = Buffer.byteLength(label, 'latin1');
    if (bytes === 0 || bytes > 63) throw new DnsError('DNS_BAD_NAME', `not a domain name: ${JSON.stringify(name)}`);
    length += 1 + bytes;
  }
  if (length - 16 > 255) throw new DnsError('DNS_BAD_NAME', `a domain name longer than 255 octets: ${name}`);
  const out = Buffer.alloc(length);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x0100, 2); // QR=0, OPCODE=QUERY, RD=1
  out.writeUInt16BE(1, 4); // QDCOUNT
  let offset = 12;
  for (const label of labels) {
    out[offset] = out.write(label, offset + 1, 'latin1');
    offset += 1 + out[offset]!;
  }
  out[offset++] = 0;
  out.writeUInt16BE(type, offset);
  out.writeUInt16BE(1, offset + 2); // QCLASS IN
  return out;
}

/**
 * Decodes an answer to our query: undefined when it is not one (wrong id, not a response, another
 * question — ignored, RFC 5452 §9.1), 'truncated' for TC=1, a DnsError when it cannot be read.
 */
function decodeReply(message: Buffer, id: number, name: string, type: number): DnsReply | DnsError | 'truncated' | undefined {
  if (message.length < 12 || message.length > MAX_TCP_ANSWER) return undefined;
  let packet: InstanceType<typeof Packet>;
  try {
    packet = Packet.parse(message);
  } catch {
    return undefined;
  }
  const question = packet.questions[0];
  if (packet.header.id !== id || packet.header.qr !== 1) return undefined;
  if (!question || question.type !== type || !sameName(question.name, name)) return undefined;
  if (packet.header.tc) return 'truncated';
  const rcode = packet.header.rcode;
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) return { rcode, answers: [], authorities: [] };
  // dns2 skips a record it cannot decode; a section shorter than its count means a broken answer.
  if (packet.answers.length !== packet.header.ancount) {
    return new DnsError('DNS_BAD_RESPONSE', `an answer for ${name} whose records could not be decoded`);
  }
  return { rcode, answers: records(packet.answers), authorities: records(packet.authorities) };
}

/** dns2's resources as typed records; records of other types or with bad data are left out. */
function records(resources: ReadonlyArray<InstanceType<typeof Packet>['answers'][number]>): DnsRecord[] {
  const out: DnsRecord[] = [];
  for (const raw of resources) {
    const r = raw as unknown as Record<string, unknown> & { name: string; type: number; ttl: number; class: number };
    if (r.class !== 1) continue;
    const base = { name: lower(r.name), ttl: r.ttl };
    switch (r.type) {
      case 1:
      case 28: {
        const address = String(r.address);
        if (isIP(address) === (r.type === 1 ? 4 : 6)) out.push({ ...base, type: r.type === 1 ? 'A' : 'AAAA', address });
        break;
      }
      case 5:
        out.push({ ...base, type: 'CNAME', target: lower(String(r.domain)) });
        break;
      case 33:
        out.push({ ...base, type: 'SRV', priority: Number(r.priority), weight: Number(r.weight), port: Number(r.port), target: lower(String(r.target)) });
        break;
      case 6:
        out.push({ ...base, type: 'SOA', minimum: Number(r.minimum) });
        break;
      case NAPTR_TYPE:
        try {
          const naptr = decodeNaptr(r.data as Buffer);
          out.push({ ...base, type: 'NAPTR', ...naptr, replacement: lower(naptr.replacement) });
        } catch {
          // A garbled NAPTR is skipped; its siblings still count.
        }
        break;
    }
  }
  return out;
}

function rcodeError(rcode: number, name: string, type: RecordType, server: Nameserver): DnsError {
  const where = `${formatServer(server)} for ${type} ${name}`;
  if (rcode === RCODE.REFUSED) return new DnsError('DNS_REFUSED', `REFUSED by ${where}`);
  if (rcode === RCODE.SERVFAIL) return new DnsError('DNS_SERVFAIL', `SERVFAIL from ${where}`);
  return new DnsError('DNS_BAD_RESPONSE', `rcode ${rcode} from ${where}`);
}

/** Which failure to report when every nameserver failed: an answer beats silence or refusal. */
function worse(previous: DnsError | undefined, next: DnsError): DnsError {
  if (!previous) return next;
  return isSilence(previous) && !isSilence(next) ? next : previous;
}

/** No nameserver said anything: it timed out or could not be reached. */
export function isSilence(error: DnsError | undefined): boolean {
  return error?.code === 'DNS_TIMEOUT' || error?.code === 'DNS_UNREACHABLE';
}

function formatServer(server: Nameserver): string {
  return isIP(server.address) === 6 ? `[${server.address}]:${server.port}` : `${server.address}:${server.port}`;
}

function sameName(a: string, b: string): boolean {
  return lower(a) === lower(b);
}

/** Domain names compare case-insensitively (RFC 4343) and without the root dot. */
export function lower(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

function stripZone(address: string): string {
  const i = address.indexOf('%');
  return i < 0 ? address : address.slice(0, i);
}
