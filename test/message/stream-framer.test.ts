// StreamFramer: turning a byte stream (TCP/TLS/WebSocket-less stream transports) into SIP messages.
//
// What is tested here, against docs/message-layer.md:
//  - every well-formed message survives being split at any byte position, or fed a byte at a time,
//    and comes back byte-for-byte through toBuffer();
//  - several messages back to back, in one buffer or in random (seeded, reproducible) chunk sizes;
//  - RFC 5626 §3.5.1 keep-alives: CRLFCRLF → ping, lone CRLF → pong, the split-ping rule;
//  - partial vs malformed input, end(), and the closed-after-error rule;
//  - the ParseLimits (eagerly enforced) and the Content-Length rules for streams.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { StreamFramer, SipParseError, parseMessage } from '../../src/index.js';
import { mulberry32, randInt } from '../support/random.js';
import { CRLF, sip } from '../support/sip-bytes.js';

type FramedItem = ReturnType<StreamFramer['push']>[number];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------


const b = (s: string): Buffer => Buffer.from(s, 'utf8');


/** A short JSON-escaped rendering of bytes for assertion messages. */
function show(bytes: Uint8Array, max = 120): string {
  const s = Buffer.from(bytes).toString('latin1');
  return JSON.stringify(s.length > max ? s.slice(0, max) + '…' : s);
}

function describeItem(item: FramedItem): string {
  switch (item.type) {
    case 'message': {
      const bytes = Buffer.from(item.message.toBuffer());
      return `message(${show(bytes.subarray(0, Math.max(0, bytes.indexOf('\r\n'))), 60)})`;
    }
    case 'error': {
      const e = item.error as unknown;
      return e instanceof SipParseError ? `error(${e.code}: ${e.message})` : `error(NOT A SipParseError: ${String(e)})`;
    }
    default:
      return item.type;
  }
}
const describeItems = (items: FramedItem[]): string => `[${items.map(describeItem).join(', ')}]`;

function pushAll(framer: StreamFramer, chunks: Uint8Array[]): FramedItem[] {
  const out: FramedItem[] = [];
  for (const c of chunks) out.push(...framer.push(c));
  return out;
}

/** Asserts that `items` are exactly messages whose bytes are `expected`, in order. */
function expectMessages(items: FramedItem[], expected: Buffer[], ctx: string): void {
  expect(items.map((i) => i.type), `${ctx}: items ${describeItems(items)}`).to.deep.equal(expected.map(() => 'message'));
  items.forEach((item, k) => {
    if (item.type !== 'message') return;
    const got = Buffer.from(item.message.toBuffer());
    const want = expected[k]!;
    if (!got.equals(want)) {
      expect.fail(`${ctx}: message #${k} differs\n  got:  ${show(got, 400)}\n  want: ${show(want, 400)}`);
    }
  });
}

