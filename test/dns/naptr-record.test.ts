// NAPTR RDATA (RFC 3403 §4.1), which dns2 does not know, against docs/dns.md:
//   ORDER (16 bits) PREFERENCE (16 bits) FLAGS SERVICES REGEXP (<character-string>s: a length octet
//   and that many octets) REPLACEMENT (a <domain-name>, never compressed; the root is one 0 octet).
// decodeNaptr throws DnsError DNS_BAD_RECORD on truncated or garbled RDATA, and nothing else.
import { expect } from 'chai';
import { DnsError } from '../../src/dns/dns-error.js';
import { NAPTR_TYPE, decodeNaptr, encodeNaptr, type NaptrRecord } from '../../src/dns/naptr-record.js';
import { mulberry32, randInt, type Rng } from '../support/random.js';

/** Bytes written out by hand: numbers as hex octets, strings as their ASCII octets. */
function bytes(...parts: Array<number | string>): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.of(p) : Buffer.from(p, 'ascii'))));
}

/** Runs `decode` and returns the DnsError it throws; fails when it returns or throws anything else. */
function badRecord(rdata: Uint8Array, label: string): DnsError {
  let result: NaptrRecord | undefined;
  try {
    result = decodeNaptr(rdata);
  } catch (error) {
    expect(error, `${label}: throws a DnsError`).to.be.instanceOf(DnsError);
    expect((error as DnsError).code, `${label}: code`).to.equal('DNS_BAD_RECORD');
    return error as DnsError;
  }
  expect.fail(`${label}: decoded ${JSON.stringify(result)} from ${Buffer.from(rdata).toString('hex')} instead of throwing DNS_BAD_RECORD`);
}

const SIP_UDP: NaptrRecord = {
  order: 100,
  preference: 50,
  flags: 's',
  service: 'SIP+D2U',
  regexp: '',
  replacement: '_sip._udp.example.com',
};

// order 100 = 00 64, preference 50 = 00 32, "s", "SIP+D2U", "", _sip._udp.example.com.
const SIP_UDP_WIRE = bytes(
  0x00, 0x64,
  0x00, 0x32,
  0x01, 's',
  0x07, 'SIP+D2U',
  0x00,
  0x04, '_sip', 0x04, '_udp', 0x07, 'example', 0x03, 'com', 0x00,
);

// RFC 3403 §6.2-style terminal rule: a regexp and the root "." as replacement.
const ENUM_RULE: NaptrRecord = {
  order: 100,
  preference: 10,
  flags: 'u',
  service: 'E2U+sip',
  regexp: '!^.*$!sip:info@example.com!',
  replacement: '',
};
const ENUM_RULE_WIRE = bytes(
  0x00, 0x64,
  0x00, 0x0a,
  0x01, 'u',
  0x07, 'E2U+sip',
  0x1b, '!^.*$!sip:info@example.com!', // 27 octets
  0x00, // the root
);

