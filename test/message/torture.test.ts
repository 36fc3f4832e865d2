// RFC 4475 (SIP torture test messages) and RFC 5118 (SIP IPv6 torture tests), against the message
// layer's public API (docs/message-layer.md).
//
// Every file of both archives has an entry in test/fixtures/torture-cases.ts. For each one:
//  - bytes that cannot be framed as SIP: parseMessage throws SipParseError (and nothing else);
//  - everything else parses (the parser is liberal; validation is separate), every accessor either
//    answers or throws SipParseError ("must not break"), and verdictCode(validateMessage(msg)) is
//    what the RFC says a UAS must do (and, where the RFC names it, what a proxy must do);
//  - the values the RFC describes are what the accessors return;
//  - a message that is accepted re-serializes, untouched, to exactly its bytes (for RFC 4475
//    §3.1.1.8, to its bytes up to the end of the declared body: the trailing octets are not part of
//    the message), and parsing that again gives the same transaction identity.
//
// The RFC 5118 fixtures are its archive made wire-ready by scripts/extract-rfc-fixtures.mjs (CRLF
// line ends, Content-Length = body octets; see the note in torture-cases.ts).
import { readFileSync, readdirSync } from 'node:fs';
import { expect } from 'chai';
import { parseMessage, validateMessage, verdictCode, SipParseError } from '../../src/index.js';
import {
  RFC4475_CASES,
  RFC5118_CASES,
  TORTURE_CASES,
  type MessageExpect,
  type NameAddrExpect,
  type OneOf,
  type Reject,
  type TortureCase,
  type UriExpect,
  type Val,
  type ViaExpect,
} from '../fixtures/torture-cases.js';

type Msg = ReturnType<typeof parseMessage>;
type Uri = Msg['requestUri'];
type NameAddr = Msg['from'];
type Via = Msg['via'][number];
type Verdict = ReturnType<typeof validateMessage>;

// ---------------------------------------------------------------------------------------------
// Fixture bytes
// ---------------------------------------------------------------------------------------------

const fixtureDir = (rfc: number): URL => new URL(`../fixtures/rfc${rfc}/`, import.meta.url);

function readFixture(c: TortureCase): Buffer {
  return readFileSync(new URL(`${c.file}.sip`, fixtureDir(c.rfc)));
}

/** Offset of the first body octet: just after the empty line (CRLF or bare LF), or the end. */
function bodyStart(bytes: Buffer): number {
  const crlf = bytes.indexOf('\r\n\r\n');
  const lf = bytes.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return crlf + 4;
  if (lf !== -1) return lf + 2;
  return bytes.length;
}

// ---------------------------------------------------------------------------------------------
// Assertion helpers
// ---------------------------------------------------------------------------------------------

const has = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

function isOneOf<T>(v: Val<T> | undefined): v is OneOf<T> {
  return typeof v === 'object' && v !== null && has(v, 'oneOf');
}

function checkVal<T>(actual: unknown, expected: Val<T> | undefined, what: string): void {
  if (isOneOf(expected)) {
    expect(expected.oneOf as readonly unknown[], `${what}: ${JSON.stringify(actual)} is not one of the accepted forms`).to.deep.include(actual);
  } else {
    expect(actual, what).to.deep.equal(expected);
  }
}

/** Looks a parameter up by name, case-insensitively; `found` tells absent from valueless. */
function findParam(params: object, name: string): { found: boolean; value: unknown } {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(params)) if (k.toLowerCase() === want) return { found: true, value: v };
  return { found: false, value: undefined };
}

function checkParamsSubset(actual: object, expected: Record<string, Val<string | null>>, what: string): void {
  for (const [name, value] of Object.entries(expected)) {
    const p = findParam(actual, name);
    expect(p.found, `${what}: parameter "${name}" present (have ${JSON.stringify({ ...actual })})`).to.equal(true);
    checkVal(p.value, value, `${what}: parameter "${name}"`);
  }
}

function checkUri(uri: Uri, e: UriExpect, what: string): void {
  if (has(e, 'scheme')) expect(uri.scheme, `${what}.scheme`).to.equal(e.scheme);
  if (has(e, 'user')) expect(uri.user, `${what}.user`).to.equal(e.user);
  if (has(e, 'password')) expect(uri.password, `${what}.password`).to.equal(e.password);
  if (has(e, 'host')) checkVal(uri.host, e.host, `${what}.host`);
  if (has(e, 'port')) expect(uri.port, `${what}.port`).to.equal(e.port);
  if (has(e, 'opaque')) expect(uri.opaque, `${what}.opaque`).to.equal(e.opaque);
  if (e.params) expect({ ...uri.params }, `${what}.params`).to.deep.equal(e.params);
  if (e.headers) {
    for (const [name, value] of Object.entries(e.headers)) {
      const h = findParam(uri.headers as object, name);
      expect(h.found, `${what}.headers has "${name}" (have ${JSON.stringify({ ...(uri.headers as object) })})`).to.equal(true);
      checkVal(h.value, value, `${what}.headers["${name}"]`);
    }
  }
}

