// Mutation fuzzing of the message layer: parseMessage, every SipMessage accessor, validateMessage
// and StreamFramer must never throw anything but SipParseError, and must stay fast, whatever the
// bytes. Everything is driven by a seeded PRNG so any failure can be reproduced:
//
//   FUZZ_SEED=<n>        the global seed (default below); each mutant gets its own derived seed
//   FUZZ_PER_BASE=<n>    mutants per base message (default 80)
//   FUZZ_ONLY=<base>#<i> run only that mutant (base as printed in the report, e.g. rfc4475/esc01.sip)
//   FUZZ_DUMP=1          print the whole mutant (JSON-escaped) in failure reports
//   FUZZ_STATS=1         print outcome counts and timings
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseMessage, validateMessage, verdictCode, StreamFramer, SipParseError } from '../../src/index.js';
import { mulberry32, pick, randInt, type Rng } from '../support/random.js';
import { CRLF, sip } from '../support/sip-bytes.js';

type SipMessage = ReturnType<typeof parseMessage>;
type ParseLimits = NonNullable<Parameters<typeof parseMessage>[1]>;
type FramedItem = ReturnType<StreamFramer['push']>[number];

// ---------------------------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------------------------


const GLOBAL_SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : 0x51e7fa11;
const PER_BASE = process.env.FUZZ_PER_BASE ? Number(process.env.FUZZ_PER_BASE) : 80;
const ONLY = process.env.FUZZ_ONLY;
const DUMP = process.env.FUZZ_DUMP === '1';
const STATS_ON = process.env.FUZZ_STATS === '1';

/** Outcome counts (printed with FUZZ_STATS=1), to see that the mutants reach past the framing. */
const STATS = { counting: false, parsed: 0, rejected: new Map<string, number>(), accessorErrors: 0, framed: new Map<string, number>(), slowest: 0, slowestWhat: '' };
const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);

