// Digest authentication (docs/dum.md "Digest authentication"; RFC 7616, RFC 8760, RFC 3261 §22):
// the hash primitives against the RFCs' worked examples, the credential store, the client's
// choice of challenge and its retry rules, and the stateless-nonce authenticator, all on
// virtual time.
import { createHash, createHmac } from 'node:crypto';
import { inspect } from 'node:util';
import { expect } from 'chai';
import { parseAuthValue, parseMessage, type AuthValue, type SipMessage } from '../../src/message/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { ParleyError } from '../../src/util/errors.js';
import { MemoryCredentialStore, type CredentialStore } from '../../src/tu/dum/credential-store.js';
import { DigestAuthenticator, type AuthOutcome } from '../../src/tu/dum/digest-authenticator.js';
import { DigestClient } from '../../src/tu/dum/digest-client.js';
import {
  DIGEST_ALGORITHMS,
  DigestError,
  digestHa1,
  digestHash,
  digestResponse,
  formatDigestChallenge,
  formatDigestCredentials,
  formatNonceCount,
  parseDigestAlgorithm,
  parseQopOptions,
  quoteString,
  type DigestAlgorithm,
} from '../../src/tu/dum/digest.js';
import { sip } from '../support/sip-bytes.js';

// ---- messages -------------------------------------------------------------------------------

interface RequestSpec {
  method?: string;
  uri?: string;
  cseq?: number;
  body?: string;
  extra?: string[];
  callId?: string;
}

function request(spec: RequestSpec = {}): SipMessage {
  const method = spec.method ?? 'REGISTER';
  const body = spec.body ?? '';
  return parseMessage(
    sip(
      [
        `${method} ${spec.uri ?? 'sip:example.com'} SIP/2.0`,
        'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKoriginal1;rport',
        'Max-Forwards: 70',
        'From: <sip:alice@example.com>;tag=from1',
        'To: <sip:alice@example.com>',
        `Call-ID: ${spec.callId ?? 'call-1@192.0.2.10'}`,
        `CSeq: ${spec.cseq ?? 1} ${method}`,
        'Contact: <sip:alice@192.0.2.10:5060>',
        ...(spec.extra ?? []),
        ...(body.length > 0 ? ['Content-Type: text/plain'] : []),
        'Content-Length: {CL}',
      ],
      body,
    ),
  );
}

/** A response to `req` with the given challenge header lines (e.g. `WWW-Authenticate: Digest …`). */
function challengeTo(req: SipMessage, status: number, lines: string[]): SipMessage {
  return parseMessage(
    sip([
      `SIP/2.0 ${status} ${status === 407 ? 'Proxy Authentication Required' : 'Unauthorized'}`,
      `Via: ${req.header('via')!}`,
      `From: ${req.header('from')!}`,
      `To: ${req.header('to')!};tag=srv1`,
      `Call-ID: ${req.callId}`,
      `CSeq: ${req.header('cseq')!}`,
      ...lines,
      'Content-Length: 0',
    ]),
  );
}

function www(params: string): string {
  return `WWW-Authenticate: Digest ${params}`;
}

function only<T>(values: T[]): T {
  expect(values).to.have.length(1);
  return values[0]!;
}

/** The one Authorization (or Proxy-Authorization) value of a request. */
function auth(req: SipMessage, proxy = false): Record<string, string> {
  return { ...only(proxy ? req.proxyAuthorization : req.authorization).params };
}

const md5 = (text: string): string => createHash('md5').update(text).digest('hex');
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(ParleyError);
    expect((error as ParleyError).code).to.equal(code);
    return;
  }
  expect.fail(`expected an error with code ${code}`);
}

/** The response a server would compute for `params`, taken from the header (nothing trusted from the client code). */
function recompute(req: SipMessage, params: Record<string, string>, password: string, algorithm: DigestAlgorithm): string {
  return digestResponse({
    algorithm,
    ha1: digestHa1(algorithm, params.username!, params.realm!, password),
    nonce: params.nonce!,
    method: req.method,
    uri: params.uri!,
    qop: params.qop as 'auth' | 'auth-int' | undefined,
    nc: params.nc,
    cnonce: params.cnonce,
    body: req.body,
  });
}

// ---- primitives ------------------------------------------------------------------------------