function checkNameAddr(na: NameAddr, e: NameAddrExpect, what: string): void {
  if (has(e, 'displayName')) expect(na.displayName, `${what}.displayName`).to.equal(e.displayName);
  if (e.uri) checkUri(na.uri, e.uri, `${what}.uri`);
  if (has(e, 'tag')) expect(na.tag, `${what}.tag`).to.equal(e.tag);
  if (e.params) checkParamsSubset(na.params, e.params, `${what}.params`);
  for (const name of e.absentParams ?? []) {
    expect(findParam(na.params, name).found, `${what}.params must not have "${name}"`).to.equal(false);
  }
}

function checkVia(via: Via, e: ViaExpect, what: string): void {
  if (has(e, 'protocol')) expect(via.protocol, `${what}.protocol`).to.equal(e.protocol);
  if (has(e, 'transport')) expect(via.transport, `${what}.transport`).to.equal(e.transport);
  if (has(e, 'host')) checkVal(via.host, e.host, `${what}.host`);
  if (has(e, 'port')) expect(via.port, `${what}.port`).to.equal(e.port);
  if (has(e, 'branch')) expect(via.branch, `${what}.branch`).to.equal(e.branch);
  if (has(e, 'received')) checkVal(via.received, e.received, `${what}.received`);
  if (has(e, 'rport')) expect(via.rport, `${what}.rport`).to.equal(e.rport);
  if (e.params) checkParamsSubset(via.params, e.params, `${what}.params`);
}

function checkList(actual: NameAddr[], expected: NameAddrExpect[] | undefined, what: string): void {
  if (!expected) return;
  expect(actual.length, `${what}: number of values`).to.be.at.least(expected.length);
  expected.forEach((e, i) => checkNameAddr(actual[i]!, e, `${what}[${i}]`));
}

/** Every value the table lists for a message. `bytes` are the message's bytes, for the body check. */
function checkMessage(msg: Msg, e: MessageExpect, bytes: Buffer, skip: ReadonlySet<keyof MessageExpect> = new Set()): void {
  const want = (k: keyof MessageExpect): boolean => has(e, k) && !skip.has(k);
  if (want('method')) expect(msg.method, 'method').to.equal(e.method);
  if (want('status')) expect(msg.status, 'status').to.equal(e.status);
  if (want('reason')) expect(msg.reason, 'reason').to.equal(e.reason);
  if (want('version')) expect(msg.version, 'version').to.equal(e.version);
  if (want('requestUri')) checkUri(msg.requestUri, e.requestUri!, 'requestUri');
  if (want('viaCount')) expect(msg.via.length, 'number of Via values').to.equal(e.viaCount);
  if (want('via')) {
    const vias = msg.via;
    e.via!.forEach((ve, i) => {
      expect(vias.length, `a Via value at index ${i}`).to.be.greaterThan(i);
      checkVia(vias[i]!, ve, `via[${i}]`);
    });
  }
  if (want('from')) checkNameAddr(msg.from, e.from!, 'from');
  if (want('to')) checkNameAddr(msg.to, e.to!, 'to');
  if (want('contactCount')) expect(msg.contact.length, 'number of Contact values').to.equal(e.contactCount);
  if (want('contact')) checkList(msg.contact, e.contact, 'contact');
  if (want('route')) checkList(msg.route, e.route, 'route');
  if (want('recordRoute')) checkList(msg.recordRoute, e.recordRoute, 'recordRoute');
  if (want('callId')) expect(msg.callId, 'callId').to.equal(e.callId);
  if (want('cseq')) {
    const cseq = msg.cseq;
    expect({ seq: cseq.seq, method: cseq.method }, 'cseq').to.deep.equal(e.cseq);
  }
  if (want('maxForwards')) expect(msg.maxForwards, 'maxForwards').to.equal(e.maxForwards);
  if (want('contentLength')) expect(msg.contentLength, 'contentLength').to.equal(e.contentLength);
  if (want('contentType')) expect(msg.contentType, 'contentType').to.equal(e.contentType);
  if (want('bodyLength')) {
    expect(msg.body.length, 'body length').to.equal(e.bodyLength);
    const start = bodyStart(bytes);
    expectSameBytes(msg.body, bytes.subarray(start, start + e.bodyLength!), 'body');
  }
  for (const s of want('bodyIncludes') ? e.bodyIncludes! : []) {
    expect(msg.body.includes(Buffer.from(s, 'utf8')), `body contains ${JSON.stringify(s)}`).to.equal(true);
  }
  for (const [name, value] of Object.entries(want('header') ? e.header! : {})) {
    expect(msg.header(name), `header(${JSON.stringify(name)})`).to.equal(value);
  }
  for (const [name, values] of Object.entries(want('headers') ? e.headers! : {})) {
    expect(msg.headers(name), `headers(${JSON.stringify(name)})`).to.deep.equal(values);
  }
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const n = Math.min(actual.length, expected.length);
  let i = 0;
  while (i < n && actual[i] === expected[i]) i++;
  if (i === n && actual.length === expected.length) return;
  const show = (b: Uint8Array): string => JSON.stringify(Buffer.from(b.subarray(Math.max(0, i - 20), i + 20)).toString('latin1'));
  expect.fail(
    `${what}: ${actual.length} bytes where ${expected.length} were expected; first difference at byte ${i}: ` +
      `got ${show(actual)}, expected ${show(expected)}`,
  );
}

