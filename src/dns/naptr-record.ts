import { DnsError } from './dns-error.js';

/** The NAPTR resource record type (RFC 3403 §4), which dns2 does not know. */
export const NAPTR_TYPE = 35;

/** RFC 3403 §4.1. `replacement` is a domain name without the trailing dot; '' is the root ("."). */
export interface NaptrRecord {
  readonly order: number;
  readonly preference: number;
  readonly flags: string;
  readonly service: string;
  readonly regexp: string;
  readonly replacement: string;
}

/**
 * Decodes NAPTR RDATA (RFC 3403 §4.1): ORDER and PREFERENCE (16 bits each), FLAGS, SERVICES and
 * REGEXP as <character-string>s (a length octet, then that many octets), and REPLACEMENT as a
 * <domain-name> that "MUST NOT be compressed" (RFC 3597 §4 lists NAPTR among the types whose
 * names are never compressed), so the RDATA decodes on its own. Throws DNS_BAD_RECORD for
 * anything else, including trailing bytes.
 */
export function decodeNaptr(rdata: Uint8Array): NaptrRecord {
  const reader = new RdataReader(rdata);
  const order = reader.uint16();
  const preference = reader.uint16();
  const flags = reader.characterString();
  const service = reader.characterString();
  const regexp = reader.characterString();
  const replacement = reader.domainName();
  if (!reader.done) throw bad(`${rdata.length - reader.offset} bytes after the replacement`);
  return { order, preference, flags, service, regexp, replacement };
}

/** Encodes a NAPTR record's RDATA (RFC 3403 §4.1), the replacement uncompressed. */
export function encodeNaptr(record: NaptrRecord): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt16BE(record.order, 0);
  head.writeUInt16BE(record.preference, 2);
  parts.push(head);
  for (const text of [record.flags, record.service, record.regexp]) {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > 255) throw bad(`a character-string is limited to 255 octets, got ${bytes.length}`);
    parts.push(Buffer.of(bytes.length), bytes);
  }
  const name = record.replacement.replace(/\.$/, '');
  if (name !== '') {
    for (const label of name.split('.')) {
      const bytes = Buffer.from(label, 'ascii');
      if (bytes.length === 0 || bytes.length > 63) throw bad(`bad label in replacement ${JSON.stringify(record.replacement)}`);
      parts.push(Buffer.of(bytes.length), bytes);
    }
  }
  parts.push(Buffer.of(0));
  const rdata = Buffer.concat(parts);
  // RFC 1035 §3.1: a domain name is 255 octets at most, length octets and root label included.
  const nameOctets = rdata.length - parts.slice(0, 7).reduce((n, p) => n + p.length, 0);
  if (nameOctets > 255) throw bad(`the replacement takes ${nameOctets} octets, more than 255`);
  return rdata;
}

function bad(why: string): DnsError {
  return new DnsError('DNS_BAD_RECORD', `malformed NAPTR record: ${why}`);
}

class RdataReader {
  offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.offset === this.bytes.length;
  }

  uint16(): number {
    if (this.offset + 2 > this.bytes.length) throw bad('truncated');
    const value = (this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!;
    this.offset += 2;
    return value;
  }

  characterString(): string {
    const length = this.byte();
    if (this.offset + length > this.bytes.length) throw bad('truncated character-string');
    const text = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.offset, length).toString('utf8');
    this.offset += length;
    return text;
  }

  /** RFC 1035 §3.1: labels of 1–63 octets ending with the zero-length root label; 255 octets at most. */
  domainName(): string {
    const labels: string[] = [];
    let total = 1;
    for (;;) {
      const length = this.byte();
      if (length === 0) break;
      if (length > 63) throw bad(length >= 0xc0 ? 'compressed replacement' : `label length ${length}`);
      total += length + 1;
      if (total > 255 || this.offset + length > this.bytes.length) throw bad('truncated or oversized replacement');
      labels.push(Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.offset, length).toString('latin1'));
      this.offset += length;
    }
    return labels.join('.');
  }

  private byte(): number {
    if (this.offset >= this.bytes.length) throw bad('truncated');
    return this.bytes[this.offset++]!;
  }
}