describe('digest primitives (RFC 7616 §3.3–3.4)', () => {
  it('hashes: MD5 and SHA-256 of "" (RFC 3261 §22.4 item 7, RFC 8760 §2.6 item 7), SHA-512/256 (FIPS 180-4)', () => {
    expect(digestHash('MD5', '')).to.equal('d41d8cd98f00b204e9800998ecf8427e');
    expect(digestHash('SHA-256', '')).to.equal('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    // FIPS 180-4 SHA-512/256 (its own IVs, not SHA-512 cut short): the "abc" example and "".
    expect(digestHash('SHA-512-256', 'abc')).to.equal('53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23');
    expect(digestHash('SHA-512-256', '')).to.equal('c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a');
    expect(createHash('sha512').update('abc').digest('hex').slice(0, 64)).to.not.equal(digestHash('SHA-512-256', 'abc'));
    // The -sess variants use the same hash; bytes hash like the equal string.
    expect(digestHash('SHA-256-sess', 'abc')).to.equal(digestHash('SHA-256', 'abc'));
    expect(digestHash('MD5', Buffer.from('abc'))).to.equal(digestHash('MD5', 'abc'));
  });

  it('strings are hashed as UTF-8 (RFC 7616 §4)', () => {
    expect(digestHash('SHA-256', 'J\u00e4s\u00f8n')).to.equal(createHash('sha256').update(Buffer.from([0x4a, 0xc3, 0xa4, 0x73, 0xc3, 0xb8, 0x6e])).digest('hex'));
  });

  it('RFC 2617 §3.5: Mufasa / "Circle Of Life", qop=auth → 6629fae4…', () => {
    const ha1 = digestHa1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle Of Life');
    expect(ha1).to.equal('939e7578ed9e3c518a452acee763bce9');
    const response = digestResponse({
      algorithm: 'MD5',
      ha1,
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
      method: 'GET',
      uri: '/dir/index.html',
      qop: 'auth',
      nc: '00000001',
      cnonce: '0a4f113b',
    });
    expect(response).to.equal('6629fae49393a05397450978507c4ef1');
  });

  describe('RFC 7616 §3.9.1: Mufasa / "Circle of Life" at http-auth@example.org', () => {
    const input = {
      nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
      method: 'GET',
      uri: '/dir/index.html',
      qop: 'auth' as const,
      nc: '00000001',
      cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    };

    it('MD5 → 8ca523f5e9506fed4657c9700eebdbec', () => {
      const ha1 = digestHa1('MD5', 'Mufasa', 'http-auth@example.org', 'Circle of Life');
      expect(digestResponse({ ...input, algorithm: 'MD5', ha1 })).to.equal('8ca523f5e9506fed4657c9700eebdbec');
    });

    it('SHA-256 → 753927fa…5856cb6c1', () => {
      const ha1 = digestHa1('SHA-256', 'Mufasa', 'http-auth@example.org', 'Circle of Life');
      expect(digestResponse({ ...input, algorithm: 'SHA-256', ha1 })).to.equal(
        '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
      );
    });

    it('the HA1 is taken as hex in any case', () => {
      const ha1 = digestHa1('MD5', 'Mufasa', 'http-auth@example.org', 'Circle of Life').toUpperCase();
      expect(digestResponse({ ...input, algorithm: 'MD5', ha1 })).to.equal('8ca523f5e9506fed4657c9700eebdbec');
    });
  });

  it('SHA-512-256 response: KD over SHA-512/256 (a value composed step by step)', () => {
    const H = (s: string): string => createHash('sha512-256').update(s).digest('hex');
    const ha1 = H('alice:example.com:secret');
    expect(digestHa1('SHA-512-256', 'alice', 'example.com', 'secret')).to.equal(ha1);
    const expected = H(`${ha1}:n0nce:0000000a:c1:auth:${H('REGISTER:sip:example.com')}`);
    expect(
      digestResponse({ algorithm: 'SHA-512-256', ha1, nonce: 'n0nce', method: 'REGISTER', uri: 'sip:example.com', qop: 'auth', nc: '0000000a', cnonce: 'c1' }),
    ).to.equal(expected);
  });

  it('-sess: the stored HA1 is the base one; the session key H(HA1:nonce:cnonce) is derived per request (RFC 7616 §3.4.2)', () => {
    expect(digestHa1('SHA-256-sess', 'alice', 'example.com', 'secret')).to.equal(digestHa1('SHA-256', 'alice', 'example.com', 'secret'));
    const ha1 = sha256('alice:example.com:secret');
    const session = sha256(`${ha1}:N:C`);
    const expected = sha256(`${session}:N:00000001:C:auth:${sha256('INVITE:sip:bob@example.com')}`);
    expect(
      digestResponse({ algorithm: 'SHA-256-sess', ha1, nonce: 'N', method: 'INVITE', uri: 'sip:bob@example.com', qop: 'auth', nc: '00000001', cnonce: 'C' }),
    ).to.equal(expected);
    const md5Session = md5(`${md5('alice:example.com:secret')}:N:C`);
    expect(
      digestResponse({ algorithm: 'MD5-sess', ha1: md5('alice:example.com:secret'), nonce: 'N', method: 'INVITE', uri: 'sip:bob@example.com', qop: 'auth', nc: '00000001', cnonce: 'C' }),
    ).to.equal(md5(`${md5Session}:N:00000001:C:auth:${md5('INVITE:sip:bob@example.com')}`));
  });

  it('auth-int: A2 = Method:uri:H(body); an empty body hashes as H("") (RFC 7616 §3.4.3, RFC 8760 §2.6 item 7)', () => {
    const ha1 = sha256('alice:example.com:secret');
    const base = { algorithm: 'SHA-256' as const, ha1, nonce: 'N', method: 'MESSAGE', uri: 'sip:bob@example.com', qop: 'auth-int' as const, nc: '00000001', cnonce: 'C' };
    const withBody = sha256(`${ha1}:N:00000001:C:auth-int:${sha256(`MESSAGE:sip:bob@example.com:${sha256('hello')}`)}`);
    expect(digestResponse({ ...base, body: Buffer.from('hello') })).to.equal(withBody);
    expect(digestResponse({ ...base, body: 'hello' })).to.equal(withBody);
    const empty = sha256(`${ha1}:N:00000001:C:auth-int:${sha256('MESSAGE:sip:bob@example.com:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')}`);
    expect(digestResponse(base)).to.equal(empty);
    expect(digestResponse({ ...base, qop: 'auth' })).to.not.equal(empty);
  });

  it('no qop: RFC 2069 response KD(HA1, nonce:H(A2)) (RFC 2069 §2.4 example inputs, password CircleOfLife)', () => {
    const ha1 = digestHa1('MD5', 'Mufasa', 'testrealm@host.com', 'CircleOfLife');
    const response = digestResponse({ algorithm: 'MD5', ha1, nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', method: 'GET', uri: '/dir/index.html' });
    expect(response).to.equal(md5(`${ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:${md5('GET:/dir/index.html')}`));
    expect(response).to.equal('1949323746fe6a43ef61f9606e7febea');
  });

  it('refuses -sess without qop/cnonce (RFC 3261 §22.4 item 8) and qop without nc/cnonce', () => {
    expectCode(() => digestResponse({ algorithm: 'MD5-sess', ha1: md5('x'), nonce: 'n', method: 'GET', uri: '/' }), 'DIGEST_BAD_VALUE');
    expectCode(() => digestResponse({ algorithm: 'MD5', ha1: md5('x'), nonce: 'n', method: 'GET', uri: '/', qop: 'auth' }), 'DIGEST_BAD_VALUE');
    expect(() => digestResponse({ algorithm: 'MD5', ha1: md5('x'), nonce: 'n', method: 'GET', uri: '/', qop: 'auth' })).to.throw(DigestError);
  });

  it('algorithm tokens: absent = MD5, any case, unknown = undefined; DIGEST_ALGORITHMS strongest first', () => {
    expect(parseDigestAlgorithm(undefined)).to.equal('MD5');
    expect(parseDigestAlgorithm('md5-sess')).to.equal('MD5-sess');
    expect(parseDigestAlgorithm('sha-512-256')).to.equal('SHA-512-256');
    expect(parseDigestAlgorithm('SHA-1')).to.equal(undefined);
    expect(parseDigestAlgorithm('SHA-512')).to.equal(undefined);
    expect(DIGEST_ALGORITHMS).to.deep.equal(['SHA-512-256', 'SHA-512-256-sess', 'SHA-256', 'SHA-256-sess', 'MD5', 'MD5-sess']);
  });

  it('qop options: split, trimmed, lowercased, unknown ones dropped', () => {
    expect(parseQopOptions('auth, auth-int')).to.deep.equal(['auth', 'auth-int']);
    expect(parseQopOptions('AUTH-INT,auth-conf')).to.deep.equal(['auth-int']);
    expect(parseQopOptions(undefined)).to.equal(undefined);
  });

  it('nc is 8 lowercase hex digits (RFC 7616 §3.4)', () => {
    expect(formatNonceCount(1)).to.equal('00000001');
    expect(formatNonceCount(255)).to.equal('000000ff');
    expect(formatNonceCount(0xffffffff)).to.equal('ffffffff');
    expectCode(() => formatNonceCount(0), 'DIGEST_BAD_VALUE');
    expectCode(() => formatNonceCount(2 ** 32), 'DIGEST_BAD_VALUE');
  });

  it('quoted-strings escape " and \\, refuse CR/LF, and read back unchanged', () => {
    expect(quoteString('plain')).to.equal('"plain"');
    expect(quoteString('a"b\\c')).to.equal('"a\\"b\\\\c"');
    expectCode(() => quoteString('a\r\nVia: x'), 'DIGEST_BAD_VALUE');
    const value = parseAuthValue(`Digest username=${quoteString('we"ird\\name, x')}, realm="r"`, 'authorization');
    expect(value.params.username).to.equal('we"ird\\name, x');
  });

  it('challenge values: realm/nonce/opaque/qop quoted, algorithm/stale not (RFC 7616 §3.3)', () => {
    expect(formatDigestChallenge({ realm: 'example.com', nonce: 'abc', opaque: 'op', algorithm: 'SHA-256', qop: ['auth', 'auth-int'], stale: true })).to.equal(
      'Digest realm="example.com", nonce="abc", opaque="op", algorithm=SHA-256, qop="auth,auth-int", stale=true',
    );
    expect(formatDigestChallenge({ realm: 'r', nonce: 'n' })).to.equal('Digest realm="r", nonce="n"');
  });

  it('credentials values: username/realm/nonce/uri/response/cnonce/opaque quoted, algorithm/qop/nc not (RFC 7616 §3.4)', () => {
    expect(
      formatDigestCredentials({
        username: 'bob',
        realm: 'biloxi.com',
        nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
        uri: 'sip:bob@biloxi.com',
        response: '6629fae49393a05397450978507c4ef1',
        algorithm: 'MD5',
        cnonce: '0a4f113b',
        opaque: '5ccc069c403ebaf9f0171e9517f40e41',
        qop: 'auth',
        nc: '00000001',
      }),
    ).to.equal(
      'Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", ' +
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001',
    );
  });
});

// ---- credential store ------------------------------------------------------------------------

/** Every string reachable from `value`, through objects, arrays, Maps and Sets. */
function reachableStrings(value: unknown, out: string[] = [], seen = new Set<unknown>()): string[] {
  if (typeof value === 'string') out.push(value);
  if (typeof value !== 'object' || value === null || seen.has(value)) return out;
  seen.add(value);
  if (value instanceof Map) for (const [k, v] of value) reachableStrings([k, v], out, seen);
  else if (value instanceof Set) for (const v of value) reachableStrings(v, out, seen);
  for (const key of Reflect.ownKeys(value)) reachableStrings((value as Record<string | symbol, unknown>)[key], out, seen);
  return out;
}

describe('MemoryCredentialStore', () => {
  const PASSWORD = 'Pass-phrase 7 of alice';

  it('add() keeps one HA1 per hash family; -sess looks up its base; others are unknown', () => {
    const store = new MemoryCredentialStore();
    store.add('alice', 'example.com', PASSWORD);
    for (const algorithm of DIGEST_ALGORITHMS) {
      expect(store.lookup('alice', 'example.com', algorithm), algorithm).to.equal(digestHa1(algorithm, 'alice', 'example.com', PASSWORD));
    }
    expect(store.lookup('alice', 'example.com', 'MD5')).to.equal(md5(`alice:example.com:${PASSWORD}`));
    expect(store.lookup('alice', 'example.com', 'SHA-256-sess')).to.equal(sha256(`alice:example.com:${PASSWORD}`));
    expect(store.lookup('Alice', 'example.com', 'MD5')).to.equal(undefined);
    expect(store.lookup('alice', 'EXAMPLE.COM', 'MD5')).to.equal(undefined);
    expect(store.lookup('bob', 'example.com', 'MD5')).to.equal(undefined);
  });

  it('never holds the password (inspect, JSON and every reachable string)', () => {
    const store = new MemoryCredentialStore();
    store.add('alice', 'example.com', PASSWORD);
    store.add('bob', 'example.com', PASSWORD);
    expect(inspect(store, { depth: Infinity, showHidden: true })).to.not.include(PASSWORD);
    expect(JSON.stringify(store)).to.not.include(PASSWORD);
    const strings = reachableStrings(store);
    expect(strings).to.include(digestHa1('SHA-512-256', 'alice', 'example.com', PASSWORD));
    expect(strings.some((s) => s.includes(PASSWORD))).to.equal(false);
  });

  it('addHashes(): any hex case, merged, a -sess key stands for its family; bad input refused', () => {
    const store = new MemoryCredentialStore();
    const ha1md5 = md5('carol:example.com:pw');
    const ha1sha = sha256('carol:example.com:pw');
    store.addHashes('carol', 'example.com', { MD5: ha1md5.toUpperCase() });
    store.addHashes('carol', 'example.com', { 'SHA-256-sess': ha1sha });
    expect(store.lookup('carol', 'example.com', 'MD5-sess')).to.equal(ha1md5);
    expect(store.lookup('carol', 'example.com', 'SHA-256')).to.equal(ha1sha);
    expect(store.lookup('carol', 'example.com', 'SHA-512-256')).to.equal(undefined);
    expectCode(() => store.addHashes('carol', 'example.com', { MD5: 'abc' }), 'DIGEST_BAD_CONFIG');
    expectCode(() => store.addHashes('carol', 'example.com', { 'SHA-256': ha1md5 }), 'DIGEST_BAD_CONFIG');
    expectCode(() => store.addHashes('carol', 'example.com', { MD5: ha1md5, 'MD5-sess': md5('other') }), 'DIGEST_BAD_CONFIG');
    expectCode(() => store.addHashes('carol', 'example.com', { 'SHA-1': ha1sha } as never), 'DIGEST_BAD_CONFIG');
  });

  it('add() replaces a user; remove() forgets only that user in that realm', () => {
    const store = new MemoryCredentialStore();
    store.add('alice', 'example.com', 'one');
    store.add('alice', 'example.com', 'two');
    store.add('alice', 'other.example', 'one');
    expect(store.lookup('alice', 'example.com', 'MD5')).to.equal(md5('alice:example.com:two'));
    store.remove('alice', 'example.com');
    store.remove('nobody', 'nowhere');
    expect(store.lookup('alice', 'example.com', 'MD5')).to.equal(undefined);
    expect(store.lookup('alice', 'other.example', 'MD5')).to.equal(md5('alice:other.example:one'));
  });
});

// ---- client ----------------------------------------------------------------------------------

describe('DigestClient', () => {
  const alice = { username: 'alice', password: 'secret' };

  it('answers with a clone: CSeq + 1, a new top Via branch, the rest unchanged; the original untouched', () => {
    const client = new DigestClient([alice]);
    const req = request({ cseq: 7 });
    const before = req.toString();
    const next = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", qop="auth", algorithm=MD5')]))!;
    expect(next).to.not.equal(undefined);
    expect(next).to.not.equal(req);
    expect(req.toString()).to.equal(before);
    expect(next.cseq).to.deep.include({ seq: 8, method: 'REGISTER' });
    const [via] = next.via;
    expect(via!.branch).to.match(/^z9hG4bK/);
    expect(via!.branch).to.not.equal('z9hG4bKoriginal1');
    expect(via!.host).to.equal('192.0.2.10');
    expect(next.via).to.have.length(1);
    expect(next.callId).to.equal(req.callId);
    expect(next.from.tag).to.equal('from1');
    expect(next.header('contact')).to.equal(req.header('contact'));
    expect(next.requestUriText).to.equal('sip:example.com');
  });

  it('writes the credentials of RFC 7616 §3.4 and a response the server can recompute', () => {
    const client = new DigestClient([alice]);
    const req = request();
    const next = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", opaque="op\\"aque", qop="auth", algorithm=SHA-256')]))!;
    const text = only(next.headers('authorization'));
    expect(text).to.match(
      /^Digest username="alice", realm="example\.com", nonce="n1", uri="sip:example\.com", response="[0-9a-f]{64}", algorithm=SHA-256, cnonce="[^"]+", opaque="op\\"aque", qop=auth, nc=00000001$/,
    );
    const params = auth(next);
    expect(params.opaque).to.equal('op"aque');
    expect(params.response).to.equal(recompute(next, params, 'secret', 'SHA-256'));
  });

  describe('choosing among challenges for one realm (RFC 8760 §2.4; docs/dum.md: strongest)', () => {
    const realm = 'realm="example.com", nonce="n1", qop="auth"';

    it('SHA-512-256 over SHA-256 over MD5, whatever the order', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const next = client.authorize(req, challengeTo(req, 401, [www(`${realm}, algorithm=MD5`), www(`${realm}, algorithm=SHA-256`), www(`${realm}, algorithm=SHA-512-256`)]))!;
      const params = auth(next);
      expect(params.algorithm).to.equal('SHA-512-256');
      expect(params.response).to.have.length(64);
      expect(params.response).to.equal(recompute(next, params, 'secret', 'SHA-512-256'));
    });

    it('SHA-256 over MD5', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const next = client.authorize(req, challengeTo(req, 401, [www(`${realm}, algorithm=MD5`), www(`${realm}, algorithm=SHA-256`)]))!;
      expect(auth(next).algorithm).to.equal('SHA-256');
    });

    it('between equals (SHA-256 and SHA-256-sess) keeps the server order', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const next = client.authorize(req, challengeTo(req, 401, [www(`${realm}, algorithm=SHA-256-sess`), www(`${realm}, algorithm=SHA-256`)]))!;
      const params = auth(next);
      expect(params.algorithm).to.equal('SHA-256-sess');
      expect(params.response).to.equal(recompute(next, params, 'secret', 'SHA-256-sess'));
    });

    it('ignores unknown algorithms, other schemes and malformed challenges (RFC 8760 §2.4, RFC 7616 §3.3)', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const next = client.authorize(
        req,
        challengeTo(req, 401, [
          www(`${realm}, algorithm=SHA-3-512`),
          'WWW-Authenticate: Basic realm="example.com"',
          'WWW-Authenticate: Digest realm="example.com" nonce=broken',
          www(`${realm}, algorithm=SHA-1`),
          www(`${realm}, algorithm=md5`),
        ]),
      )!;
      const params = auth(next);
      expect(params.algorithm).to.equal('md5'); // echoed as the server wrote it (RFC 7616 §3.4)
      expect(params.response).to.equal(recompute(next, params, 'secret', 'MD5'));
    });

    it('no algorithm parameter means MD5, and none is sent back', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const next = client.authorize(req, challengeTo(req, 401, [www(realm)]))!;
      const params = auth(next);
      expect(params).to.not.have.property('algorithm');
      expect(params.response).to.have.length(32);
      expect(params.response).to.equal(recompute(next, params, 'secret', 'MD5'));
    });

    it('nothing understood: undefined', () => {
      const client = new DigestClient([alice]);
      const req = request();
      expect(client.authorize(req, challengeTo(req, 401, [www(`${realm}, algorithm=SHA-1`), 'WWW-Authenticate: Basic realm="x"']))).to.equal(undefined);
      expect(client.authorize(req, challengeTo(req, 401, []))).to.equal(undefined);
      // -sess needs a cnonce, so a qop (RFC 3261 §22.4 item 8): without one it is not answerable.
      expect(client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", algorithm=MD5-sess')]))).to.equal(undefined);
      // Only unknown qop options: there is nothing this client can send back.
      expect(client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", qop="auth-conf"')]))).to.equal(undefined);
    });
  });

  describe('qop', () => {
    it('"auth, auth-int" → auth', () => {
      const client = new DigestClient([alice]);
      const req = request({ method: 'MESSAGE', uri: 'sip:bob@example.com', body: 'hello' });
      const next = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", qop="auth, auth-int", algorithm=SHA-256')]))!;
      expect(auth(next).qop).to.equal('auth');
    });

    it('only auth-int → auth-int, with the body hashed into A2', () => {
      const client = new DigestClient([alice]);
      const req = request({ method: 'MESSAGE', uri: 'sip:bob@example.com', body: 'hello' });
      const next = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", qop="auth-int", algorithm=SHA-256')]))!;
      const p = auth(next);
      expect(p.qop).to.equal('auth-int');
      const ha1 = sha256('alice:example.com:secret');
      const a2 = `MESSAGE:sip:bob@example.com:${sha256('hello')}`;
      expect(p.response).to.equal(sha256(`${ha1}:n1:${p.nc!}:${p.cnonce!}:auth-int:${sha256(a2)}`));
      // The same credentials over another body would not verify.
      expect(p.response).to.not.equal(digestResponse({ algorithm: 'SHA-256', ha1, nonce: 'n1', method: 'MESSAGE', uri: 'sip:bob@example.com', qop: 'auth-int', nc: p.nc!, cnonce: p.cnonce!, body: 'hellO' }));
    });

    it('no qop in the challenge: RFC 2069 credentials (no qop, nc or cnonce)', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const next = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", opaque="o"')]))!;
      const p = auth(next);
      expect(Object.keys(p).sort()).to.deep.equal(['nonce', 'opaque', 'realm', 'response', 'uri', 'username']);
      expect(p.response).to.equal(md5(`${md5('alice:example.com:secret')}:n1:${md5('REGISTER:sip:example.com')}`));
    });
  });

  describe('nonce counts and cnonces', () => {
    it('nc counts per nonce: 00000001, then 00000002 and 00000003 pre-emptively; a new nonce restarts at 00000001', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const first = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", qop="auth"')]))!;
      expect(auth(first).nc).to.equal('00000001');
      const refresh = request({ cseq: 3 });
      expect(client.preauthorize(refresh)).to.equal(1);
      const p2 = auth(refresh);
      expect(p2).to.include({ nc: '00000002', nonce: 'n1', realm: 'example.com' });
      expect(p2.response).to.equal(recompute(refresh, p2, 'secret', 'MD5'));
      const again = request({ cseq: 4 });
      client.preauthorize(again);
      expect(auth(again).nc).to.equal('00000003');

      const stale = client.authorize(again, challengeTo(again, 401, [www('realm="example.com", nonce="n2", qop="auth", stale=true')]))!;
      expect(auth(stale)).to.include({ nc: '00000001', nonce: 'n2' });
      const later = request({ cseq: 6 });
      client.preauthorize(later);
      expect(auth(later)).to.include({ nc: '00000002', nonce: 'n2' });
    });

    it('a fresh cnonce per request', () => {
      const client = new DigestClient([alice]);
      const req = request();
      const first = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n1", qop="auth"')]))!;
      const second = request({ cseq: 3 });
      client.preauthorize(second);
      const a = auth(first).cnonce!;
      const b = auth(second).cnonce!;
      expect(a).to.match(/^\S{16,}$/);
      expect(b).to.not.equal(a);
    });
  });

  describe('retries (RFC 3261 §22.1, RFC 7616 §3.3 stale)', () => {
    it('stale=true: retries with the new nonce even though the realm was answered before', () => {
      const client = new DigestClient([alice]);
      const r1 = request();
      const r2 = client.authorize(r1, challengeTo(r1, 401, [www('realm="example.com", nonce="n1", qop="auth"')]))!;
      const r3 = client.authorize(r2, challengeTo(r2, 401, [www('realm="example.com", nonce="n2", qop="auth", stale=TRUE')]))!;
      expect(r3).to.not.equal(undefined);
      expect(r3.cseq.seq).to.equal(3);
      expect(auth(r3)).to.include({ nonce: 'n2', nc: '00000001' });
      expect(r3.headers('authorization')).to.have.length(1);
    });

    it('challenged again without stale after answering: undefined (wrong credentials, no loop)', () => {
      const client = new DigestClient([alice]);
      const r1 = request();
      const r2 = client.authorize(r1, challengeTo(r1, 401, [www('realm="example.com", nonce="n1", qop="auth"')]))!;
      expect(client.authorize(r2, challengeTo(r2, 401, [www('realm="example.com", nonce="n2", qop="auth"')]))).to.equal(undefined);
      expect(client.authorize(r2, challengeTo(r2, 401, [www('realm="example.com", nonce="n2", qop="auth", stale=false')]))).to.equal(undefined);
    });

    it('stale=true with the very nonce that was used: undefined', () => {
      const client = new DigestClient([alice]);
      const r1 = request();
      const r2 = client.authorize(r1, challengeTo(r1, 401, [www('realm="example.com", nonce="n1", qop="auth"')]))!;
      expect(client.authorize(r2, challengeTo(r2, 401, [www('realm="example.com", nonce="n1", qop="auth", stale=true')]))).to.equal(undefined);
    });

    it('a server that says stale forever is given up on', () => {
      const client = new DigestClient([alice]);
      let r = request();
      r = client.authorize(r, challengeTo(r, 401, [www('realm="example.com", nonce="n0", qop="auth"')]))!;
      let answered = 0;
      for (let i = 1; i <= 10; i++) {
        const next = client.authorize(r, challengeTo(r, 401, [www(`realm="example.com", nonce="s${i}", qop="auth", stale=true`)]));
        if (!next) break;
        answered++;
        r = next;
      }
      expect(answered).to.equal(3);
    });

    it('pre-emptive credentials refused without stale are not "rejected credentials": the challenge is answered once', () => {
      const client = new DigestClient([alice]);
      const r1 = request();
      client.authorize(r1, challengeTo(r1, 401, [www('realm="example.com", nonce="n1", qop="auth"')]));
      const refresh = request({ cseq: 5 });
      client.preauthorize(refresh);
      // e.g. the registrar restarted and no longer knows n1
      const retry = client.authorize(refresh, challengeTo(refresh, 401, [www('realm="example.com", nonce="n9", qop="auth"')]))!;
      expect(retry).to.not.equal(undefined);
      expect(auth(retry)).to.include({ nonce: 'n9', nc: '00000001' });
      expect(retry.headers('authorization')).to.have.length(1);
      expect(client.authorize(retry, challengeTo(retry, 401, [www('realm="example.com", nonce="n10", qop="auth"')]))).to.equal(undefined);
    });

    it('a new request challenged again (no credentials of ours in it) is answered', () => {
      const client = new DigestClient([alice]);
      const r1 = request();
      client.authorize(r1, challengeTo(r1, 401, [www('realm="example.com", nonce="n1", qop="auth"')]));
      const other = request({ method: 'MESSAGE', uri: 'sip:bob@example.com', callId: 'call-2' });
      const next = client.authorize(other, challengeTo(other, 401, [www('realm="example.com", nonce="n1", qop="auth"')]))!;
      expect(auth(next)).to.include({ uri: 'sip:bob@example.com', nc: '00000002' });
    });
  });

  describe('credentials and realms', () => {
    it('a credential with a realm is used only there; one without a realm anywhere; the realm-specific one first', () => {
      const client = new DigestClient([
        { username: 'any-user', password: 'any-pw' },
        { username: 'a-user', password: 'a-pw', realm: 'a.example' },
      ]);
      const req = request();
      const a = client.authorize(req, challengeTo(req, 401, [www('realm="a.example", nonce="n", qop="auth"')]))!;
      expect(auth(a).username).to.equal('a-user');
      expect(auth(a).response).to.equal(recompute(a, auth(a), 'a-pw', 'MD5'));
      const b = client.authorize(req, challengeTo(req, 401, [www('realm="b.example", nonce="n", qop="auth"')]))!;
      expect(auth(b).username).to.equal('any-user');
      expect(auth(b).response).to.equal(recompute(b, auth(b), 'any-pw', 'MD5'));
    });

    it('no credential for the realm: undefined', () => {
      const client = new DigestClient([{ username: 'a-user', password: 'a-pw', realm: 'a.example' }]);
      const req = request();
      expect(client.authorize(req, challengeTo(req, 401, [www('realm="b.example", nonce="n", qop="auth"')]))).to.equal(undefined);
      expect(new DigestClient([]).authorize(req, challengeTo(req, 401, [www('realm="a.example", nonce="n", qop="auth"')]))).to.equal(undefined);
    });

    it('a 401 with two realms: one Authorization per realm, each with its credential', () => {
      const client = new DigestClient([
        { username: 'a-user', password: 'a-pw', realm: 'a.example' },
        { username: 'b-user', password: 'b-pw', realm: 'b.example' },
      ]);
      const req = request();
      const next = client.authorize(
        req,
        challengeTo(req, 401, [
          www('realm="a.example", nonce="na", qop="auth", algorithm=SHA-256'),
          www('realm="b.example", nonce="nb", qop="auth", algorithm=MD5'),
          www('realm="a.example", nonce="na", qop="auth", algorithm=MD5'),
        ]),
      )!;
      const values = next.authorization.map((v) => ({ ...v.params }));
      expect(values.map((v) => [v.realm, v.username, v.nonce, v.algorithm])).to.deep.equal([
        ['a.example', 'a-user', 'na', 'SHA-256'],
        ['b.example', 'b-user', 'nb', 'MD5'],
      ]);
      expect(values[0]!.response).to.equal(recompute(next, values[0]!, 'a-pw', 'SHA-256'));
      expect(values[1]!.response).to.equal(recompute(next, values[1]!, 'b-pw', 'MD5'));
    });

    it('two realms, one without credentials: undefined', () => {
      const client = new DigestClient([{ username: 'a-user', password: 'a-pw', realm: 'a.example' }]);
      const req = request();
      expect(
        client.authorize(req, challengeTo(req, 401, [www('realm="a.example", nonce="na", qop="auth"'), www('realm="b.example", nonce="nb", qop="auth"')])),
      ).to.equal(undefined);
    });

    it('a 407: Proxy-Authorization (RFC 3261 §22.3)', () => {
      const client = new DigestClient([alice]);
      const req = request({ method: 'INVITE', uri: 'sip:bob@example.com' });
      const next = client.authorize(req, challengeTo(req, 407, ['Proxy-Authenticate: Digest realm="proxy.example", nonce="pn", qop="auth", algorithm=SHA-256']))!;
      expect(next.headers('authorization')).to.deep.equal([]);
      const p = auth(next, true);
      expect(p).to.include({ realm: 'proxy.example', username: 'alice', uri: 'sip:bob@example.com', nc: '00000001' });
      expect(p.response).to.equal(recompute(next, p, 'secret', 'SHA-256'));
    });

    it('a 401 from a forking proxy carrying both WWW- and Proxy-Authenticate: both answered', () => {
      const client = new DigestClient([alice]);
      const req = request({ method: 'INVITE', uri: 'sip:bob@example.com' });
      const next = client.authorize(
        req,
        challengeTo(req, 401, [www('realm="example.com", nonce="w", qop="auth"'), 'Proxy-Authenticate: Digest realm="proxy.example", nonce="p", qop="auth"']),
      )!;
      expect(auth(next)).to.include({ realm: 'example.com', nonce: 'w' });
      expect(auth(next, true)).to.include({ realm: 'proxy.example', nonce: 'p' });
    });

    it('replaces the credentials for a challenged realm and keeps those for other realms', () => {
      const client = new DigestClient([alice]);
      const req = request({
        extra: [
          'Authorization: Digest username="alice", realm="example.com", nonce="old", uri="sip:example.com", response="00", qop=auth, nc=00000001, cnonce="x"',
          'Authorization: Digest username="alice", realm="elsewhere.example", nonce="keep", uri="sip:example.com", response="11"',
        ],
      });
      const next = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="new", qop="auth"')]))!;
      const values = next.authorization.map((v: AuthValue) => [v.params.realm, v.params.nonce]);
      expect(values).to.deep.equal([
        ['elsewhere.example', 'keep'],
        ['example.com', 'new'],
      ]);
    });

    it('usernames are written as quoted-strings; CR/LF in a credential is refused up front', () => {
      const client = new DigestClient([{ username: 'al"ice\\x', password: 'pw' }]);
      const req = request();
      const next = client.authorize(req, challengeTo(req, 401, [www('realm="example.com", nonce="n", qop="auth"')]))!;
      expect(only(next.headers('authorization'))).to.include('username="al\\"ice\\\\x"');
      const p = auth(next);
      expect(p.username).to.equal('al"ice\\x');
      expect(p.response).to.equal(recompute(next, p, 'pw', 'MD5'));
      expect(() => new DigestClient([{ username: 'a\r\nX-Evil: 1', password: 'pw' }])).to.throw(DigestError).with.property('code', 'DIGEST_BAD_CONFIG');
    });
  });

  describe('preauthorize', () => {
    it('does nothing before any challenge', () => {
      const client = new DigestClient([alice]);
      const req = request();
      expect(client.preauthorize(req)).to.equal(0);
      expect(req.hasHeader('authorization')).to.equal(false);
    });

    it('adds credentials for every realm challenged before (or only the hinted one), replacing old ones', () => {
      const client = new DigestClient([alice]);
      const r1 = request();
      client.authorize(r1, challengeTo(r1, 401, [www('realm="example.com", nonce="n1", opaque="o1", qop="auth", algorithm=SHA-256')]));
      const r2 = request({ method: 'INVITE', uri: 'sip:bob@example.com' });
      client.authorize(r2, challengeTo(r2, 407, ['Proxy-Authenticate: Digest realm="proxy.example", nonce="p1", qop="auth"']));

      const refresh = request({
        cseq: 9,
        extra: ['Authorization: Digest username="alice", realm="example.com", nonce="n0", uri="sip:example.com", response="00"'],
      });
      expect(client.preauthorize(refresh)).to.equal(2);
      const p = auth(refresh);
      expect(p).to.include({ realm: 'example.com', nonce: 'n1', opaque: 'o1', algorithm: 'SHA-256', nc: '00000002', qop: 'auth', uri: 'sip:example.com' });
      expect(p.response).to.equal(recompute(refresh, p, 'secret', 'SHA-256'));
      expect(auth(refresh, true)).to.include({ realm: 'proxy.example', nonce: 'p1', nc: '00000002' });
      expect(refresh.cseq.seq).to.equal(9); // a new request: CSeq and branch are the caller's
      expect(refresh.via[0]!.branch).to.equal('z9hG4bKoriginal1');

      const hinted = request({ cseq: 10 });
      expect(client.preauthorize(hinted, 'proxy.example')).to.equal(1);
      expect(hinted.hasHeader('authorization')).to.equal(false);
      expect(auth(hinted, true)).to.include({ realm: 'proxy.example', nc: '00000003' });
    });

    it('qop=auth-int pre-emptively hashes the new request body', () => {
      const client = new DigestClient([alice]);
      const r1 = request({ method: 'MESSAGE', uri: 'sip:bob@example.com', body: 'one' });
      client.authorize(r1, challengeTo(r1, 401, [www('realm="example.com", nonce="n1", qop="auth-int"')]));
      const r2 = request({ method: 'MESSAGE', uri: 'sip:bob@example.com', body: 'two', cseq: 5 });
      client.preauthorize(r2);
      const p = auth(r2);
      expect(p.qop).to.equal('auth-int');
      expect(p.response).to.equal(recompute(r2, p, 'secret', 'MD5'));
    });
  });
});