function mutantSeed(baseIndex: number, i: number): number {
  let h = GLOBAL_SEED ^ Math.imul(baseIndex + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f);
  return (h ^ (h >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Base messages: a hand-written well-formed corpus plus every RFC 4475 / RFC 5118 fixture
// ---------------------------------------------------------------------------------------------


const SDP =
  'v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\ns=-\r\nc=IN IP4 192.0.2.101\r\n' +
  't=0 0\r\nm=audio 49172 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n';

const CORPUS: [string, Buffer][] = [
  [
    'corpus/invite-sdp',
    sip(
      [
        'INVITE sip:bob@biloxi.example.com SIP/2.0',
        'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport',
        'Via: SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bK-2;received=192.0.2.1;rport=5071',
        'Max-Forwards: 70',
        'From: "Alice \\"A\\" Liddell" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
        'To: Bob <sip:bob@biloxi.example.com>',
        'Call-ID: 3848276298220188511@atlanta.example.com',
        'CSeq: 1 INVITE',
        'Contact: <sip:alice@client.atlanta.example.com;transport=tcp>;expires=60, "x" <sips:x@[::1]:5061>',
        'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>',
        'Record-Route: <sip:rr.example.com;lr>',
        'Supported: timer, 100rel',
        'Expires: 120',
        'Content-Type: application/sdp',
        'Content-Length: {CL}',
      ],
      SDP,
    ),
  ],
  [
    'corpus/message-utf8',
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
      'Grüße aus Köln! 你好，世界 🎉📞 — ça va? Ωμέγα ✓',
    ),
  ],
  [
    'corpus/200-ok',
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
    'corpus/compact-forms',
    sip(
      [
        'SUBSCRIBE sip:presence@example.org SIP/2.0',
        'v: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bKnashds8',
        'f: <sip:watcher@example.org>;tag=1928301774',
        't: <sip:presence@example.org>',
        'i: a84b4c76e66710@pc33.example.org',
        'CSeq: 7 SUBSCRIBE',
        'm: *',
        'o: presence',
        'k: eventlist',
        'e: gzip',
        'Max-Forwards: 70',
        'c: text/plain',
        'l:{CL}',
      ],
      'status please\r\n',
    ),
  ],
  [
    'corpus/folded',
    sip([
      'OPTIONS sip:carol@chicago.example.com;transport=tcp?subject=hi SIP/2.0',
      'Via: SIP/2.0/TCP pc33.atlanta.example.com',
      '  ;branch=z9hG4bKhjhs8ass877',
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
    'corpus/tel-register',
    sip([
      'REGISTER sip:registrar.example.com SIP/2.0',
      'Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKreg;maddr=224.2.0.1;ttl=16',
      'Max-Forwards: 70',
      'To: <tel:+1-201-555-0123;phone-context=example.com>',
      'From: <tel:+1-201-555-0123>;tag=reg1',
      'Call-ID: reg-1@10.0.0.1',
      'CSeq: 4294967295 REGISTER',
      'Contact: <sip:%61lice:secret@10.0.0.1:5061;transport=tls;lr>;q=0.7;expires=3600',
      'Contact: "Bob Two" <sip:bob@[2001:db8::1]>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
      'Path: <sip:edge.example.com;lr>',
      'Require: path',
      'Expires: 3600',
      'Content-Length: 0',
    ]),
  ],
];

function loadFixtures(): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const dir of ['rfc4475', 'rfc5118']) {
    const abs = fileURLToPath(new URL(`../fixtures/${dir}/`, import.meta.url));
    for (const f of readdirSync(abs).filter((n) => n.endsWith('.sip')).sort()) {
      out.push([`${dir}/${f}`, readFileSync(join(abs, f))]);
    }
  }
  return out;
}

const BASES: [string, Buffer][] = [...CORPUS, ...loadFixtures()];

// ---------------------------------------------------------------------------------------------
// Mutators
// ---------------------------------------------------------------------------------------------

const INTERESTING = [0x00, 0x0d, 0x0a, 0x3a, 0x3b, 0x2c, 0x3c, 0x3e, 0x22, 0x5c, 0x25, 0x20, 0x80, 0xff] as const;
const HUGE = 100 * 1024;
const HUGE_FILLS = ['a', ',', ';', '"', '<', '>', '\\', '%', ' ', '1', '[', '@', ':', '=', '<sip:a@b>,', 'a=b;', '\\"', '%2', '"a",', ' \t'];
const ODD_NUMBERS = [
  '99999999999999999999',
  '18446744073709551616',
  '4294967296',
  '4294967295',
  '2147483648',
  '9007199254740993',
  '-1',
  '-0',
  '00000000000000000000000001',
  '1e308',
  '256',
  '65536',
  '0x1F',
  '1.5',
  'NaN',
  'Infinity',
  '',
  ' ',
  '٣', // an Arabic-Indic digit (in UTF-8) that \d in some regex flavours would accept
];

interface Op {
  buf: Buffer;
  op: string;
  pos: number;
  huge?: boolean;
}

/** Header lines [start, end) (without their CRLF) in the head of `buf`, start line excluded. */
function headerLines(buf: Buffer): [number, number][] {
  const headEnd = buf.indexOf('\r\n\r\n');
  const limit = headEnd < 0 ? buf.length : headEnd;
  const lines: [number, number][] = [];
  let off = buf.indexOf('\r\n');
  while (off >= 0 && off < limit) {
    const start = off + 2;
    let end = buf.indexOf('\r\n', start);
    if (end < 0 || end > limit) end = limit;
    if (end > start) lines.push([start, end]);
    if (end >= limit) break;
    off = end;
  }
  return lines;
}

const splice = (buf: Buffer, at: number, del: number, ins: Buffer | string): Buffer =>
  Buffer.concat([buf.subarray(0, at), typeof ins === 'string' ? Buffer.from(ins, 'latin1') : ins, buf.subarray(Math.min(buf.length, at + del))]);

const fill = (pattern: string, bytes: number): Buffer => Buffer.alloc(bytes, pattern, 'latin1');

const MUTATORS: { name: string; weight: number; fn: (rng: Rng, buf: Buffer) => Op }[] = [
  {
    name: 'bitflip',
    weight: 14,
    fn: (rng, buf) => {
      const out = Buffer.from(buf);
      const n = randInt(rng, 1, 8);
      let pos = 0;
      const where: string[] = [];
      for (let k = 0; k < n && out.length > 0; k++) {
        pos = randInt(rng, 0, out.length - 1);
        const bit = randInt(rng, 0, 7);
        out[pos]! ^= 1 << bit;
        where.push(`${pos}.${bit}`);
      }
      return { buf: out, op: `bitflip(${where.join(',')})`, pos };
    },
  },
  {
    name: 'replace-interesting',
    weight: 14,
    fn: (rng, buf) => {
      const out = Buffer.from(buf);
      const n = randInt(rng, 1, 6);
      let pos = 0;
      const where: string[] = [];
      for (let k = 0; k < n && out.length > 0; k++) {
        pos = randInt(rng, 0, out.length - 1);
        const v = pick(rng, INTERESTING);
        out[pos] = v;
        where.push(`${pos}=0x${v.toString(16)}`);
      }
      return { buf: out, op: `replace(${where.join(',')})`, pos };
    },
  },
  {
    name: 'insert-interesting',
    weight: 6,
    fn: (rng, buf) => {
      const pos = randInt(rng, 0, buf.length);
      const bytes = Buffer.from(Array.from({ length: randInt(rng, 1, 4) }, () => pick(rng, INTERESTING)));
      return { buf: splice(buf, pos, 0, bytes), op: `insert(${pos},${bytes.toString('hex')})`, pos };
    },
  },
  {
    name: 'truncate',
    weight: 8,
    fn: (rng, buf) => {
      const pos = randInt(rng, 0, Math.max(0, buf.length - 1));
      return { buf: Buffer.from(buf.subarray(0, pos)), op: `truncate(${pos})`, pos };
    },
  },
  {
    name: 'duplicate-header',
    weight: 8,
    fn: (rng, buf) => {
      const lines = headerLines(buf);
      if (lines.length === 0) return { buf, op: 'duplicate-header(none)', pos: 0 };
      const [s, e] = pick(rng, lines);
      const times = pick(rng, [1, 1, 2, 3, 10, 50, 300]);
      const line = buf.subarray(s, e + 2);
      return { buf: splice(buf, e + 2, 0, Buffer.concat(Array.from({ length: times }, () => line))), op: `duplicate-header(${s},x${times})`, pos: s };
    },
  },
  {
    name: 'huge-header-value',
    weight: 3,
    fn: (rng, buf) => {
      const lines = headerLines(buf);
      if (lines.length === 0) return { buf, op: 'huge-header-value(none)', pos: 0 };
      const [s, e] = pick(rng, lines);
      const colon = buf.indexOf(':', s);
      const at = colon >= 0 && colon < e ? colon + 1 : s;
      const f = pick(rng, HUGE_FILLS);
      const keepPrefix = rng() < 0.5; // either replace the value or stretch it
      return { buf: splice(buf, at, keepPrefix ? 0 : e - at, fill(f, HUGE)), op: `huge-header-value(${at},${JSON.stringify(f)},${keepPrefix ? 'prefix' : 'replace'})`, pos: at, huge: true };
    },
  },
  {
    name: 'huge-uri',
    weight: 2,
    fn: (rng, buf) => {
      const f = pick(rng, ['a', ';', ';a=b', '%', '%41', '@', ':', '[', '?a=b&', '.']);
      const lt = buf.indexOf('<');
      if (rng() < 0.5 || lt < 0) {
        // the Request-URI (or the status code / reason of a response)
        const sp = buf.indexOf(' ');
        const at = sp < 0 ? 0 : sp + 1;
        return { buf: splice(buf, at, 0, Buffer.concat([Buffer.from('sip:'), fill(f, HUGE)])), op: `huge-request-uri(${JSON.stringify(f)})`, pos: at, huge: true };
      }
      return { buf: splice(buf, lt + 1, 0, Buffer.concat([Buffer.from('sip:'), fill(f, HUGE)])), op: `huge-name-addr-uri(${lt},${JSON.stringify(f)})`, pos: lt, huge: true };
    },
  },
  {
    name: 'odd-number',
    weight: 8,
    fn: (rng, buf) => {
      const text = buf.toString('latin1');
      const runs = [...text.matchAll(/\d+/g)];
      if (runs.length === 0) return { buf, op: 'odd-number(none)', pos: 0 };
      const m = pick(rng, runs);
      const at = m.index;
      if (rng() < 0.15) {
        return { buf: splice(buf, at, m[0].length, fill('9', HUGE)), op: `huge-number(${at})`, pos: at, huge: true };
      }
      const n = pick(rng, ODD_NUMBERS);
      return { buf: splice(buf, at, m[0].length, Buffer.from(n, 'utf8')), op: `odd-number(${at},${JSON.stringify(n)})`, pos: at };
    },
  },
  {
    name: 'delete-span',
    weight: 8,
    fn: (rng, buf) => {
      if (buf.length === 0) return { buf, op: 'delete(empty)', pos: 0 };
      const at = randInt(rng, 0, buf.length - 1);
      const len = rng() < 0.7 ? randInt(rng, 1, 16) : randInt(rng, 1, buf.length - at);
      return { buf: splice(buf, at, len, ''), op: `delete(${at},${len})`, pos: at };
    },
  },
  {
    name: 'insert-many',
    weight: 8,
    fn: (rng, buf) => {
      const ch = pick(rng, [';', ',', '"', ';,', '",', '<', '\\', '"<', ';="']);
      const count = pick(rng, [1, 2, 5, 17, 100, 1000, 10000]);
      // mostly inside a header value, sometimes anywhere
      const lines = headerLines(buf);
      let at = randInt(rng, 0, buf.length);
      if (lines.length > 0 && rng() < 0.8) {
        const [s, e] = pick(rng, lines);
        at = randInt(rng, s, e);
      }
      return { buf: splice(buf, at, 0, ch.repeat(count)), op: `insert-many(${at},${JSON.stringify(ch)}x${count})`, pos: at };
    },
  },
  {
    name: 'line-endings',
    weight: 5,
    fn: (rng, buf) => {
      const to = pick(rng, ['\n', '\r', '\n\r', '\r\r\n', ' \r\n', '\r\n\t', '\r\n ', '\r\n\r\n']);
      const all = rng() < 0.3;
      let text = buf.toString('latin1');
      let count = 0;
      text = text.replace(/\r\n/g, (m) => {
        if (!all && rng() >= 0.2) return m;
        count++;
        return to;
      });
      return { buf: Buffer.from(text, 'latin1'), op: `line-endings(${JSON.stringify(to)},${all ? 'all' : count})`, pos: 0 };
    },
  },
  {
    name: 'insert-fold',
    weight: 4,
    fn: (rng, buf) => {
      const lines = headerLines(buf);
      const at = lines.length > 0 ? randInt(rng, ...pick(rng, lines)) : randInt(rng, 0, buf.length);
      const fold = pick(rng, ['\r\n ', '\r\n\t', '\r\n   ', '\r\n \r\n ', '\r\n\r\n ']);
      return { buf: splice(buf, at, 0, fold), op: `insert-fold(${at},${JSON.stringify(fold)})`, pos: at };
    },
  },
  {
    name: 'splice-other',
    weight: 3,
    fn: (rng, buf) => {
      const [, other] = pick(rng, BASES);
      const s = randInt(rng, 0, other.length - 1);
      const e = randInt(rng, s, other.length);
      const at = rng() < 0.3 ? buf.length : randInt(rng, 0, buf.length);
      return { buf: splice(buf, at, 0, other.subarray(s, e)), op: `splice-other(${at},${e - s})`, pos: at };
    },
  },
  {
    name: 'case-flip',
    weight: 2,
    fn: (rng, buf) => {
      const out = Buffer.from(buf);
      for (let k = 0; k < 20 && out.length > 0; k++) {
        const p = randInt(rng, 0, out.length - 1);
        const c = out[p]!;
        if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) out[p] = c ^ 0x20;
      }
      return { buf: out, op: 'case-flip', pos: 0 };
    },
  },
];
const TOTAL_WEIGHT = MUTATORS.reduce((s, m) => s + m.weight, 0);

interface Mutant {
  bytes: Buffer;
  ops: string[];
  pos: number;
  huge: boolean;
  rng: Rng; // continues the mutant's own stream: chunking for the framer, etc.
}

function makeMutant(baseIndex: number, i: number): Mutant {
  const rng = mulberry32(mutantSeed(baseIndex, i));
  let buf = BASES[baseIndex]![1];
  const r = rng();
  const nOps = r < 0.6 ? 1 : r < 0.9 ? 2 : 3;
  const ops: string[] = [];
  let pos = 0;
  let huge = false;
  for (let k = 0; k < nOps; k++) {
    let w = rng() * TOTAL_WEIGHT;
    let m = MUTATORS[0]!;
    for (const cand of MUTATORS) {
      if ((w -= cand.weight) < 0) {
        m = cand;
        break;
      }
    }
    // Never stack two 100 KB mutations: keep each mutant a few hundred KB at most.
    if (huge && (m.name.startsWith('huge') || m.name === 'odd-number' || m.name === 'duplicate-header' || m.name === 'splice-other')) continue;
    const res = m.fn(rng, buf);
    buf = res.buf;
    ops.push(res.op);
    pos = res.pos;
    huge ||= res.huge === true || buf.length > 20000;
  }
  return { bytes: buf, ops, pos, huge, rng };
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

const BIG_LIMITS: ParseLimits = { maxHeaderBytes: 8 * 1024 * 1024, maxHeaderCount: 1_000_000, maxBodyBytes: 8 * 1024 * 1024 };
const MAX_MS = 50;

interface Problem {
  kind: string;
  where: string;
  detail: string;
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const frame = (e.stack ?? '').split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
    return `${e.constructor.name}: ${e.message} ${frame.trim()}`;
  }
  return `non-Error thrown: ${typeof e} ${String(e)}`;
}

function checkParseError(e: unknown, where: string, problems: Problem[]): void {
  if (!(e instanceof SipParseError)) {
    problems.push({ kind: 'foreign-exception', where, detail: describeError(e) });
    return;
  }
  if (typeof e.code !== 'string' || e.code.length === 0) problems.push({ kind: 'bad-error', where, detail: `code ${String(e.code)}` });
  if (typeof e.offset !== 'number') problems.push({ kind: 'bad-error', where, detail: `offset ${String(e.offset)}` });
}

/** Runs fn; an exception is fine only if it is a SipParseError. */
function guard(where: string, problems: Problem[], fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (STATS.counting) STATS.accessorErrors++;
    checkParseError(e, where, problems);
  }
}