describe('NAPTR records (RFC 3403 §4.1)', () => {
  it('NAPTR_TYPE is 35 (RFC 3403 §4)', () => {
    expect(NAPTR_TYPE).to.equal(35);
  });

  describe('the exact wire form', () => {
    it('encodes a SIP+D2U record octet for octet', () => {
      const encoded = encodeNaptr(SIP_UDP);
      expect(Buffer.isBuffer(encoded)).to.equal(true);
      expect(encoded.toString('hex')).to.equal(SIP_UDP_WIRE.toString('hex'));
    });

    it('decodes the hand-written SIP+D2U record', () => {
      expect(decodeNaptr(SIP_UDP_WIRE)).to.deep.equal(SIP_UDP);
    });

    it('writes the root replacement ("") as a single 0 octet, and a regexp as a character-string', () => {
      expect(encodeNaptr(ENUM_RULE).toString('hex')).to.equal(ENUM_RULE_WIRE.toString('hex'));
      expect(decodeNaptr(ENUM_RULE_WIRE)).to.deep.equal(ENUM_RULE);
    });

    it('writes 16-bit order and preference big-endian, up to 65535', () => {
      const record: NaptrRecord = { order: 0xfffe, preference: 0x0102, flags: '', service: '', regexp: '', replacement: '' };
      expect(encodeNaptr(record).toString('hex')).to.equal('fffe0102' + '00' + '00' + '00' + '00');
      expect(decodeNaptr(Buffer.from('ffff0000000000' + '00', 'hex'))).to.deep.equal({
        order: 65535,
        preference: 0,
        flags: '',
        service: '',
        regexp: '',
        replacement: '',
      });
    });

    it('writes the replacement in full, as uncompressed labels', () => {
      // (A compression pointer would be 2 octets starting 0xc0; the full name is required.)
      const record = { ...SIP_UDP, replacement: 'example.com' };
      const encoded = encodeNaptr(record);
      expect(encoded.subarray(encoded.length - 13).toString('hex')).to.equal(bytes(0x07, 'example', 0x03, 'com', 0x00).toString('hex'));
      expect(encoded.includes(0xc0)).to.equal(false);
    });

    it('encodes a replacement with a trailing dot as the same name', () => {
      expect(encodeNaptr({ ...SIP_UDP, replacement: '_sip._udp.example.com.' }).equals(SIP_UDP_WIRE)).to.equal(true);
    });

    it('reads a record from inside a larger buffer (a Uint8Array view with an offset)', () => {
      const packet = Buffer.concat([Buffer.from('deadbeefcafe', 'hex'), SIP_UDP_WIRE, Buffer.from('0102', 'hex')]);
      const view = new Uint8Array(packet.buffer, packet.byteOffset + 6, SIP_UDP_WIRE.length);
      expect(decodeNaptr(view)).to.deep.equal(SIP_UDP);
    });
  });

  describe('round trips', () => {
    const records: Array<[string, NaptrRecord]> = [
      ['SIP+D2U', SIP_UDP],
      ['SIP+D2T', { order: 10, preference: 0, flags: 'S', service: 'SIP+D2T', regexp: '', replacement: '_sip._tcp.example.net' }],
      ['SIPS+D2T', { order: 0, preference: 65535, flags: 's', service: 'SIPS+D2T', regexp: '', replacement: '_sips._tcp.a.b.c.d.example.org' }],
      ['a terminal regexp rule', ENUM_RULE],
      ['every field empty', { order: 0, preference: 0, flags: '', service: '', regexp: '', replacement: '' }],
      ['255-octet character-strings', { order: 1, preference: 2, flags: 'a'.repeat(255), service: 'b'.repeat(255), regexp: 'c'.repeat(255), replacement: 'x.y' }],
      ['63-octet labels', { order: 1, preference: 1, flags: 's', service: 'SIP+D2W', regexp: '', replacement: `${'l'.repeat(63)}.${'m'.repeat(63)}.example` }],
      ['a UTF-8 regexp', { order: 5, preference: 5, flags: 'u', service: 'E2U+sip', regexp: '!^.*$!sip:jos\u00e9@example.com!', replacement: '' }],
    ];
    for (const [label, record] of records) {
      it(label, () => {
        const encoded = encodeNaptr(record);
        expect(decodeNaptr(encoded)).to.deep.equal(record);
        expect(encodeNaptr(decodeNaptr(encoded)).equals(encoded)).to.equal(true);
      });
    }

    it('a 253-character replacement (255 octets on the wire, the RFC 1035 maximum)', () => {
      // 4 labels of 62 + "a" = 62*4 + 4 dots + 1 = 253 characters; wire 4*63 + 2 + 1 = 255 octets.
      const name = `${Array.from({ length: 4 }, (_, i) => String.fromCharCode(0x61 + i).repeat(62)).join('.')}.a`;
      expect(name.length).to.equal(253);
      const record = { ...SIP_UDP, replacement: name };
      expect(decodeNaptr(encodeNaptr(record))).to.deep.equal(record);
    });

    it('random records round-trip (seeded)', () => {
      const rng = mulberry32(0x3403);
      for (let i = 0; i < 500; i++) {
        const record = randomRecord(rng);
        const encoded = encodeNaptr(record);
        expect(decodeNaptr(encoded), `record ${JSON.stringify(record)}`).to.deep.equal(record);
      }
    });
  });

  describe('truncated or garbled RDATA → DnsError DNS_BAD_RECORD', () => {
    it('empty RDATA', () => {
      badRecord(new Uint8Array(0), 'empty');
    });

    it('every proper prefix of a valid record', () => {
      for (const wire of [SIP_UDP_WIRE, ENUM_RULE_WIRE]) {
        for (let n = 0; n < wire.length; n++) badRecord(wire.subarray(0, n), `the first ${n} of ${wire.length} octets`);
      }
    });

    it('a character-string longer than what is left', () => {
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x05, 'ab'), 'flags of 5 octets with 2 left');
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x01, 's', 0xff, 'SIP+D2U', 0x00, 0x00), 'service of 255 octets with 9 left');
    });

    it('a replacement label running past the end', () => {
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x01, 's', 0x00, 0x00, 0x07, 'exa'), 'label of 7 with 3 left');
    });

    it('a replacement without its terminating root label', () => {
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x01, 's', 0x00, 0x00, 0x03, 'com'), 'no 0 octet');
    });

    it('a compressed replacement (a pointer is not allowed in NAPTR RDATA)', () => {
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x01, 's', 0x00, 0x00, 0xc0, 0x0c), 'pointer to offset 12');
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x01, 's', 0x00, 0x00, 0x03, 'sip', 0xc0, 0x0c), 'label then pointer');
    });

    it('a reserved label type (0x40, 0x80)', () => {
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 'x'.repeat(64), 0x00), '0x40 label');
      badRecord(bytes(0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x80, 0x00), '0x80 label');
    });

    it('a replacement longer than 255 octets', () => {
      // 5 labels of 63: 5*64 + 1 = 321 octets.
      const labels = Array.from({ length: 5 }, () => bytes(0x3f, 'z'.repeat(63)));
      badRecord(Buffer.concat([bytes(0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00), ...labels, Buffer.of(0)]), '321-octet name');
    });

    it('octets after the replacement', () => {
      badRecord(Buffer.concat([SIP_UDP_WIRE, Buffer.of(0)]), 'one extra 0 octet');
      badRecord(Buffer.concat([ENUM_RULE_WIRE, bytes(0x03, 'com', 0x00)]), 'a second name');
    });
  });

  it('encodeNaptr refuses what the wire cannot carry (a 256-octet character-string, a 64-octet label)', () => {
    expect(() => encodeNaptr({ ...SIP_UDP, regexp: 'r'.repeat(256) })).to.throw();
    expect(() => encodeNaptr({ ...SIP_UDP, replacement: `${'l'.repeat(64)}.example.com` })).to.throw();
  });

  it('encodeNaptr refuses a replacement over 255 octets (what decodeNaptr would reject)', () => {
    // 4 labels of 63 + "ab": 4*64 + 3 + 1 = 260 octets; every label is legal, the name is not.
    const name = `${Array.from({ length: 4 }, () => 'q'.repeat(63)).join('.')}.ab`;
    expect(() => encodeNaptr({ ...SIP_UDP, replacement: name })).to.throw();
  });

  describe('fuzz: only a decode or DNS_BAD_RECORD', () => {
    /** Decodes `rdata`; a result must be a well-formed record, an error must be DNS_BAD_RECORD. */
    function decodeOrBad(rdata: Uint8Array, label: string): NaptrRecord | undefined {
      try {
        const record = decodeNaptr(rdata);
        expect(record.order, label).to.be.within(0, 65535);
        expect(record.preference, label).to.be.within(0, 65535);
        for (const field of ['flags', 'service', 'regexp', 'replacement'] as const) expect(record[field], `${label}: ${field}`).to.be.a('string');
        return record;
      } catch (error) {
        if (!(error instanceof DnsError) || error.code !== 'DNS_BAD_RECORD') {
          expect.fail(`${label}: ${Buffer.from(rdata).toString('hex')} threw ${String(error)} (code ${(error as { code?: unknown }).code}), not DNS_BAD_RECORD`);
        }
        return undefined;
      }
    }

    it('random byte strings (seeded)', () => {
      const rng = mulberry32(0xd0e5);
      let decoded = 0;
      for (let i = 0; i < 3000; i++) {
        const data = Buffer.alloc(randInt(rng, 0, 80));
        for (let j = 0; j < data.length; j++) data[j] = randInt(rng, 0, 255);
        if (decodeOrBad(data, `random #${i}`)) decoded++;
      }
      // Random bytes nearly never make a valid record; the point is that nothing else is thrown.
      expect(decoded).to.be.below(3000);
    });

    it('random records with octets flipped, inserted, dropped or cut off (seeded)', () => {
      const rng = mulberry32(0x3263);
      let decoded = 0;
      let rejected = 0;
      for (let i = 0; i < 3000; i++) {
        const wire = Buffer.from(encodeNaptr(randomRecord(rng)));
        let mutant: Buffer;
        switch (randInt(rng, 0, 3)) {
          case 0: {
            mutant = Buffer.from(wire);
            for (let k = randInt(rng, 1, 3); k > 0; k--) mutant[randInt(rng, 0, mutant.length - 1)] = randInt(rng, 0, 255);
            break;
          }
          case 1: {
            const at = randInt(rng, 0, wire.length);
            mutant = Buffer.concat([wire.subarray(0, at), Buffer.of(randInt(rng, 0, 255)), wire.subarray(at)]);
            break;
          }
          case 2: {
            const at = randInt(rng, 0, wire.length - 1);
            mutant = Buffer.concat([wire.subarray(0, at), wire.subarray(at + 1)]);
            break;
          }
          default:
            mutant = wire.subarray(0, randInt(rng, 0, wire.length - 1));
        }
        if (decodeOrBad(mutant, `mutant #${i}`)) decoded++;
        else rejected++;
      }
      expect(decoded + rejected).to.equal(3000);
      expect(rejected, 'mutants rejected').to.be.above(0);
    });
  });
});

function randomRecord(rng: Rng): NaptrRecord {
  const text = (max: number): string => {
    const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+!^$.*\\:@_-';
    let out = '';
    for (let n = randInt(rng, 0, max); n > 0; n--) out += chars[randInt(rng, 0, chars.length - 1)];
    return out;
  };
  const label = (): string => {
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789-_';
    let out = '';
    for (let n = randInt(rng, 1, 20); n > 0; n--) out += chars[randInt(rng, 0, chars.length - 1)];
    return out;
  };
  const labels = randInt(rng, 0, 5);
  return {
    order: randInt(rng, 0, 65535),
    preference: randInt(rng, 0, 65535),
    flags: text(3),
    service: text(20),
    regexp: text(40),
    replacement: Array.from({ length: labels }, label).join('.'),
  };
}