// ---- server ----------------------------------------------------------------------------------

const REALM = 'example.com';
const SECRET = Buffer.alloc(32, 7);

function server(options: Partial<ConstructorParameters<typeof DigestAuthenticator>[0]> = {}): {
  authenticator: DigestAuthenticator;
  clock: ManualClock;
  store: MemoryCredentialStore;
} {
  const clock = new ManualClock(1_000_000);
  const store = new MemoryCredentialStore();
  store.add('alice', REALM, 'secret');
  const authenticator = new DigestAuthenticator({ realm: REALM, credentials: store, clock, secret: SECRET, ...options });
  return { authenticator, clock, store };
}

function refused(outcome: AuthOutcome): Extract<AuthOutcome, { ok: false }> {
  expect(outcome.ok, 'outcome').to.equal(false);
  return outcome as Extract<AuthOutcome, { ok: false }>;
}

const CHALLENGE = /^Digest realm="example\.com", nonce="([A-Za-z0-9_-]{48})", opaque="([A-Za-z0-9_-]+)", algorithm=([A-Z0-9-]+(?:-sess)?), qop="([a-z,-]+)"(, stale=true)?$/;

/** Takes a challenged request through the client: the request to send next. */
function answer(client: DigestClient, req: SipMessage, challenge: SipMessage): SipMessage {
  const next = client.authorize(req, challenge);
  expect(next, 'the client answers the challenge').to.not.equal(undefined);
  return next!;
}