interface UriLike {
  scheme?: unknown;
  user?: unknown;
  password?: unknown;
  host?: unknown;
  port?: unknown;
  params?: unknown;
  headers?: unknown;
  opaque?: unknown;
  toString(): string;
}
interface NameAddrLike {
  displayName?: unknown;
  uri: UriLike;
  params?: unknown;
  tag?: unknown;
  toString(): string;
}

function touchUri(where: string, get: () => UriLike, problems: Problem[]): void {
  let uri: UriLike | undefined;
  guard(where, problems, () => {
    uri = get();
  });
  if (!uri) return;
  const u = uri;
  for (const k of ['scheme', 'user', 'password', 'host', 'port', 'params', 'headers', 'opaque'] as const) {
    guard(`${where}.${k}`, problems, () => void u[k]);
  }
  guard(`${where}.toString()`, problems, () => void String(u));
}

function touchNameAddr(where: string, get: () => NameAddrLike, problems: Problem[]): void {
  let na: NameAddrLike | undefined;
  guard(where, problems, () => {
    na = get();
  });
  if (!na) return;
  const n = na;
  guard(`${where}.displayName`, problems, () => void n.displayName);
  touchUri(`${where}.uri`, () => n.uri, problems);
  guard(`${where}.params`, problems, () => void n.params);
  guard(`${where}.tag`, problems, () => void n.tag);
  guard(`${where}.toString()`, problems, () => void String(n));
}