function expectSipParseError(err: unknown, what: string): void {
  expect(err, `${what}: ${String(err)}`).to.be.instanceOf(SipParseError);
  const code: unknown = (err as SipParseError).code;
  expect(code, `${what}: code`).to.be.a('string');
  expect((code as string).startsWith('SIP_'), `${what}: code ${String(code)} starts with SIP_`).to.equal(true);
}

function parseOrFail(bytes: Buffer): Msg {
  try {
    return parseMessage(bytes);
  } catch (err) {
    const code = err instanceof SipParseError ? ` (${err.code})` : '';
    expect.fail(`parseMessage threw${code}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** "Parsers must not break": every accessor answers or throws SipParseError, never anything else. */
function touchAll(msg: Msg): void {
  const nameAddr = (na: NameAddr): unknown[] => [na.displayName, na.uri.scheme, na.uri.user, na.uri.host, na.uri.port, { ...na.uri.params }, na.tag, { ...na.params }, String(na)];
  const probes: [string, () => unknown][] = [
    ['isRequest', () => msg.isRequest],
    ['method', () => msg.method],
    ['requestUri', () => (msg.isRequest ? [msg.requestUri.scheme, msg.requestUri.user, msg.requestUri.host, msg.requestUri.port, String(msg.requestUri)] : undefined)],
    ['status', () => msg.status],
    ['reason', () => msg.reason],
    ['version', () => msg.version],
    ['via', () => msg.via.map((v) => [v.protocol, v.transport, v.host, v.port, v.branch, v.received, v.rport, { ...v.params }, String(v)])],
    ['from', () => nameAddr(msg.from)],
    ['to', () => nameAddr(msg.to)],
    ['callId', () => msg.callId],
    ['cseq', () => msg.cseq],
    ['maxForwards', () => msg.maxForwards],
    ['expires', () => msg.expires],
    ['contentLength', () => msg.contentLength],
    ['contentType', () => msg.contentType],
    ['contact', () => msg.contact.map(nameAddr)],
    ['wildcardContact', () => msg.wildcardContact],
    ['route', () => msg.route.map(nameAddr)],
    ['recordRoute', () => msg.recordRoute.map(nameAddr)],
    ['body', () => msg.body],
    ['header', () => ['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Contact', 'Content-Length', 'Date'].map((h) => [msg.header(h), msg.headers(h)])],
    ['toBuffer', () => msg.toBuffer()],
  ];
  for (const [name, probe] of probes) {
    try {
      probe();
    } catch (err) {
      expectSipParseError(err, `accessor ${name} threw something other than SipParseError`);
    }
  }
}

const fmt = (r: Reject): string => (r === null ? 'accept' : r === 'drop' ? 'drop' : String(r));

function checkUnsupported(v: Verdict, tags: string[]): void {
  expect(v.action, 'a reply verdict').to.equal('reply');
  if (v.action !== 'reply') return;
  const listed = v.headers
    .filter(([name]) => name.toLowerCase() === 'unsupported')
    .flatMap(([, value]) => value.split(','))
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  expect([...listed].sort(), `Unsupported option tags of ${JSON.stringify(v)}`).to.deep.equal([...tags].sort());
}

interface Identity {
  isRequest: boolean;
  method: string;
  status: number;
  callId: string;
  cseq: { seq: number; method: string };
  branch: string | undefined;
  fromTag: string | undefined;
}

function identity(msg: Msg): Identity {
  return {
    isRequest: msg.isRequest,
    method: msg.method,
    status: msg.status,
    callId: msg.callId,
    cseq: { seq: msg.cseq.seq, method: msg.cseq.method },
    branch: msg.via[0]?.branch,
    fromTag: msg.from.tag,
  };
}

// ---------------------------------------------------------------------------------------------
// One describe block per case
// ---------------------------------------------------------------------------------------------

function defineCase(c: TortureCase): void {
  describe(`§${c.section} ${c.title} (${c.file})`, () => {
    if (c.parseError) {
      it('cannot be framed as SIP: parseMessage throws SipParseError', () => {
        const bytes = readFixture(c);
        let thrown: unknown;
        try {
          parseMessage(bytes);
        } catch (err) {
          thrown = err;
        }
        expect(thrown, 'parseMessage must throw').to.not.equal(undefined);
        expectSipParseError(thrown, 'parseMessage');
      });
      return;
    }

    it(`parses as a ${c.kind}, and no accessor throws anything but SipParseError`, () => {
      const msg = parseOrFail(readFixture(c));
      expect(msg.isRequest, 'isRequest').to.equal(c.kind === 'request');
      touchAll(msg);
    });

    it(`validation: ${fmt(c.reject)} — ${c.why}`, () => {
      const msg = parseOrFail(readFixture(c));
      const v = validateMessage(msg);
      expect(verdictCode(v), `verdict ${JSON.stringify(v)}`).to.deep.equal(c.reject);
      if (c.unsupported) checkUnsupported(v, c.unsupported);
    });

    if (c.proxy) {
      const proxy = c.proxy;
      it(`validation as a proxy: ${fmt(proxy.reject)} — ${proxy.why}`, () => {
        const msg = parseOrFail(readFixture(c));
        const v = validateMessage(msg, { role: 'proxy' });
        expect(verdictCode(v), `verdict ${JSON.stringify(v)}`).to.deep.equal(proxy.reject);
        if (proxy.unsupported) checkUnsupported(v, proxy.unsupported);
      });
    }

    if (c.expect) {
      const e = c.expect;
      it('exposes the values the RFC describes', () => {
        const bytes = readFixture(c);
        checkMessage(parseOrFail(bytes), e, bytes);
      });
    }

    // Every accepted message, and every other one whose framing the table describes (bodyLength):
    // untouched, it re-serializes to its own bytes.
    if (c.expect?.bodyLength !== undefined) {
      const e = c.expect;
      const trailing = e.trailingOctets ?? 0;
      it(trailing > 0 ? 'toBuffer() gives back the bytes up to the end of the declared body' : 'toBuffer() gives back the original bytes exactly', () => {
        const bytes = readFixture(c);
        const end = bodyStart(bytes) + e.bodyLength!;
        expect(end + trailing, 'message + trailing octets account for the whole datagram').to.equal(bytes.length);
        expectSameBytes(parseOrFail(bytes).toBuffer(), bytes.subarray(0, end), 'toBuffer()');
      });

      it('parse(toBuffer()) has the same method/status, Call-ID, CSeq, top branch and From tag', () => {
        const msg = parseOrFail(readFixture(c));
        const again = parseOrFail(msg.toBuffer());
        expect(identity(again)).to.deep.equal(identity(msg));
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Suites
// ---------------------------------------------------------------------------------------------

describe('RFC 4475 torture tests', () => {
  for (const c of RFC4475_CASES) defineCase(c);
});

describe('RFC 5118 IPv6 torture tests', () => {
  it('the fixtures are the archive made wire-ready: CRLF only, Content-Length = body octets', () => {
    for (const c of RFC5118_CASES) {
      const bytes = readFixture(c);
      expect(bytes.toString('latin1'), `${c.file}: a bare LF`).to.not.match(/[^\r]\n/);
      const declared = /\r\nContent-Length:[ \t]*(\d+)\r\n/i.exec(bytes.toString('latin1'));
      expect(declared, `${c.file}: Content-Length`).to.not.equal(null);
      expect(bytes.length - bodyStart(bytes), `${c.file}: body octets`).to.equal(Number(declared![1]));
    }
  });

  for (const c of RFC5118_CASES) defineCase(c);
});

describe('torture case table', () => {
  it('has exactly one entry per archive file', () => {
    for (const rfc of [4475, 5118] as const) {
      const files = readdirSync(fixtureDir(rfc))
        .filter((f) => f.endsWith('.sip'))
        .map((f) => f.slice(0, -'.sip'.length))
        .sort();
      const listed = TORTURE_CASES.filter((c) => c.rfc === rfc).map((c) => c.file).sort();
      expect(listed, `RFC ${rfc} cases`).to.deep.equal(files);
    }
    expect(TORTURE_CASES.length).to.equal(62);
  });

  it('gives every case a reason, and every accepted message its body length', () => {
    for (const c of TORTURE_CASES) {
      expect(c.why.length, `${c.file}: why`).to.be.greaterThan(0);
      if (c.reject === null && !c.parseError) expect(c.expect?.bodyLength, `${c.file}: bodyLength`).to.be.a('number');
      if (c.unsupported) expect(c.reject, `${c.file}: Unsupported goes with 420`).to.equal(420);
    }
  });
});