/** Asserts that `items` is exactly one error item carrying a SipParseError (with one of `codes`, if given). */
function expectError(items: FramedItem[], codes: string | string[] | undefined, ctx: string): SipParseError {
  expect(items.map((i) => i.type), `${ctx}: items ${describeItems(items)}`).to.deep.equal(['error']);
  const item = items[0]!;
  if (item.type !== 'error') throw new Error('unreachable');
  const err = item.error as unknown;
  expect(err, `${ctx}: the error item must carry a SipParseError`).to.be.instanceOf(SipParseError);
  const e = err as SipParseError;
  expect(e.code, `${ctx}: code`).to.be.a('string');
  expect(e.offset, `${ctx}: offset`).to.be.a('number');
  if (codes !== undefined) {
    const want = Array.isArray(codes) ? codes : [codes];
    expect(want, `${ctx}: code ${e.code} (${e.message})`).to.include(e.code);
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// Corpus of well-formed stream messages
// ---------------------------------------------------------------------------------------------

const SDP = [
  'v=0',
  'o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com',
  's=Session SDP',
  'c=IN IP4 192.0.2.101',
  't=0 0',
  'm=audio 49172 RTP/AVP 0 8 97 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:97 iLBC/8000',
  'a=fmtp:97 mode=30',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=sendrecv',
  '',
].join(CRLF);

const UTF8_BODY = 'Grüße aus Köln! 你好，世界 🎉📞 — ça va? Ωμέγα ✓';

const CORPUS: [string, Buffer][] = [
  [
    'INVITE with SDP body',
    sip(
      [
        'INVITE sip:bob@biloxi.example.com SIP/2.0',
        'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9',
        'Max-Forwards: 70',
        'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
        'To: Bob <sip:bob@biloxi.example.com>',
        'Call-ID: 3848276298220188511@atlanta.example.com',
        'CSeq: 1 INVITE',
        'Contact: <sip:alice@client.atlanta.example.com;transport=tcp>',
        'Content-Type: application/sdp',
        'Content-Length: {CL}',
      ],
      SDP,
    ),
  ],
  [
    'MESSAGE with a UTF-8 body',
    sip(
      [
        'MESSAGE sip:user2@domain.com SIP/2.0',
        'Via: SIP/2.0/TCP user1pc.domain.com;branch=z9hG4bK776sgdkse',
        'Max-Forwards: 70',
        'From: "Zoë Ångström" <sip:user1@domain.com>;tag=49583',
        'To: sip:user2@domain.com',
        'Call-ID: asd88asd77a@1.2.3.4',
        'CSeq: 1 MESSAGE',
        'Content-Type: text/plain;charset=UTF-8',
        'Content-Length: {CL}',
      ],
      UTF8_BODY,
    ),
  ],
  [
    '200 OK with Content-Length: 0',
    sip([
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101',
      'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
      'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
      'Call-ID: 3848276298220188511@atlanta.example.com',
      'CSeq: 1 INVITE',
      'Contact: <sip:bob@client.biloxi.example.com;transport=tcp>',
      'Content-Length: 0',
    ]),
  ],
  [
    'SUBSCRIBE with compact header forms',
    sip(
      [
        'SUBSCRIBE sip:presence@example.org SIP/2.0',
        'v: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bKnashds8',
        'v: SIP/2.0/TCP 192.0.2.5;branch=z9hG4bKnashds9',
        'f: <sip:watcher@example.org>;tag=1928301774',
        't: <sip:presence@example.org>',
        'i: a84b4c76e66710@pc33.example.org',
        'CSeq: 7 SUBSCRIBE',
        'm: <sip:watcher@192.0.2.4;transport=tcp>',
        'o: presence',
        'k: eventlist',
        'Max-Forwards: 70',
        'c: text/plain',
        'l:{CL}',
      ],
      'status please\r\n',
    ),
  ],
  [
    'OPTIONS with folded header lines',
    sip([
      'OPTIONS sip:carol@chicago.example.com SIP/2.0',
      'Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877',
      'Max-Forwards: 70',
      'To: <sip:carol@chicago.example.com>',
      'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
      'Call-ID: a84b4c76e66710',
      'CSeq: 63104 OPTIONS',
      "Subject: I know you're there,",
      '         pick up the phone',
      '\tand talk to me!',
      'Accept: application/sdp,',
      ' text/plain',
      'Content-Length: 0',
    ]),
  ],
  [
    'NOTIFY whose body holds blank lines, with a folded Content-Length',
    sip(
      [
        'NOTIFY sip:watcher@192.0.2.4;transport=tcp SIP/2.0',
        'Via: SIP/2.0/TCP server.example.org;branch=z9hG4bKnashds10',
        'Max-Forwards: 70',
        'From: <sip:presence@example.org>;tag=ffd2',
        'To: <sip:watcher@example.org>;tag=1928301774',
        'Call-ID: a84b4c76e66710@pc33.example.org',
        'CSeq: 8 NOTIFY',
        'Event: presence',
        'Subscription-State: active;expires=599',
        'Content-Type: text/plain',
        'Content-Length :',
        '  {CL}',
      ],
      '\r\n\r\nstate=active\r\n\r\n\r\nSIP/2.0 200 OK\r\n\r\n',
    ),
  ],
];

const bodyOffset = (m: Buffer): number => m.indexOf('\r\n\r\n') + 4;

// ---------------------------------------------------------------------------------------------

describe('StreamFramer', () => {
  describe('corpus sanity (parseMessage agrees with the corpus)', () => {
    for (const [name, bytes] of CORPUS) {
      it(`${name}: parses as one datagram, toBuffer() round-trips, Content-Length counts bytes`, () => {
        const msg = parseMessage(bytes);
        expect(Buffer.from(msg.toBuffer()).equals(bytes)).to.equal(true);
        const body = bytes.subarray(bodyOffset(bytes));
        expect(msg.contentLength).to.equal(body.length);
        expect(Buffer.from(msg.body).equals(body)).to.equal(true);
      });
    }

    it('the UTF-8 body has more bytes than characters, and comes back intact', () => {
      const msg = parseMessage(CORPUS[1]![1]);
      expect(Buffer.byteLength(UTF8_BODY)).to.be.greaterThan(UTF8_BODY.length);
      expect(msg.contentLength).to.equal(Buffer.byteLength(UTF8_BODY));
      expect(Buffer.from(msg.body).toString('utf8')).to.equal(UTF8_BODY);
    });
  });

  describe('a single message, arbitrarily chunked', () => {
    for (const [name, bytes] of CORPUS) {
      it(`${name}: split in two at every byte position`, () => {
        for (let i = 1; i < bytes.length; i++) {
          const ctx = `split at ${i}/${bytes.length}`;
          const f = new StreamFramer();
          const first = f.push(bytes.subarray(0, i));
          expect(first, `${ctx}: first chunk gave ${describeItems(first)}`).to.deep.equal([]);
          expect(f.partial, `${ctx}: partial after the first chunk`).to.equal(true);
          const second = f.push(bytes.subarray(i));
          expectMessages(second, [bytes], ctx);
          expect(f.partial, `${ctx}: partial afterwards`).to.equal(false);
          expect(f.bufferedBytes, `${ctx}: bufferedBytes afterwards`).to.equal(0);
          expect(f.end(), `${ctx}: end() on a clean stream`).to.deep.equal([]);
        }
      });

      it(`${name}: one byte at a time`, () => {
        const f = new StreamFramer();
        for (let i = 0; i < bytes.length - 1; i++) {
          const items = f.push(bytes.subarray(i, i + 1));
          expect(items, `byte ${i}: ${describeItems(items)}`).to.deep.equal([]);
          expect(f.partial, `partial after byte ${i}`).to.equal(true);
        }
        expectMessages(f.push(bytes.subarray(bytes.length - 1)), [bytes], 'last byte');
        expect(f.partial).to.equal(false);
        expect(f.bufferedBytes).to.equal(0);
      });
    }

    it('accepts plain Uint8Array chunks (not only Buffers)', () => {
      for (const [name, bytes] of CORPUS) {
        const f = new StreamFramer();
        const mid = bodyOffset(bytes) - 3;
        const items = pushAll(f, [new Uint8Array(bytes.subarray(0, mid)), new Uint8Array(bytes.subarray(mid))]);
        expectMessages(items, [bytes], name);
      }
    });

    it('empty chunks are harmless', () => {
      const bytes = CORPUS[0]![1];
      const f = new StreamFramer();
      const items = pushAll(f, [new Uint8Array(0), bytes.subarray(0, 10), Buffer.alloc(0), bytes.subarray(10), Buffer.alloc(0)]);
      expectMessages(items, [bytes], 'with empty chunks');
      expect(f.partial).to.equal(false);
    });
  });

  describe('the RFC 4475 / 5118 fixtures that are frameable', () => {
    // A fixture is frameable when its head ends with CRLFCRLF, every header line is `token:`, and
    // it has exactly one Content-Length (or `l`) header whose value is digits equal to the body's
    // length. Decided here from the bytes, independently of the implementation.
    const frameable: [string, Buffer][] = [];
    for (const dir of ['rfc4475', 'rfc5118']) {
      const abs = fileURLToPath(new URL(`../fixtures/${dir}/`, import.meta.url));
      for (const f of readdirSync(abs).filter((n) => n.endsWith('.sip')).sort()) {
        const bytes = readFileSync(join(abs, f));
        const headEnd = bytes.indexOf('\r\n\r\n');
        if (headEnd < 0) continue;
        const unfolded = bytes.subarray(0, headEnd).toString('latin1').replace(/\r\n[ \t]+/g, ' ').split('\r\n').slice(1);
        const lengths = unfolded.filter((l) => /^(content-length|l)[ \t]*:/i.test(l)).map((l) => l.slice(l.indexOf(':') + 1).trim());
        if (!unfolded.every((l) => /^[!%'*+\-.0-9A-Z^_`a-z~]+[ \t]*:/.test(l))) continue; // every header line is `token:`
        if (lengths.length === 1 && /^\d+$/.test(lengths[0]!) && Number(lengths[0]) === bytes.length - headEnd - 4) {
          frameable.push([`${dir}/${f}`, bytes]);
        }
      }
    }

    it('there are at least 45 of them', () => {
      expect(frameable.length).to.be.at.least(45);
    });

    it('each frames to exactly one message with its bytes, split in two at every position', () => {
      for (const [name, bytes] of frameable) {
        expectMessages(new StreamFramer().push(bytes), [bytes], `${name} in one chunk`);
        for (let i = 1; i < bytes.length; i++) {
          const f = new StreamFramer();
          expectMessages(pushAll(f, [bytes.subarray(0, i), bytes.subarray(i)]), [bytes], `${name} split at ${i}`);
          expect(f.partial, `${name} split at ${i}`).to.equal(false);
        }
      }
    });

    it('all of them back to back, one byte at a time', () => {
      const f = new StreamFramer();
      const stream = Buffer.concat(frameable.map(([, m]) => m));
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
      expectMessages(pushAll(f, chunks), frameable.map(([, m]) => m), 'fixtures back to back');
      expect(f.partial).to.equal(false);
    });
  });

  describe('several messages back to back', () => {
    // Each corpus message three times, in a fixed shuffled order.
    const rng0 = mulberry32(0xc0ffee);
    const sequence: Buffer[] = [];
    for (let r = 0; r < 3; r++) for (const [, m] of CORPUS) sequence.push(m);
    for (let i = sequence.length - 1; i > 0; i--) {
      const j = Math.floor(rng0() * (i + 1));
      [sequence[i], sequence[j]] = [sequence[j]!, sequence[i]!];
    }
    const stream = Buffer.concat(sequence);

    it('in one buffer', () => {
      const f = new StreamFramer();
      expectMessages(f.push(stream), sequence, 'one buffer');
      expect(f.partial).to.equal(false);
      expect(f.bufferedBytes).to.equal(0);
      expect(f.end()).to.deep.equal([]);
    });

    it('each message immediately followed by the first byte of the next', () => {
      const f = new StreamFramer();
      let off = 0;
      const items: FramedItem[] = [];
      for (const m of sequence) {
        const end = Math.min(stream.length, off + m.length + 1);
        items.push(...f.push(stream.subarray(off, end)));
        off = end;
      }
      expectMessages(items, sequence, 'overlapping chunks');
      expect(f.partial).to.equal(false);
    });

    it('in random chunk sizes (200 seeded runs)', () => {
      for (let seed = 1; seed <= 200; seed++) {
        const rng = mulberry32(seed);
        // Vary the chunk-size regime per seed: tiny, small, medium, large.
        const maxChunk = [3, 17, 200, 2000][seed % 4]!;
        const f = new StreamFramer();
        const items: FramedItem[] = [];
        const cuts: number[] = [];
        for (let off = 0; off < stream.length; ) {
          const n = Math.min(stream.length - off, randInt(rng, 1, maxChunk));
          items.push(...f.push(stream.subarray(off, off + n)));
          off += n;
          cuts.push(off);
        }
        expectMessages(items, sequence, `seed ${seed} (maxChunk ${maxChunk}, first cuts ${cuts.slice(0, 8).join(',')})`);
        expect(f.partial, `seed ${seed}`).to.equal(false);
        expect(f.bufferedBytes, `seed ${seed}`).to.equal(0);
      }
    });
  });

  describe('keep-alives (RFC 5626 §3.5.1)', () => {
    const A = CORPUS[0]![1];
    const B = CORPUS[2]![1];

    it('CRLFCRLF between messages is exactly one ping', () => {
      const f = new StreamFramer();
      const items = f.push(Buffer.concat([A, b('\r\n\r\n'), B]));
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['message', 'ping', 'message']);
      expectMessages([items[0]!, items[2]!], [A, B], 'around the ping');
      expect(f.partial).to.equal(false);
    });

    it('a lone CRLF between messages is a pong', () => {
      const f = new StreamFramer();
      const items = f.push(Buffer.concat([A, b('\r\n'), B]));
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['message', 'pong', 'message']);
      expectMessages([items[0]!, items[2]!], [A, B], 'around the pong');
    });

    it('a lone CRLF on its own is a pong, and leaves nothing partial', () => {
      const f = new StreamFramer();
      const items = f.push(b('\r\n'));
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['pong']);
      expect(f.partial).to.equal(false);
    });

    it('CRLFCRLF on its own is a ping, and leaves nothing buffered', () => {
      const f = new StreamFramer();
      const items = f.push(b('\r\n\r\n'));
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['ping']);
      expect(f.partial).to.equal(false);
      expect(f.bufferedBytes).to.equal(0);
      expect(f.end()).to.deep.equal([]);
    });

    it('CRLFCRLF split across two pushes is reported as pong then ping', () => {
      const f = new StreamFramer();
      const first = f.push(b('\r\n'));
      expect(first.map((i) => i.type), describeItems(first)).to.deep.equal(['pong']);
      const second = f.push(b('\r\n'));
      expect(second.map((i) => i.type), describeItems(second)).to.deep.equal(['ping']);
      expect(f.partial).to.equal(false);
    });

    it('the split ping between two messages: [message, pong] then [ping, message]', () => {
      const f = new StreamFramer();
      const first = f.push(Buffer.concat([A, b('\r\n')]));
      expect(first.map((i) => i.type), describeItems(first)).to.deep.equal(['message', 'pong']);
      const second = f.push(Buffer.concat([b('\r\n'), B]));
      expect(second.map((i) => i.type), describeItems(second)).to.deep.equal(['ping', 'message']);
      expectMessages([first[0]!, second[1]!], [A, B], 'split ping');
    });

    it('a ping before the first message', () => {
      const f = new StreamFramer();
      const items = f.push(Buffer.concat([b('\r\n\r\n'), A]));
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['ping', 'message']);
      expectMessages([items[1]!], [A], 'after the ping');
    });

    it('three pings in a row are three pings', () => {
      const f = new StreamFramer();
      const items = f.push(Buffer.concat([A, b('\r\n\r\n\r\n\r\n\r\n\r\n'), B]));
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['message', 'ping', 'ping', 'ping', 'message']);
    });

    it('CRLFs before a message never corrupt it, however the bytes are chunked', () => {
      for (const [name, m] of CORPUS) {
        for (let n = 1; n <= 5; n++) {
          const input = Buffer.concat([b('\r\n'.repeat(n)), m]);
          const check = (items: FramedItem[], ctx: string): void => {
            const messages = items.filter((i) => i.type === 'message');
            const others = items.filter((i) => i.type !== 'message');
            for (const o of others) expect(['ping', 'pong'], `${ctx}: ${describeItems(items)}`).to.include(o.type);
            expectMessages(messages, [m], ctx);
            expect(items[items.length - 1]!.type, `${ctx}: the message comes last`).to.equal('message');
          };
          for (let i = 1; i < input.length; i++) {
            const f = new StreamFramer();
            check(pushAll(f, [input.subarray(0, i), input.subarray(i)]), `${name}, ${n} CRLF, split at ${i}`);
            expect(f.partial).to.equal(false);
          }
          const f = new StreamFramer();
          const bytewise: Uint8Array[] = [];
          for (let i = 0; i < input.length; i++) bytewise.push(input.subarray(i, i + 1));
          check(pushAll(f, bytewise), `${name}, ${n} CRLF, byte at a time`);
        }
      }
    });

    it('a message after a pong and a ping in separate pushes is intact', () => {
      const f = new StreamFramer();
      const items = pushAll(f, [b('\r\n'), b('\r\n'), b('\r\n\r\n'), A]);
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['pong', 'ping', 'ping', 'message']);
      expectMessages([items[3]!], [A], 'after keep-alives');
    });
  });

  describe('partial versus malformed', () => {
    for (const [name, bytes] of CORPUS) {
      it(`${name}: cut anywhere in the head is partial (no item); end() reports one error`, () => {
        const headEnd = bodyOffset(bytes);
        for (let cut = 1; cut < headEnd; cut++) {
          const ctx = `cut at ${cut}/${headEnd}: ${show(bytes.subarray(Math.max(0, cut - 20), cut))}`;
          const f = new StreamFramer();
          const items = f.push(bytes.subarray(0, cut));
          expect(items, `${ctx}: ${describeItems(items)}`).to.deep.equal([]);
          expect(f.partial, ctx).to.equal(true);
          expect(f.bufferedBytes, ctx).to.equal(cut);
          expectError(f.end(), undefined, `${ctx}: end()`);
        }
      });
    }

    it('a message cut in its body is partial; end() reports one error', () => {
      for (const [name, bytes] of CORPUS) {
        const headEnd = bodyOffset(bytes);
        for (let cut = headEnd; cut < bytes.length; cut++) {
          const ctx = `${name}: cut at ${cut}/${bytes.length}`;
          const f = new StreamFramer();
          const items = f.push(bytes.subarray(0, cut));
          expect(items, `${ctx}: ${describeItems(items)}`).to.deep.equal([]);
          expect(f.partial, ctx).to.equal(true);
          expectError(f.end(), undefined, `${ctx}: end()`);
        }
      }
    });

    it('end() on a fresh stream, after a full message, or after keep-alives reports nothing', () => {
      expect(new StreamFramer().end()).to.deep.equal([]);
      const f1 = new StreamFramer();
      f1.push(CORPUS[0]![1]);
      expect(f1.end()).to.deep.equal([]);
      const f2 = new StreamFramer();
      f2.push(Buffer.concat([CORPUS[0]![1], b('\r\n\r\n')]));
      expect(f2.end()).to.deep.equal([]);
    });

    it('a garbage start line is one error item (SIP_BAD_START_LINE); the framer is closed afterwards', () => {
      const garbage = sip(['GARBAGE', 'Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK1', 'Content-Length: 0']);
      const f = new StreamFramer();
      expectError(f.push(garbage), 'SIP_BAD_START_LINE', 'garbage start line');
      expect(f.push(CORPUS[0]![1]), 'push after the error').to.deep.equal([]);
      expect(f.push(b('\r\n\r\n')), 'ping after the error').to.deep.equal([]);
      expect(f.push(garbage), 'garbage after the error').to.deep.equal([]);
    });

    it('binary junk with a CRLFCRLF is one error item', () => {
      const junk = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0xff, 0x80]), b('\r\n\r\n')]);
      const f = new StreamFramer();
      expectError(f.push(junk), undefined, 'binary junk');
      expect(f.push(CORPUS[2]![1])).to.deep.equal([]);
    });

    it('an error stops the batch: messages after garbage in the same push are not reported', () => {
      const garbage = sip(['GARBAGE', 'Content-Length: 0']);
      const f = new StreamFramer();
      const items = f.push(Buffer.concat([CORPUS[2]![1], garbage, CORPUS[0]![1]]));
      expect(items.map((i) => i.type), describeItems(items)).to.deep.equal(['message', 'error']);
      expectMessages([items[0]!], [CORPUS[2]![1]], 'before the garbage');
      expectError([items[1]!], 'SIP_BAD_START_LINE', 'the garbage');
      expect(f.push(CORPUS[0]![1])).to.deep.equal([]);
    });

    it('a header line without a colon is one error item', () => {
      const bad = sip(['OPTIONS sip:a@example.com SIP/2.0', 'Via: SIP/2.0/TCP h;branch=z9hG4bK1', 'This line has no colon', 'Content-Length: 0']);
      const f = new StreamFramer();
      expectError(f.push(bad), 'SIP_BAD_HEADER', 'header without a colon');
      expect(f.push(CORPUS[0]![1])).to.deep.equal([]);
    });
  });

  describe('limits', () => {
    const START = 'INVITE sip:bob@biloxi.example.com SIP/2.0\r\n';

    /**
     * Pushes `chunks` (never a blank line) and requires SIP_HEADERS_TOO_LARGE no later than the
     * first push after which more than `limit` bytes were pushed, and nothing at all while at
     * most `limit - 4` bytes were pushed (slack for how the terminating CRLF is counted).
     */
    function expectEagerHeaderLimit(f: StreamFramer, limit: number, chunks: Buffer[], ctx: string): void {
      let total = 0;
      for (const [k, c] of chunks.entries()) {
        total += c.length;
        const items = f.push(c);
        if (items.length > 0) {
          expect(total, `${ctx}: error reported after only ${total} bytes (limit ${limit})`).to.be.greaterThan(limit - 4);
          expectError(items, 'SIP_HEADERS_TOO_LARGE', `${ctx}: push #${k}, ${total} bytes`);
          expect(f.push(b('\r\n\r\n')), `${ctx}: closed after the error`).to.deep.equal([]);
          return;
        }
        if (total > limit) {
          expect.fail(`${ctx}: ${total} header bytes pushed (limit ${limit}) but no SIP_HEADERS_TOO_LARGE yet`);
        }
      }
      expect.fail(`${ctx}: never reported SIP_HEADERS_TOO_LARGE`);
    }

    it('maxHeaderBytes (custom): error as soon as the limit is passed, without the blank line', () => {
      const limit = 4096;
      const line = `X-Filler: ${'a'.repeat(88)}\r\n`; // 100 bytes
      const chunks = [b(START), ...Array.from({ length: 100 }, () => b(line))];
      expectEagerHeaderLimit(new StreamFramer({ maxHeaderBytes: limit }), limit, chunks, 'custom limit, 100-byte lines');
    });

    it('maxHeaderBytes (default 65,536): error as soon as the limit is passed', () => {
      const line = `X-Filler: ${'b'.repeat(988)}\r\n`; // 1000 bytes
      const chunks = [b(START), ...Array.from({ length: 100 }, () => b(line))];
      expectEagerHeaderLimit(new StreamFramer(), 65536, chunks, 'default limit, 1000-byte lines');
    });

    it('maxHeaderBytes: one endless line without any CRLF is caught too', () => {
      const chunks = [b('INVITE sip:'), ...Array.from({ length: 100 }, () => b('a'.repeat(1000)))];
      expectEagerHeaderLimit(new StreamFramer(), 65536, chunks, 'endless start line');
      const chunks2 = [b(START), b('Subject: '), ...Array.from({ length: 10 }, () => b('s'.repeat(1000)))];
      expectEagerHeaderLimit(new StreamFramer({ maxHeaderBytes: 5000 }), 5000, chunks2, 'endless header line');
    });

    it('maxHeaderBytes: a head under the limit is fine', () => {
      const fill = Array.from({ length: 30 }, (_, k) => `X-Filler-${k}: ${'c'.repeat(80)}`);
      const m = sip([START.trimEnd(), ...fill, 'Content-Length: 0']);
      expect(bodyOffset(m)).to.be.lessThan(4000);
      expectMessages(new StreamFramer({ maxHeaderBytes: 4096 }).push(m), [m], 'custom');
      const big = sip([START.trimEnd(), ...Array.from({ length: 62 }, (_, k) => `X-F${k}: ${'d'.repeat(990)}`), 'Content-Length: 0']);
      expect(bodyOffset(big)).to.be.within(60000, 65000);
      expectMessages(new StreamFramer().push(big), [big], 'default');
    });

    const withHeaders = (n: number): Buffer => {
      const fixed = [
        'Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK1',
        'From: <sip:a@example.com>;tag=1',
        'To: <sip:b@example.com>',
        'Call-ID: count@example.com',
        'CSeq: 1 OPTIONS',
        'Max-Forwards: 70',
        'Content-Length: 0',
      ];
      const extra = Array.from({ length: n - fixed.length }, (_, k) => `X-H${k}: v${k}`);
      return sip(['OPTIONS sip:b@example.com SIP/2.0', ...fixed.slice(0, -1), ...extra, fixed[fixed.length - 1]!]);
    };

    it('maxHeaderCount (custom): exactly the limit is fine, one more is SIP_TOO_MANY_HEADERS', () => {
      expectMessages(new StreamFramer({ maxHeaderCount: 10 }).push(withHeaders(10)), [withHeaders(10)], '10 headers');
      const f = new StreamFramer({ maxHeaderCount: 10 });
      expectError(f.push(withHeaders(11)), 'SIP_TOO_MANY_HEADERS', '11 headers');
      expect(f.push(CORPUS[0]![1])).to.deep.equal([]);
    });

    it('maxHeaderCount (default 256): 256 is fine, 257 is SIP_TOO_MANY_HEADERS, 5000 too', () => {
      expectMessages(new StreamFramer().push(withHeaders(256)), [withHeaders(256)], '256 headers');
      expectError(new StreamFramer().push(withHeaders(257)), 'SIP_TOO_MANY_HEADERS', '257 headers');
      expectError(new StreamFramer().push(withHeaders(5000)), ['SIP_TOO_MANY_HEADERS', 'SIP_HEADERS_TOO_LARGE'], '5000 headers');
    });

    const headWithLength = (cl: string | string[], compact = false): Buffer => {
      const values = Array.isArray(cl) ? cl : [cl];
      return b(
        [
          'MESSAGE sip:b@example.com SIP/2.0',
          'Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK2',
          'From: <sip:a@example.com>;tag=2',
          'To: <sip:b@example.com>',
          'Call-ID: cl@example.com',
          'CSeq: 1 MESSAGE',
          'Max-Forwards: 70',
          'Content-Type: text/plain',
          ...values.map((v) => `${compact ? 'l' : 'Content-Length'}: ${v}`),
        ].join(CRLF) +
          CRLF +
          CRLF,
      );
    };

    it('maxBodyBytes (custom): a larger Content-Length is SIP_BODY_TOO_LARGE before the body arrives', () => {
      const f = new StreamFramer({ maxBodyBytes: 1000 });
      expectError(f.push(headWithLength('1001')), 'SIP_BODY_TOO_LARGE', 'Content-Length 1001 > 1000');
      expect(f.push(Buffer.alloc(1001, 0x61))).to.deep.equal([]);
      const ok = Buffer.concat([headWithLength('1000'), Buffer.alloc(1000, 0x61)]);
      expectMessages(new StreamFramer({ maxBodyBytes: 1000 }).push(ok), [ok], 'Content-Length 1000 = limit');
    });

    it('maxBodyBytes (default 1,048,576): a larger Content-Length is SIP_BODY_TOO_LARGE before the body arrives', () => {
      expectError(new StreamFramer().push(headWithLength('1048577')), 'SIP_BODY_TOO_LARGE', 'just over the default');
      expectError(new StreamFramer().push(headWithLength('4294967295')), 'SIP_BODY_TOO_LARGE', '2^32 - 1');
      // Beyond 32 bits the value may be refused as too large or as not a usable number.
      expectError(new StreamFramer().push(headWithLength('4294967296')), ['SIP_BODY_TOO_LARGE', 'SIP_BAD_CONTENT_LENGTH'], '2^32');
      const ok = Buffer.concat([headWithLength('1048576'), Buffer.alloc(1048576, 0x62)]);
      expectMessages(new StreamFramer().push(ok), [ok], 'exactly the default');
    });

    it('an absurd Content-Length (99999999999999999999) is refused at once', () => {
      expectError(new StreamFramer().push(headWithLength('99999999999999999999')), ['SIP_BODY_TOO_LARGE', 'SIP_BAD_CONTENT_LENGTH'], '1e20');
    });

    it('a missing Content-Length on a stream is SIP_BAD_CONTENT_LENGTH once the head is complete', () => {
      const req = sip(['OPTIONS sip:b@example.com SIP/2.0', 'Via: SIP/2.0/TCP h;branch=z9hG4bK3', 'From: <sip:a@example.com>;tag=3', 'To: <sip:b@example.com>', 'Call-ID: nocl', 'CSeq: 1 OPTIONS']);
      const f = new StreamFramer();
      expectError(f.push(req), 'SIP_BAD_CONTENT_LENGTH', 'request without Content-Length');
      expect(f.push(CORPUS[0]![1])).to.deep.equal([]);
      const res = sip(['SIP/2.0 200 OK', 'Via: SIP/2.0/TCP h;branch=z9hG4bK3', 'From: <sip:a@example.com>;tag=3', 'To: <sip:b@example.com>;tag=4', 'Call-ID: nocl', 'CSeq: 1 OPTIONS']);
      expectError(new StreamFramer().push(res), 'SIP_BAD_CONTENT_LENGTH', 'response without Content-Length');
    });

    for (const bad of ['-1', 'abc', '', '1.5', '12abc', '0x10', '5 6']) {
      it(`Content-Length: ${JSON.stringify(bad)} is SIP_BAD_CONTENT_LENGTH`, () => {
        const f = new StreamFramer();
        expectError(f.push(Buffer.concat([headWithLength(bad), b('hello')])), 'SIP_BAD_CONTENT_LENGTH', `Content-Length ${JSON.stringify(bad)}`);
        expect(f.push(CORPUS[0]![1])).to.deep.equal([]);
      });
    }

    it('compact l: abc and l: -1 are SIP_BAD_CONTENT_LENGTH', () => {
      expectError(new StreamFramer().push(headWithLength('abc', true)), 'SIP_BAD_CONTENT_LENGTH', 'l: abc');
      expectError(new StreamFramer().push(headWithLength('-1', true)), 'SIP_BAD_CONTENT_LENGTH', 'l: -1');
    });

    it('two different Content-Length values are SIP_BAD_CONTENT_LENGTH; two equal ones are accepted', () => {
      expectError(new StreamFramer().push(Buffer.concat([headWithLength(['5', '6']), b('hello!')])), 'SIP_BAD_CONTENT_LENGTH', '5 and 6');
      const same = Buffer.concat([headWithLength(['5', '5']), b('hello')]);
      expectMessages(new StreamFramer().push(same), [same], '5 and 5');
    });

    it('every error is a SipParseError with a string code', () => {
      const cases: [string, StreamFramer, Buffer[]][] = [
        ['bad start line', new StreamFramer(), [b('NOT SIP\r\n\r\n')]],
        ['bad header', new StreamFramer(), [b('OPTIONS sip:a@b SIP/2.0\r\n: empty name\r\nContent-Length: 0\r\n\r\n')]],
        ['head too large', new StreamFramer({ maxHeaderBytes: 100 }), [b(START + `Subject: ${'x'.repeat(200)}`)]],
        ['too many headers', new StreamFramer({ maxHeaderCount: 2 }), [withHeaders(7)]],
        ['body too large', new StreamFramer({ maxBodyBytes: 1 }), [headWithLength('2')]],
        ['bad content length', new StreamFramer(), [headWithLength('x')]],
      ];
      for (const [name, f, chunks] of cases) {
        expectError(pushAll(f, chunks), undefined, name);
      }
      const f = new StreamFramer();
      f.push(b(START));
      expectError(f.end(), undefined, 'end() mid-head');
    });
  });
});