function touchList(where: string, get: () => NameAddrLike[], problems: Problem[]): void {
  let list: NameAddrLike[] = [];
  guard(where, problems, () => {
    list = get();
  });
  list.forEach((_, k) => touchNameAddr(`${where}[${k}]`, () => list[k]!, problems));
}

/** Touches every accessor, each in its own try; checks the documented ranges of what comes back. */
function touchAll(msg: SipMessage, input: Uint8Array, problems: Problem[]): void {
  // toBuffer() first, while the message is untouched: it must be the original bytes of the message.
  guard('toBuffer()', problems, () => {
    const out = msg.toBuffer();
    if (!(out instanceof Uint8Array)) {
      problems.push({ kind: 'invariant', where: 'toBuffer()', detail: `returned ${typeof out}` });
    } else if (out.length > 0 && Buffer.from(input.buffer, input.byteOffset, input.byteLength).indexOf(out) < 0) {
      problems.push({ kind: 'invariant', where: 'toBuffer()', detail: 'the untouched message is not a byte range of its input' });
    }
  });
  let isRequest: unknown;
  guard('isRequest', problems, () => {
    isRequest = msg.isRequest;
    if (typeof isRequest !== 'boolean') problems.push({ kind: 'invariant', where: 'isRequest', detail: typeof isRequest });
  });
  guard('method', problems, () => void msg.method);
  if (isRequest === true) {
    touchUri('requestUri', () => msg.requestUri, problems);
  } else {
    // Documented to throw on responses; what it throws is not specified, so any Error is fine here.
    try {
      void msg.requestUri;
    } catch (e) {
      if (!(e instanceof Error)) problems.push({ kind: 'foreign-exception', where: 'requestUri (response)', detail: describeError(e) });
    }
  }
  guard('status', problems, () => void msg.status);
  guard('reason', problems, () => void msg.reason);
  guard('version', problems, () => void msg.version);

  let vias: SipMessage['via'] = [];
  guard('via', problems, () => {
    vias = msg.via;
  });
  vias.forEach((v, k) => {
    for (const f of ['protocol', 'transport', 'host', 'port', 'params', 'branch', 'received', 'rport', 'maddr', 'ttl'] as const) {
      guard(`via[${k}].${f}`, problems, () => void v[f]);
    }
    guard(`via[${k}].toString()`, problems, () => void String(v));
  });

  touchNameAddr('from', () => msg.from, problems);
  touchNameAddr('to', () => msg.to, problems);
  guard('callId', problems, () => void msg.callId);
  guard('cseq', problems, () => {
    const c = msg.cseq;
    if (!Number.isInteger(c.seq) || c.seq < 0 || c.seq > 0xffffffff) problems.push({ kind: 'invariant', where: 'cseq.seq', detail: `out of 0..2^32-1: ${c.seq}` });
    void c.method;
  });
  guard('maxForwards', problems, () => {
    const mf = msg.maxForwards;
    if (mf !== undefined && (!Number.isInteger(mf) || mf < 0 || mf > 255)) problems.push({ kind: 'invariant', where: 'maxForwards', detail: `out of 0..255: ${mf}` });
  });
  guard('expires', problems, () => void msg.expires);
  guard('contentLength', problems, () => void msg.contentLength);
  guard('contentType', problems, () => void msg.contentType);
  touchList('contact', () => msg.contact, problems);
  guard('wildcardContact', problems, () => void msg.wildcardContact);
  touchList('route', () => msg.route, problems);
  touchList('recordRoute', () => msg.recordRoute, problems);
  guard('body', problems, () => void msg.body);
  for (const h of ['via', 'v', 'contact', 'route', 'Accept', 'X-Unknown', 'content-length', 'l', 'Subject']) {
    guard(`header(${h})`, problems, () => void msg.header(h));
    guard(`headers(${h})`, problems, () => {
      const hs = msg.headers(h);
      if (!Array.isArray(hs) || hs.some((x) => typeof x !== 'string')) problems.push({ kind: 'invariant', where: `headers(${h})`, detail: 'not a string[]' });
    });
  }
  guard('toBuffer() after access', problems, () => void msg.toBuffer());
  guard('validateMessage()', problems, () => void verdictCode(validateMessage(msg)));
  guard('validateMessage(proxy)', problems, () => void verdictCode(validateMessage(msg, { role: 'proxy' })));
}