/** Parameters quoted in credentials (RFC 7616 §3.4); the rest are tokens. */
const QUOTED = new Set(['username', 'realm', 'nonce', 'uri', 'response', 'cnonce', 'opaque']);

/** A copy of `req` with one parameter of its Authorization value replaced (or removed). */
function withParam(req: SipMessage, name: string, value: string | undefined): SipMessage {
  const copy = req.clone();
  const params = auth(copy);
  if (value === undefined) delete params[name];
  else params[name] = value;
  const text = Object.entries(params)
    .map(([k, v]) => (QUOTED.has(k) ? `${k}=${quoteString(v)}` : `${k}=${v}`))
    .join(', ');
  copy.setHeader('Authorization', `Digest ${text}`);
  return copy;
}

describe('DigestAuthenticator', () => {
  describe('challenges', () => {
    it('a 401 with one WWW-Authenticate per algorithm in preference order, one nonce (RFC 8760 §2.3)', () => {
      const { authenticator } = server();
      const req = request();
      const challenge = authenticator.challenge(req);
      expect(challenge.status).to.equal(401);
      expect(challenge.reason).to.equal('Unauthorized');
      expect(challenge.cseq).to.deep.include({ seq: 1, method: 'REGISTER' });
      expect(challenge.to.tag).to.be.a('string');
      const values = challenge.headers('www-authenticate');
      const matches = values.map((v) => CHALLENGE.exec(v));
      expect(matches.every((m) => m !== null), values.join('\n')).to.equal(true);
      expect(matches.map((m) => m![3])).to.deep.equal(['SHA-512-256', 'SHA-256', 'MD5']);
      expect(matches.map((m) => m![4])).to.deep.equal(['auth', 'auth', 'auth']);
      expect(new Set(matches.map((m) => m![1])).size).to.equal(1);
      expect(matches.some((m) => m![5] !== undefined)).to.equal(false);
      expect(challenge.hasHeader('proxy-authenticate')).to.equal(false);
    });

    it('configured algorithms and qop; stale=true when asked; 407 + Proxy-Authenticate for a proxy', () => {
      const { authenticator } = server({ algorithms: ['MD5-sess', 'SHA-256'], qop: ['auth', 'auth-int'] });
      const req = request();
      const stale = authenticator.challenge(req, { stale: true });
      const values = stale.headers('www-authenticate').map((v) => CHALLENGE.exec(v)!);
      expect(values.map((m) => m[3])).to.deep.equal(['MD5-sess', 'SHA-256']);
      expect(values.map((m) => [m[4], m[5]])).to.deep.equal([
        ['auth,auth-int', ', stale=true'],
        ['auth,auth-int', ', stale=true'],
      ]);
      const proxy = authenticator.challenge(req, { proxy: true });
      expect(proxy.status).to.equal(407);
      expect(proxy.reason).to.equal('Proxy Authentication Required');
      expect(proxy.hasHeader('www-authenticate')).to.equal(false);
      expect(proxy.headers('proxy-authenticate')).to.have.length(2);
    });

    it('nonces: base64url(issued-at seconds ‖ 12 random bytes ‖ HMAC-SHA-256(secret, those ‖ realm)[0..16]), fresh each time', () => {
      const { authenticator } = server();
      const req = request();
      const nonce = only(authenticator.challenge(req, {}).wwwAuthenticate.slice(0, 1)).params.nonce!;
      const bytes = Buffer.from(nonce, 'base64url');
      expect(bytes).to.have.length(36);
      expect(bytes.readBigUInt64BE(0)).to.equal(1000n); // ManualClock at 1,000,000 ms
      const mac = createHmac('sha256', SECRET).update(bytes.subarray(0, 20)).update(REALM).digest().subarray(0, 16);
      expect(bytes.subarray(20).equals(mac)).to.equal(true);
      const other = authenticator.challenge(req).wwwAuthenticate[0]!.params.nonce;
      expect(other).to.not.equal(nonce);
    });

    it('bad options are refused', () => {
      const store = new MemoryCredentialStore();
      expectCode(() => new DigestAuthenticator({ realm: REALM, credentials: store, algorithms: [] }), 'DIGEST_BAD_CONFIG');
      expectCode(() => new DigestAuthenticator({ realm: REALM, credentials: store, algorithms: ['MD5', 'MD5'] }), 'DIGEST_BAD_CONFIG');
      expectCode(() => new DigestAuthenticator({ realm: REALM, credentials: store, qop: [] }), 'DIGEST_BAD_CONFIG');
      expectCode(() => new DigestAuthenticator({ realm: 'a\r\nb', credentials: store }), 'DIGEST_BAD_CONFIG');
      expectCode(() => new DigestAuthenticator({ realm: REALM, credentials: store, nonceLifetimeSec: 0 }), 'DIGEST_BAD_CONFIG');
      expectCode(() => new DigestAuthenticator({ realm: REALM, credentials: store, secret: new Uint8Array(4) }), 'DIGEST_BAD_CONFIG');
    });
  });

  describe('client → server round trips', () => {
    for (const algorithm of DIGEST_ALGORITHMS) {
      it(`${algorithm}: accepted, and the client chose it`, async () => {
        const { authenticator } = server({ algorithms: [algorithm] });
        const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
        const req = request();
        const first = refused(await authenticator.authenticate(req));
        expect(first).to.include({ status: 401, reason: 'no credentials' });
        const next = answer(client, req, first.response);
        expect(auth(next).algorithm).to.equal(algorithm);
        expect(await authenticator.authenticate(next)).to.deep.equal({ ok: true, username: 'alice', realm: REALM, algorithm });
      });
    }

    it('the default offer: the client answers SHA-512-256', async () => {
      const { authenticator } = server();
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request();
      const next = answer(client, req, authenticator.challenge(req));
      expect(await authenticator.authenticate(next)).to.deep.equal({ ok: true, username: 'alice', realm: REALM, algorithm: 'SHA-512-256' });
    });

    it('auth-int: the body is covered; a changed body is refused', async () => {
      const { authenticator } = server({ qop: ['auth-int'], algorithms: ['SHA-256'] });
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request({ method: 'MESSAGE', uri: 'sip:bob@example.com', body: 'hello' });
      const next = answer(client, req, authenticator.challenge(req));
      expect(auth(next).qop).to.equal('auth-int');
      const tampered = next.clone();
      tampered.setBody('hellO', 'text/plain');
      expect(refused(await authenticator.authenticate(tampered))).to.include({ status: 401, reason: 'credentials refused' });
      expect((await authenticator.authenticate(next)).ok).to.equal(true);
    });

    it('pre-emptive credentials on later requests are accepted with the next nc', async () => {
      const { authenticator } = server();
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request();
      expect((await authenticator.authenticate(answer(client, req, authenticator.challenge(req)))).ok).to.equal(true);
      for (let cseq = 3; cseq < 6; cseq++) {
        const refresh = request({ cseq });
        client.preauthorize(refresh);
        expect((await authenticator.authenticate(refresh)).ok, `CSeq ${cseq}`).to.equal(true);
      }
    });

    it('username with quote and backslash survives the round trip', async () => {
      const { authenticator, store } = server();
      store.add('o"brien\\', REALM, 'pw');
      const client = new DigestClient([{ username: 'o"brien\\', password: 'pw' }]);
      const req = request();
      const next = answer(client, req, authenticator.challenge(req));
      expect(await authenticator.authenticate(next)).to.deep.include({ ok: true, username: 'o"brien\\' });
    });

    it('a 401 with two realms from two servers: each accepts its own credential', async () => {
      const a = server();
      const b = server({ realm: 'b.example', secret: Buffer.alloc(32, 9) });
      b.store.add('bob', 'b.example', 'bob-pw');
      const client = new DigestClient([
        { username: 'alice', password: 'secret', realm: REALM },
        { username: 'bob', password: 'bob-pw', realm: 'b.example' },
      ]);
      const req = request();
      const ca = a.authenticator.challenge(req);
      const cb = b.authenticator.challenge(req);
      const merged = challengeTo(req, 401, [...ca.headers('www-authenticate'), ...cb.headers('www-authenticate')].map((v) => `WWW-Authenticate: ${v}`));
      const next = answer(client, req, merged);
      expect(next.authorization.map((v) => v.params.realm)).to.deep.equal([REALM, 'b.example']);
      expect(await a.authenticator.authenticate(next)).to.deep.include({ ok: true, username: 'alice', realm: REALM });
      expect(await b.authenticator.authenticate(next)).to.deep.include({ ok: true, username: 'bob', realm: 'b.example' });
    });

    it('proxy: 407 → Proxy-Authorization → accepted; Authorization is not looked at', async () => {
      const { authenticator } = server();
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request({ method: 'INVITE', uri: 'sip:bob@example.com' });
      const first = refused(await authenticator.authenticate(req, { proxy: true }));
      expect(first.status).to.equal(407);
      expect(first.response.status).to.equal(407);
      const next = answer(client, req, first.response);
      expect(next.hasHeader('authorization')).to.equal(false);
      expect(await authenticator.authenticate(next, { proxy: true })).to.deep.include({ ok: true, username: 'alice' });

      const www401 = answer(new DigestClient([{ username: 'alice', password: 'secret' }]), req, authenticator.challenge(req));
      expect(refused(await authenticator.authenticate(www401, { proxy: true }))).to.include({ status: 407, reason: 'no credentials' });
    });

    it('lookup may return a promise; it is asked with the algorithm in use', async () => {
      const calls: string[] = [];
      const backing = new MemoryCredentialStore();
      backing.add('alice', REALM, 'secret');
      const credentials: CredentialStore = {
        lookup: async (username, realm, algorithm) => {
          calls.push(`${username}@${realm}/${algorithm}`);
          await new Promise((resolve) => setImmediate(resolve));
          return backing.lookup(username, realm, algorithm);
        },
      };
      const { authenticator } = server({ credentials, algorithms: ['SHA-256-sess'] });
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request();
      const next = answer(client, req, authenticator.challenge(req));
      expect(await authenticator.authenticate(next)).to.deep.equal({ ok: true, username: 'alice', realm: REALM, algorithm: 'SHA-256-sess' });
      expect(calls).to.deep.equal([`alice@${REALM}/SHA-256-sess`]);
    });
  });

  describe('nonce lifetime (RFC 7616 §3.3 stale) on a manual clock', () => {
    it('just before the lifetime: accepted; after it: a stale=true challenge, and the retry is accepted', async () => {
      const { authenticator, clock } = server({ nonceLifetimeSec: 300 });
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request();
      const challenge = authenticator.challenge(req); // issued at exactly 1000 s
      clock.advance(299_999);
      expect((await authenticator.authenticate(answer(client, req, challenge))).ok).to.equal(true);

      clock.advance(2); // 300.001 s after issue
      const late = request({ cseq: 3 });
      client.preauthorize(late);
      const outcome = refused(await authenticator.authenticate(late));
      expect(outcome).to.include({ status: 401, reason: 'stale nonce' });
      const values = outcome.response.headers('www-authenticate');
      expect(values).to.have.length(3);
      for (const v of values) expect(CHALLENGE.exec(v)?.[5], v).to.equal(', stale=true');
      const retry = answer(client, late, outcome.response);
      expect(retry.cseq.seq).to.equal(4);
      expect((await authenticator.authenticate(retry)).ok).to.equal(true);
    });

    it('exactly at the lifetime: still accepted', async () => {
      const { authenticator, clock } = server({ nonceLifetimeSec: 60 });
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request();
      const challenge = authenticator.challenge(req);
      clock.advance(60_000);
      expect((await authenticator.authenticate(answer(client, req, challenge))).ok).to.equal(true);
    });

    it('an expired nonce with a wrong password: a plain challenge, not stale', async () => {
      const { authenticator, clock } = server();
      const client = new DigestClient([{ username: 'alice', password: 'wrong' }]);
      const req = request();
      const next = answer(client, req, authenticator.challenge(req));
      clock.advance(301_000);
      const outcome = refused(await authenticator.authenticate(next));
      expect(outcome).to.include({ status: 401, reason: 'credentials refused' });
      expect(outcome.response.headers('www-authenticate').every((v) => !v.includes('stale'))).to.equal(true);
    });
  });

  describe('refusals', () => {
    async function accepted(): Promise<{ authenticator: DigestAuthenticator; next: SipMessage; clock: ManualClock }> {
      const { authenticator, clock } = server();
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      const req = request();
      return { authenticator, clock, next: answer(client, req, authenticator.challenge(req)) };
    }

    it('a tampered nonce: a plain new challenge', async () => {
      const { authenticator, next } = await accepted();
      const nonce = auth(next).nonce!;
      const flipped = nonce.slice(0, 10) + (nonce[10] === 'A' ? 'B' : 'A') + nonce.slice(11);
      const outcome = refused(await authenticator.authenticate(withParam(next, 'nonce', flipped)));
      expect(outcome).to.include({ status: 401, reason: 'invalid nonce' });
      expect(outcome.response.headers('www-authenticate').every((v) => !v.includes('stale'))).to.equal(true);
    });

    it('a garbled nonce, or one from another secret or realm: a plain new challenge', async () => {
      const { authenticator, next } = await accepted();
      for (const nonce of ['', '!!!', 'dcd98b7102dd2f0e8b11d0f600bfb0c093', 'A'.repeat(48)]) {
        expect(refused(await authenticator.authenticate(withParam(next, 'nonce', nonce))), nonce).to.include({ status: 401, reason: 'invalid nonce' });
      }
      const req = request();
      const foreign = server({ secret: Buffer.alloc(32, 1) }).authenticator.challenge(req).wwwAuthenticate[0]!.params.nonce!;
      expect(refused(await authenticator.authenticate(withParam(next, 'nonce', foreign)))).to.include({ reason: 'invalid nonce' });
      const otherRealm = server({ realm: 'other.example' }).authenticator.challenge(req).wwwAuthenticate[0]!.params.nonce!;
      expect(refused(await authenticator.authenticate(withParam(next, 'nonce', otherRealm)))).to.include({ reason: 'invalid nonce' });
    });

    it('a replayed nc (the same request twice, or a lower count): a new challenge, not stale', async () => {
      const { authenticator, next } = await accepted();
      expect((await authenticator.authenticate(next)).ok).to.equal(true);
      const replay = refused(await authenticator.authenticate(next));
      expect(replay).to.include({ status: 401, reason: 'nonce count replayed' });
      expect(replay.response.headers('www-authenticate').every((v) => !v.includes('stale'))).to.equal(true);
    });

    it('counts must rise: 5 accepted, then 3 refused, then 6 accepted', async () => {
      const { authenticator } = server();
      const req = request();
      const nonce = authenticator.challenge(req).wwwAuthenticate[0]!.params.nonce!;
      const ha1 = digestHa1('SHA-512-256', 'alice', REALM, 'secret');
      const withNc = (nc: string): SipMessage => {
        const r = request();
        const response = digestResponse({ algorithm: 'SHA-512-256', ha1, nonce, method: 'REGISTER', uri: 'sip:example.com', qop: 'auth', nc, cnonce: `c${nc}` });
        r.addHeader(
          'Authorization',
          formatDigestCredentials({ username: 'alice', realm: REALM, nonce, uri: 'sip:example.com', response, algorithm: 'SHA-512-256', cnonce: `c${nc}`, qop: 'auth', nc }),
        );
        return r;
      };
      expect((await authenticator.authenticate(withNc('00000005'))).ok).to.equal(true);
      expect(refused(await authenticator.authenticate(withNc('00000003')))).to.include({ reason: 'nonce count replayed' });
      expect((await authenticator.authenticate(withNc('00000006'))).ok).to.equal(true);
      expect(refused(await authenticator.authenticate(withNc('00000000')))).to.include({ status: 400 });
    });

    it('a forged request cannot burn the real client\'s counts', async () => {
      const { authenticator, next } = await accepted();
      const forged = withParam(withParam(next, 'nc', 'ffffffff'), 'response', '0'.repeat(64));
      expect(refused(await authenticator.authenticate(forged))).to.include({ reason: 'credentials refused' });
      expect((await authenticator.authenticate(next)).ok).to.equal(true);
    });

    it('a wrong password and an unknown user get the same 401 with the same reason', async () => {
      const { authenticator } = server();
      const req = request();
      const challenge = authenticator.challenge(req);
      const wrong = answer(new DigestClient([{ username: 'alice', password: 'nope' }]), req, challenge);
      const unknown = answer(new DigestClient([{ username: 'mallory', password: 'secret' }]), req, challenge);
      const a = refused(await authenticator.authenticate(wrong));
      const b = refused(await authenticator.authenticate(unknown));
      expect(a).to.include({ status: 401, reason: 'credentials refused' });
      expect(b).to.include({ status: 401, reason: a.reason });
      const shape = (o: typeof a): string[] =>
        o.response.headers('www-authenticate').map((v) => v.replace(/nonce="[^"]*"/, 'nonce=""'));
      expect(shape(b)).to.deep.equal(shape(a));
      expect(b.response.headerNames()).to.deep.equal(a.response.headerNames());
    });

    it('uri not the Request-URI: 400 (RFC 7616 §3.4.6)', async () => {
      const { authenticator, next } = await accepted();
      const moved = request({ uri: 'sip:other.example.com', extra: [`Authorization: ${next.header('authorization')!}`] });
      const outcome = refused(await authenticator.authenticate(moved));
      expect(outcome).to.include({ status: 400, reason: 'uri does not match the Request-URI' });
      expect(outcome.response.status).to.equal(400);
      expect(outcome.response.hasHeader('www-authenticate')).to.equal(false);
    });

    it('credentials without qop (RFC 2069 style): a new challenge', async () => {
      const { authenticator } = server({ algorithms: ['MD5'] });
      const req = request();
      const nonce = authenticator.challenge(req).wwwAuthenticate[0]!.params.nonce!;
      const response = digestResponse({ algorithm: 'MD5', ha1: digestHa1('MD5', 'alice', REALM, 'secret'), nonce, method: 'REGISTER', uri: 'sip:example.com' });
      const old = request({
        extra: [`Authorization: ${formatDigestCredentials({ username: 'alice', realm: REALM, nonce, uri: 'sip:example.com', response })}`],
      });
      const outcome = refused(await authenticator.authenticate(old));
      expect(outcome).to.include({ status: 401, reason: 'credentials without qop' });
      expect(outcome.response.headers('www-authenticate')).to.have.length(1);
    });

    it('an algorithm not offered: 400', async () => {
      const { authenticator } = server({ algorithms: ['SHA-256'] });
      const req = request();
      const nonce = authenticator.challenge(req).wwwAuthenticate[0]!.params.nonce!;
      const response = digestResponse({ algorithm: 'MD5', ha1: digestHa1('MD5', 'alice', REALM, 'secret'), nonce, method: 'REGISTER', uri: 'sip:example.com', qop: 'auth', nc: '00000001', cnonce: 'c' });
      const md5Creds = request({
        extra: [`Authorization: ${formatDigestCredentials({ username: 'alice', realm: REALM, nonce, uri: 'sip:example.com', response, algorithm: 'MD5', cnonce: 'c', qop: 'auth', nc: '00000001' })}`],
      });
      expect(refused(await authenticator.authenticate(md5Creds))).to.include({ status: 400, reason: 'algorithm not offered' });
      const noAlgorithm = withParam(md5Creds, 'algorithm', undefined); // absent = MD5
      expect(refused(await authenticator.authenticate(noAlgorithm))).to.include({ status: 400, reason: 'algorithm not offered' });
      const unknown = withParam(md5Creds, 'algorithm', 'SHA-1');
      expect(refused(await authenticator.authenticate(unknown))).to.include({ status: 400 });
    });

    it('malformed credentials: 400', async () => {
      const { authenticator, next } = await accepted();
      expect(refused(await authenticator.authenticate(withParam(next, 'response', undefined)))).to.include({ status: 400, reason: 'missing digest parameter' });
      expect(refused(await authenticator.authenticate(withParam(next, 'cnonce', undefined)))).to.include({ status: 400 });
      expect(refused(await authenticator.authenticate(withParam(next, 'nc', '1')))).to.include({ status: 400, reason: 'nc is not 8 hex digits' });
      expect(refused(await authenticator.authenticate(withParam(next, 'qop', 'auth-int')))).to.include({ status: 400, reason: 'qop not offered' });
      expect((await authenticator.authenticate(next)).ok).to.equal(true);
    });

    it('credentials only for another realm are ignored: a challenge', async () => {
      const { authenticator, next } = await accepted();
      const elsewhere = withParam(next, 'realm', 'other.example');
      expect(refused(await authenticator.authenticate(elsewhere))).to.include({ status: 401, reason: 'no credentials' });
      // Ours next to another realm's: ours decides.
      const both = next.clone();
      both.addHeader('Authorization', elsewhere.header('authorization')!);
      expect((await authenticator.authenticate(both)).ok).to.equal(true);
    });

    it('several credentials for our realm (a forked request): any good one is enough', async () => {
      const { authenticator, next } = await accepted();
      const bad = withParam(next, 'response', '0'.repeat(64));
      const both = bad.clone();
      both.addHeader('Authorization', next.header('authorization')!);
      expect(both.headers('authorization')).to.have.length(2);
      expect((await authenticator.authenticate(both)).ok).to.equal(true);
    });

    it('a response in upper-case hex is still the same response', async () => {
      const { authenticator, next } = await accepted();
      const upper = withParam(next, 'response', auth(next).response!.toUpperCase());
      expect((await authenticator.authenticate(upper)).ok).to.equal(true);
    });
  });
});
