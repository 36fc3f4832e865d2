// Typed header values beyond the transaction-critical ones: the auth headers (RFC 3261 §25.1,
// RFC 7616), Event and Subscription-State (RFC 6665), option-tag lists, Contact: *, media types.
import { expect } from 'chai';
import { SipParseError, parseAuthValue, parseMessage } from '../../src/index.js';

const request = (extra: string, method = 'OPTIONS'): ReturnType<typeof parseMessage> =>
  parseMessage(
    `${method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n` +
      `From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 ${method}\r\n${extra}Content-Length: 0\r\n\r\n`,
  );

describe('typed header values', () => {
  describe('digest authentication headers', () => {
    it('Authorization: scheme and unquoted parameters, names lowercased', () => {
      const m = request(
        'Authorization: Digest username="bob", realm="biloxi.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n' +
          ' uri="sip:bob@biloxi.example.com", qop=auth, nc=00000001, cnonce="0a4f113b", ALGORITHM=SHA-256,\r\n' +
          ' response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n',
      );
      const [auth] = m.authorization;
      expect(auth!.scheme).to.equal('Digest');
      expect({ ...auth!.params }).to.deep.equal({
        username: 'bob',
        realm: 'biloxi.example.com',
        nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
        uri: 'sip:bob@biloxi.example.com',
        qop: 'auth',
        nc: '00000001',
        cnonce: '0a4f113b',
        algorithm: 'SHA-256',
        response: '6629fae49393a05397450978507c4ef1',
        opaque: '5ccc069c403ebaf9f0171e9517f40e41',
      });
      expect(auth!.token68).to.equal(undefined);
    });

    it('one challenge per WWW-Authenticate line, in order (RFC 8760 §2.3: one per algorithm, most preferred first)', () => {
      const m = parseMessage(
        'SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n' +
          'To: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n' +
          'WWW-Authenticate: Digest realm="example.com", nonce="n1", algorithm=SHA-256, qop="auth,auth-int"\r\n' +
          'WWW-Authenticate: Digest realm="example.com", nonce="n1", algorithm=MD5, qop="auth", stale=TRUE\r\n' +
          'Content-Length: 0\r\n\r\n',
      );
      const challenges = m.wwwAuthenticate;
      expect(challenges.map((c) => c.params.algorithm)).to.deep.equal(['SHA-256', 'MD5']);
      expect(challenges[0]!.params.qop).to.equal('auth,auth-int');
      expect(challenges[1]!.params.stale).to.equal('TRUE');
    });

    it('a quoted value keeps commas and resolves quoted-pairs', () => {
      const v = parseAuthValue('Digest realm="a, \\"b\\"", nonce=x', 'proxy-authenticate');
      expect(v.params.realm).to.equal('a, "b"');
      expect(v.params.nonce).to.equal('x');
    });

    it('other schemes may carry a token68 (Basic), which is not split into parameters', () => {
      const v = parseAuthValue('Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==', 'authorization');
      expect(v.scheme).to.equal('Basic');
      expect(v.token68).to.equal('QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
    });

    it('malformed: a repeated parameter, a missing "=", an unterminated quote', () => {
      for (const bad of ['Digest realm="a", realm="b"', 'Digest realm "a"', 'Digest realm="a, nonce=b']) {
        expect(() => parseAuthValue(bad, 'authorization'), bad)
          .to.throw(SipParseError)
          .with.property('code', 'SIP_BAD_VALUE');
      }
    });
  });

  describe('events (RFC 6665)', () => {
    it('Event with an id and a template, compact form o', () => {
      const event = request('o: presence.winfo;id=7;extra\r\n', 'SUBSCRIBE').event!;
      expect(event.type).to.equal('presence.winfo');
      expect(event.id).to.equal('7');
      expect(event.params.extra).to.equal(null);
    });

    it('Subscription-State with expires, reason and retry-after', () => {
      const active = request('Subscription-State: active;expires=599\r\n', 'NOTIFY').subscriptionState!;
      expect(active).to.deep.include({ state: 'active', expires: 599, reason: undefined, retryAfter: undefined });
      const ended = request('Subscription-State: Terminated;reason=Probation;retry-after=30\r\n', 'NOTIFY').subscriptionState!;
      expect(ended).to.deep.include({ state: 'terminated', reason: 'probation', retryAfter: 30, expires: undefined });
    });

    it('a Subscription-State with a non-numeric expires is malformed', () => {
      expect(() => request('Subscription-State: active;expires=soon\r\n', 'NOTIFY').subscriptionState)
        .to.throw(SipParseError)
        .with.property('header', 'subscription-state');
    });
  });

  describe('lists, Contact: * and numbers', () => {
    it('Allow, Supported, Require and Proxy-Require give tokens across lines and commas', () => {
      const m = request('Allow: INVITE, ACK,\r\n  BYE\r\nAllow: MESSAGE\r\nk: outbound, path\r\nRequire: 100rel\r\nProxy-Require: foo\r\n');
      expect(m.allow).to.deep.equal(['INVITE', 'ACK', 'BYE', 'MESSAGE']);
      expect(m.supported).to.deep.equal(['outbound', 'path']);
      expect(m.require).to.deep.equal(['100rel']);
      expect(m.proxyRequire).to.deep.equal(['foo']);
      expect(m.unsupported).to.deep.equal([]);
    });

    it('an option tag list element that is not one token is malformed', () => {
      expect(() => request('Supported: timer path\r\n').supported).to.throw(SipParseError);
    });

    it('Contact: * is the wildcard, with no Contact values', () => {
      const m = request('Contact: *\r\nExpires: 0\r\n', 'REGISTER');
      expect(m.wildcardContact).to.equal(true);
      expect(m.contact).to.deep.equal([]);
      expect(m.expires).to.equal(0);
    });

    it('Contact values keep their header parameters apart from URI parameters (RFC 4475 §3.3.12)', () => {
      const m = request('Contact: sip:a@example.com;expires=60, <sip:b@example.com;transport=tcp>;q=0.5\r\n', 'REGISTER');
      const [a, b] = m.contact;
      expect({ ...a!.params }).to.deep.equal({ expires: '60' });
      expect({ ...a!.uri.params }).to.deep.equal({});
      expect({ ...b!.params }).to.deep.equal({ q: '0.5' });
      expect(b!.uri.transport).to.equal('tcp');
    });

    it('Content-Type as a media type, Expires and Max-Forwards bounds', () => {
      const m = request('Content-Type: Text/Plain ; charset="UTF-8"\r\nExpires: 4294967295\r\nMax-Forwards: 255\r\n');
      expect(m.mediaType).to.deep.include({ type: 'text', subtype: 'plain' });
      expect(m.mediaType!.params.charset).to.equal('"UTF-8"');
      expect(m.expires).to.equal(4294967295);
      expect(m.maxForwards).to.equal(255);
      expect(() => request('Expires: 4294967296\r\n').expires).to.throw(SipParseError);
      expect(() => request('Max-Forwards: -1\r\n').maxForwards).to.throw(SipParseError);
    });

    it('header() and headers(): any case, compact forms, folds unfolded', () => {
      const m = request('SUBJECT: first\r\n part\r\nX-Custom: a, b\r\nx-custom: c\r\n');
      expect(m.header('s')).to.equal('first part');
      expect(m.header('subject')).to.equal('first part');
      // An unknown header is not known to be a list: one value per line, commas kept.
      expect(m.headers('X-CUSTOM')).to.deep.equal(['a, b', 'c']);
      expect(m.headers('v')).to.deep.equal(['SIP/2.0/UDP a.example.com;branch=z9hG4bK1']);
      expect(m.header('no-such-header')).to.equal(undefined);
      expect(m.headers('no-such-header')).to.deep.equal([]);
    });
  });
});