/** parseMessage + touchAll; returns the elapsed milliseconds. */
function parseAndTouch(input: Uint8Array, limits: ParseLimits | undefined, problems: Problem[], label: string): number {
  const t0 = process.hrtime.bigint();
  let msg: SipMessage | undefined;
  try {
    msg = limits ? parseMessage(input, limits) : parseMessage(input);
    if (STATS.counting) STATS.parsed++;
  } catch (e) {
    if (STATS.counting) bump(STATS.rejected, e instanceof SipParseError ? e.code : 'foreign');
    checkParseError(e, `parseMessage${label}`, problems);
  }
  if (msg) touchAll(msg, input, problems);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * Checks what a framer returned. A framed message is complete (its body is exactly Content-Length
 * bytes) and is "one already-framed stream message", so parseMessage must accept its bytes too,
 * under the same limits, and give back the same bytes.
 */
function checkItems(items: FramedItem[], stream: Buffer, problems: Problem[], where: string, limits?: ParseLimits): void {
  for (const item of items) {
    if (STATS.counting) bump(STATS.framed, item.type === 'error' && item.error instanceof SipParseError ? `error:${item.error.code}` : item.type);
    if (item.type === 'error') {
      checkParseError(item.error, `${where}: error item`, problems);
    } else if (item.type === 'message') {
      const msg = item.message;
      let bytes: Buffer | undefined;
      guard(`${where}: message.toBuffer()`, problems, () => {
        bytes = Buffer.from(msg.toBuffer());
      });
      guard(`${where}: message body`, problems, () => {
        const cl = msg.contentLength;
        const len = msg.body.length;
        if (cl !== len) problems.push({ kind: 'invariant', where: `${where}: framed message`, detail: `contentLength ${cl} but body.length ${len}` });
      });
      touchAll(msg, stream, problems);
      if (bytes) {
        try {
          const again = limits ? parseMessage(bytes, limits) : parseMessage(bytes);
          if (!Buffer.from(again.toBuffer()).equals(bytes)) problems.push({ kind: 'framer-vs-parse', where, detail: 'parseMessage(framed bytes).toBuffer() differs' });
        } catch (e) {
          problems.push({ kind: 'framer-vs-parse', where, detail: `parseMessage rejects a framed message: ${describeError(e)}` });
        }
      }
    } else if (item.type !== 'ping' && item.type !== 'pong') {
      problems.push({ kind: 'invariant', where, detail: `unknown item type ${JSON.stringify((item as { type: unknown }).type)}` });
    }
  }
}

/** 1 or 2 random cut points: the framer gets the input in 2–3 chunks. */
function randomCuts(rng: Rng, n: number): number[] {
  const cuts = [randInt(rng, 0, n)];
  if (rng() < 0.5) cuts.push(randInt(rng, 0, n));
  return cuts.sort((a, b) => a - b);
}

/** Feeds `bytes` to a fresh StreamFramer in the chunks given by `cuts`, then end(); returns ms. */
/**
 * Feeds `bytes` to a fresh StreamFramer in the chunks starting at `starts` (0 first), then end().
 * Returns the milliseconds spent inside the framer (push/end only) and the items, by call.
 */
function runFramer(bytes: Buffer, starts: number[], limits: ParseLimits | undefined, problems: Problem[]): { ms: number; calls: [string, FramedItem[]][] } {
  const calls: [string, FramedItem[]][] = [];
  let ms = 0;
  const timed = <T>(fn: () => T): T => {
    const t0 = process.hrtime.bigint();
    try {
      return fn();
    } finally {
      ms += Number(process.hrtime.bigint() - t0) / 1e6;
    }
  };
  let framer: StreamFramer;
  try {
    framer = timed(() => (limits ? new StreamFramer(limits) : new StreamFramer()));
  } catch (e) {
    problems.push({ kind: 'foreign-exception', where: 'new StreamFramer', detail: describeError(e) });
    return { ms, calls };
  }
  const bounds = [...starts, bytes.length];
  for (let k = 0; k + 1 < bounds.length; k++) {
    const where = `framer.push #${k}`;
    try {
      calls.push([where, timed(() => framer.push(bytes.subarray(bounds[k], bounds[k + 1])))]);
    } catch (e) {
      checkParseError(e, where, problems);
    }
  }
  try {
    calls.push(['framer.end', timed(() => framer.end())]);
  } catch (e) {
    checkParseError(e, 'framer.end', problems);
  }
  guard('framer.partial', problems, () => void framer.partial);
  guard('framer.bufferedBytes', problems, () => void framer.bufferedBytes);
  return { ms, calls };
}

/** The framer on 2–3 chunks (split at `cuts`), then every item checked; returns the framer's own ms. */
function frame(bytes: Buffer, cuts: number[], limits: ParseLimits | undefined, problems: Problem[]): number {
  const { ms, calls } = runFramer(bytes, [0, ...cuts], limits, problems);
  for (const [where, items] of calls) checkItems(items, bytes, problems, where, limits);
  return ms;
}

/** A view with a non-zero byteOffset into a larger ArrayBuffer, to catch code that ignores byteOffset. */
function offsetView(bytes: Buffer): Uint8Array {
  const backing = new Uint8Array(bytes.length + 16);
  backing.fill(0x5a);
  backing.set(bytes, 7);
  return new Uint8Array(backing.buffer, 7, bytes.length);
}

function excerpt(bytes: Buffer, pos: number): string {
  const head = JSON.stringify(bytes.subarray(0, 160).toString('latin1'));
  const s = Math.max(0, pos - 60);
  const around = JSON.stringify(bytes.subarray(s, pos + 60).toString('latin1'));
  return `${bytes.length} bytes; head ${head}${bytes.length > 160 ? '…' : ''}; around ${pos}: ${around}` + (DUMP ? `\n      full: ${JSON.stringify(bytes.toString('latin1'))}` : '');
}

interface Report {
  total: number;
  failures: string[];
}

function runMutant(baseIndex: number, i: number, report: Report): void {
  const [baseName] = BASES[baseIndex]!;
  const m = makeMutant(baseIndex, i);
  const problems: Problem[] = [];
  const input: Uint8Array = m.rng() < 0.25 ? offsetView(m.bytes) : m.bytes;

  const timed = (limits: ParseLimits | undefined, label: string): void => {
    STATS.counting = true;
    let ms = parseAndTouch(input, limits, problems, label);
    STATS.counting = false;
    // A single overrun may be a GC pause: re-measure, keep the best of 3.
    for (let k = 0; k < 2 && ms > MAX_MS; k++) ms = Math.min(ms, parseAndTouch(input, limits, [], label));
    if (ms > MAX_MS) problems.push({ kind: 'slow', where: `parseMessage${label}+access`, detail: `${ms.toFixed(1)} ms > ${MAX_MS} ms` });
    if (ms > STATS.slowest) {
      STATS.slowest = ms;
      STATS.slowestWhat = `${baseName}#${i}${label} [${m.ops.join(' ; ')}]`;
    }
  };
  timed(undefined, '');
  if (m.huge) timed(BIG_LIMITS, '(raised limits)');

  const cuts = randomCuts(m.rng, m.bytes.length);
  const framerLimits = m.huge && m.rng() < 0.5 ? BIG_LIMITS : undefined;
  STATS.counting = true;
  let fms = frame(m.bytes, cuts, framerLimits, problems);
  STATS.counting = false;
  for (let k = 0; k < 2 && fms > MAX_MS; k++) fms = Math.min(fms, frame(m.bytes, cuts, framerLimits, []));
  if (fms > MAX_MS) problems.push({ kind: 'slow', where: 'StreamFramer', detail: `${fms.toFixed(1)} ms > ${MAX_MS} ms` });

  report.total++;
  if (problems.length > 0) {
    const uniq = new Map<string, Problem>();
    for (const p of problems) uniq.set(`${p.kind}|${p.where}|${p.detail}`, p);
    const lines = [...uniq.values()].slice(0, 6).map((p) => `      ${p.kind} in ${p.where}: ${p.detail}`);
    report.failures.push(
      `  FUZZ_SEED=${GLOBAL_SEED} FUZZ_ONLY=${baseName}#${i}  ops=[${m.ops.join(' ; ')}] framer-cuts=[${cuts.join(',')}]${framerLimits ? ' (raised limits)' : ''}` +
        `${input instanceof Buffer ? '' : ' (offset view)'}\n${lines.join('\n')}\n      mutant: ${excerpt(m.bytes, m.pos)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Timing helpers for the complexity tests
// ---------------------------------------------------------------------------------------------

/** Times fn cold; only if that took longer than `limitMs` (a GC pause?) runs it once more. Returns the best. */
function timeUnder(fn: () => void, limitMs: number): number {
  const first = elapsed(fn);
  return first <= limitMs ? first : Math.min(first, elapsed(fn));
}

/** `global.gc` with node's --expose-gc (.mocharc.json); absent elsewhere. */
const collect = (globalThis as { gc?: () => void }).gc;

function elapsed(fn: () => void): number {
  // Start every measurement on a collected heap: garbage left by the suites before this one
  // (hundreds of servers and sockets) must not land its GC pauses in the larger input's time.
  collect?.();
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Parse with raised limits and touch everything; any exception must be a SipParseError. */
function parseTouchStrict(input: Buffer, limits: ParseLimits = BIG_LIMITS): void {
  const problems: Problem[] = [];
  parseAndTouch(input, limits, problems, '');
  // Only exceptions matter here; the mutant tests check the invariants.
  const bad = problems.filter((p) => p.kind !== 'invariant');
  if (bad.length > 0) throw new Error(bad.map((p) => `${p.kind} in ${p.where}: ${p.detail}`).join('\n'));
}

/**
 * t(2n) must be at most ~3 × t(n) (plus 2 ms of timer noise), each the best of 3 runs, small and
 * large interleaved so both see the same GC weather. GC pauses can still spoil one measurement, so
 * it is tried up to 3 times: a real quadratic (×4 per doubling) fails every attempt.
 */
function expectLinearish(name: string, small: Buffer, large: Buffer, fn: (b: Buffer) => void = (b) => parseTouchStrict(b)): void {
  const attempts: string[] = [];
  fn(small);
  fn(large);
  for (let a = 0; a < 3; a++) {
    let t1 = Infinity;
    let t2 = Infinity;
    for (let k = 0; k < 3; k++) {
      t1 = Math.min(t1, elapsed(() => fn(small)));
      t2 = Math.min(t2, elapsed(() => fn(large)));
    }
    attempts.push(`${t1.toFixed(2)} ms → ${t2.toFixed(2)} ms (×${(t2 / Math.max(t1, 0.001)).toFixed(2)})`);
    if (STATS_ON) console.log(`      [timing] ${name}: ${attempts[attempts.length - 1]}`);
    // The large input is 4× the small one: linear work takes ~4× the time, quadratic ~16×.
    // Allowing 8× keeps a busy machine's noise from failing a linear parser.
    if (t2 <= 8 * t1 + 2) return;
  }
  expect.fail(`${name}: ${small.length} → ${large.length} bytes took more than 8× the time in 3 attempts (best of 3 each): ${attempts.join('; ')}`);
}

const headOnly = (lines: string[]): Buffer => Buffer.from(lines.join(CRLF) + CRLF + CRLF, 'latin1');
const FIXED_HEAD = [
  'Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKquad',
  'From: <sip:a@example.com>;tag=q1',
  'To: <sip:b@example.com>',
  'Call-ID: quad@example.com',
  'CSeq: 1 INVITE',
  'Max-Forwards: 70',
];

// ---------------------------------------------------------------------------------------------

describe('message layer fuzzing', function () {
  this.timeout(120_000);

  describe(`mutants (seed ${GLOBAL_SEED}, ${PER_BASE} per base, ${BASES.length} bases)`, () => {
    const report: Report = { total: 0, failures: [] };
    let onlyBase: string | undefined;
    let onlyIndex = -1;
    if (ONLY) {
      const hash = ONLY.lastIndexOf('#');
      onlyBase = ONLY.slice(0, hash);
      onlyIndex = Number(ONLY.slice(hash + 1));
    }

    it('has at least 5,000 mutants over the corpus and every fixture', () => {
      expect(BASES.length).to.be.at.least(CORPUS.length + 60);
      if (!ONLY) expect(BASES.length * PER_BASE).to.be.at.least(5000);
    });

    BASES.forEach(([name], baseIndex) => {
      if (onlyBase !== undefined && onlyBase !== name) return;
      it(`${name}: only SipParseError, every parse+access under ${MAX_MS} ms`, () => {
        const before = report.failures.length;
        for (let i = 0; i < PER_BASE; i++) {
          if (onlyIndex >= 0 && i !== onlyIndex) continue;
          runMutant(baseIndex, i, report);
        }
        const mine = report.failures.slice(before);
        if (mine.length > 0) {
          expect.fail(`${mine.length} failing mutant(s) of ${name} (showing up to 8):\n${mine.slice(0, 8).join('\n')}`);
        }
      });
    });

    after(() => {
      if (!STATS_ON) return;
      console.log(`      [stats] ${report.total} mutants; parseMessage returned ${STATS.parsed}, threw ${JSON.stringify(Object.fromEntries(STATS.rejected))}`);
      console.log(`      [stats] slowest parse+access ${STATS.slowest.toFixed(1)} ms: ${STATS.slowestWhat}`);
      console.log(`      [stats] accessors threw SipParseError ${STATS.accessorErrors} times; framer items ${JSON.stringify(Object.fromEntries(STATS.framed))}`);
    });

    it('the base messages themselves pass the same checks', () => {
      const problems: Problem[] = [];
      for (const [, bytes] of BASES) {
        parseAndTouch(bytes, undefined, problems, '');
        frame(bytes, randomCuts(mulberry32(7), bytes.length), undefined, problems);
      }
      expect(problems.map((p) => `${p.kind} in ${p.where}: ${p.detail}`)).to.deep.equal([]);
    });
  });

  describe('no super-linear behaviour', () => {
    it('10,000 vs 40,000 tiny header lines: four times the input costs at most ~8× (not 16×)', () => {
      const tiny = ['a:b', 'X-A: 1', 'v: SIP/2.0/UDP h', 'Route: <sip:r>', 'm: <sip:c>', 'Subject: s', 'Accept: a/b', 'x:', 'l: 0'];
      const build = (n: number): Buffer => {
        const lines = ['INVITE sip:b@example.com SIP/2.0', ...FIXED_HEAD];
        for (let k = 0; k < n; k++) lines.push(tiny[k % tiny.length]!);
        lines.push('Content-Length: 0');
        return headOnly(lines);
      };
      const small = build(10_000);
      const large = build(40_000);
      expectLinearish('parse+access, tiny header lines', small, large);
      expectLinearish('StreamFramer, tiny header lines', small, large, (bytes) => {
        const f = new StreamFramer(BIG_LIMITS);
        for (let off = 0; off < bytes.length; off += 1024) f.push(bytes.subarray(off, off + 1024));
        f.end();
      });
    });

    it('5,000 vs 20,000 Via / Contact values on one line: four times the input costs at most ~8×', () => {
      const build = (n: number): Buffer =>
        headOnly([
          'INVITE sip:b@example.com SIP/2.0',
          ...FIXED_HEAD,
          'Via: ' + Array.from({ length: n }, (_, k) => `SIP/2.0/UDP h${k};branch=z9hG4bK${k}`).join(','),
          'Contact: ' + Array.from({ length: n }, (_, k) => `<sip:c${k}@h>;q=0.${k % 10}`).join(','),
          'Content-Length: 0',
        ]);
      expectLinearish('list headers', build(5_000), build(20_000));
    });

    const ADVERSARIAL = [',', '"', '<', '<"', '",<', '\\"', '<,>"', ';', ';=', '%', '"\\', '<<>>'];
    const PLACES = ['Via', 'From', 'To', 'Contact', 'Route', 'Record-Route', 'Call-ID', 'CSeq', 'Accept', 'X-Custom'];
    for (const pat of ADVERSARIAL) {
      it(`a 50 KB vs 200 KB header value full of ${JSON.stringify(pat)}: four times the input costs at most ~8×`, () => {
        const build = (bytes: number): Buffer => {
          const value = pat.repeat(Math.ceil(bytes / pat.length)).slice(0, bytes);
          return headOnly([
            `INVITE sip:b@example.com;p=${value} SIP/2.0`,
            ...PLACES.map((h, k) => `${h}: ${k % 2 === 0 ? value : `"x" <sip:a@b>;p=${value}`}`),
            'Content-Length: 0',
          ]);
        };
        expectLinearish(`value of ${JSON.stringify(pat)}`, build(50 * 1024), build(200 * 1024));
      });
    }

    const MB = 1024 * 1024;
    const ONE_MB_INPUTS: [string, () => Buffer][] = [
      ['Contact of 1 MB of "<"', () => headOnly(['OPTIONS sip:a@b SIP/2.0', ...FIXED_HEAD, 'Contact: ' + '<'.repeat(MB), 'Content-Length: 0'])],
      ['From with an unterminated 1 MB quoted string', () => headOnly(['OPTIONS sip:a@b SIP/2.0', 'From: "' + 'a\\"'.repeat(MB / 3), 'Content-Length: 0'])],
      ['Via of 1 MB of ","', () => headOnly(['OPTIONS sip:a@b SIP/2.0', 'Via: ' + ','.repeat(MB), 'Content-Length: 0'])],
      ['Via with 500,000 parameters', () => headOnly(['OPTIONS sip:a@b SIP/2.0', 'Via: SIP/2.0/UDP h' + ';a'.repeat(MB / 2), 'Content-Length: 0'])],
      ['Request-URI of 1 MB of "%"', () => headOnly(['OPTIONS sip:' + '%'.repeat(MB) + ' SIP/2.0', ...FIXED_HEAD, 'Content-Length: 0'])],
      ['Request-URI with 1 MB of escapes and params', () => headOnly(['OPTIONS sip:' + '%41'.repeat(MB / 6) + '@h' + ';x=%42'.repeat(MB / 12) + ' SIP/2.0', ...FIXED_HEAD, 'Content-Length: 0'])],
      ['210,000 header lines', () => headOnly(['OPTIONS sip:a@b SIP/2.0', ...Array.from({ length: 210_000 }, () => 'a:b'), 'Content-Length: 0'])],
      ['one header folded 262,144 times', () => headOnly(['OPTIONS sip:a@b SIP/2.0', 'Subject: s', ...Array.from({ length: 262_144 }, () => ' x'), 'Content-Length: 0'])],
      ['1 MB of bare CRs in the head', () => Buffer.concat([Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nSubject: '), Buffer.alloc(MB, '\r'), Buffer.from('\r\n\r\n')])],
      ['1 MB of bare LFs after the start line', () => Buffer.concat([Buffer.from('OPTIONS sip:a@b SIP/2.0\r\n'), Buffer.alloc(MB, '\n')])],
      ['1 MB without any line break', () => Buffer.alloc(MB, 'A')],
      ['1 MB of CRLF', () => Buffer.alloc(MB, '\r\n')],
      ['105,000 Contact entries', () => headOnly(['REGISTER sip:a@b SIP/2.0', ...FIXED_HEAD, 'Contact: ' + '<sip:a@b>,'.repeat(105_000) + '<sip:a@b>', 'Content-Length: 0'])],
      ['Route of 1 MB of nested "<<<…>>>"', () => headOnly(['OPTIONS sip:a@b SIP/2.0', 'Route: ' + '<'.repeat(MB / 2) + '>'.repeat(MB / 2), 'Content-Length: 0'])],
      ['display name of 1 MB of backslashes', () => headOnly(['OPTIONS sip:a@b SIP/2.0', 'To: "' + '\\'.repeat(MB) + '" <sip:a@b>', 'Content-Length: 0'])],
      ['a 1 MB CSeq number', () => headOnly(['OPTIONS sip:a@b SIP/2.0', 'CSeq: ' + '9'.repeat(MB) + ' OPTIONS', 'Max-Forwards: ' + '7'.repeat(1000), 'Content-Length: 0'])],
      ['1 MB body with a few headers', () => Buffer.concat([headOnly(['MESSAGE sip:a@b SIP/2.0', ...FIXED_HEAD, `Content-Length: ${MB}`]), Buffer.alloc(MB, '\r\n\r\n<>,;"')])],
    ];
    for (const [name, build] of ONE_MB_INPUTS) {
      it(`1 MB adversarial input under 1 s: ${name}`, () => {
        const input = build();
        expect(input.length).to.be.within(MB - 1024, 2 * MB);
        const tDefault = timeUnder(() => parseTouchStrict(input, {}), 1000);
        const tRaised = timeUnder(() => parseTouchStrict(input), 1000);
        // The framer in 1 KB chunks: only its own push/end time counts; its items are checked afterwards.
        const starts: number[] = [];
        for (let off = 0; off < input.length; off += 1024) starts.push(off);
        const problems: Problem[] = [];
        let run = runFramer(input, starts, BIG_LIMITS, problems);
        if (run.ms > 1000) run = runFramer(input, starts, BIG_LIMITS, []);
        const tFramer = run.ms;
        for (const [where, items] of run.calls) checkItems(items, input, problems, where, BIG_LIMITS);
        const bad = problems.filter((p) => p.kind !== 'invariant');
        expect(bad.map((p) => `${p.kind} in ${p.where}: ${p.detail}`), 'framer exceptions').to.deep.equal([]);
        const msg = `default limits ${tDefault.toFixed(1)} ms, raised limits ${tRaised.toFixed(1)} ms, framer in 1 KB chunks ${tFramer.toFixed(1)} ms`;
        if (STATS_ON) console.log(`      [timing] ${msg}`);
        expect(tDefault, msg).to.be.below(1000);
        expect(tRaised, msg).to.be.below(1000);
        expect(tFramer, msg).to.be.below(1000);
      });
    }
  });
});
