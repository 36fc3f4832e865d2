// Round trips: parse → serialize → parse keeps every value; an untouched message serializes to
// its exact bytes; a changed message re-encodes only what changed.
import { readFileSync, readdirSync } from 'node:fs';
import { expect } from 'chai';
import {
  NameAddr,
  SipParseError,
  SipUri,
  Via,
  createRequest,
  createResponse,
  generateBranch,
  generateCallId,
  generateTag,
  parseMessage,
  parseNameAddr,
  parseUri,
  parseVia,
  validateMessage,
  type SipMessage,
} from '../../src/index.js';

const fixtures = ['rfc4475', 'rfc5118'].flatMap((dir) =>
  readdirSync(new URL(`../fixtures/${dir}/`, import.meta.url))
    .filter((f) => f.endsWith('.sip'))
    .map((f) => ({ name: `${dir}/${f}`, bytes: readFileSync(new URL(`../fixtures/${dir}/${f}`, import.meta.url)) })),
);

/** Every value a round trip must keep, read through the public accessors. */
function snapshot(m: SipMessage): Record<string, unknown> {
  const read = (f: () => unknown): unknown => {
    try {
      return f();
    } catch (error) {
      if (error instanceof SipParseError) return `error ${error.code}`;
      throw error;
    }
  };
  return {
    isRequest: m.isRequest,
    method: m.method,
    status: m.status,
    reason: m.reason,
    requestUri: read(() => String(m.requestUri)),
    via: read(() => m.via.map(String)),
    from: read(() => String(m.from)),
    to: read(() => String(m.to)),
    callId: read(() => m.callId),
    cseq: read(() => m.cseq),
    contact: read(() => m.contact.map(String)),
    maxForwards: read(() => m.maxForwards),
    contentLength: read(() => m.contentLength),
    headerNames: m.headerNames(),
    body: m.body.toString('latin1'),
  };
}

describe('round trips', () => {
  describe('parse → toBuffer → parse, for every fixture', () => {
    for (const { name, bytes } of fixtures) {
      let message: SipMessage;
      try {
        message = parseMessage(bytes);
      } catch {
        continue; // not SIP at all: covered by the torture suite
      }
      it(`${name}: values survive the round trip`, () => {
        const again = parseMessage(message.toBuffer());
        expect(snapshot(again)).to.deep.equal(snapshot(message));
      });
    }
  });

  describe('byte preservation', () => {
    const raw = Buffer.from(
      'OPTIONS sip:bob@example.com SIP/2.0\r\n' +
        'via:  SIP/2.0/UDP  host.example.com ;branch=z9hG4bKabc ;rport\r\n' +
        'Max-Forwards:70\r\n' +
        'TO: <sip:bob@example.com>\r\n' +
        'f: Alice <sip:alice@example.com>;TAG=x1\r\n' +
        'i: abc@host\r\n' +
        'CSeq:   7    OPTIONS\r\n' +
        'X-Folded: first\r\n   second\r\n' +
        'l: 0\r\n\r\n',
    );

    it('reading every value leaves the bytes as they were', () => {
      const m = parseMessage(raw);
      snapshot(m);
      expect(m.header('x-folded')).to.equal('first second');
      expect(m.from.tag).to.equal('x1');
      expect(Buffer.compare(m.toBuffer(), raw)).to.equal(0);
    });

    it('a changed header is re-encoded and every other line keeps its bytes', () => {
      const m = parseMessage(raw);
      m.update<Via>('via', 0, (via) => {
        via.params.received = '192.0.2.7';
        via.params.rport = '5062';
      });
      const text = m.toString();
      expect(text).to.equal(
        'OPTIONS sip:bob@example.com SIP/2.0\r\n' +
          'Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKabc;rport=5062;received=192.0.2.7\r\n' +
          'Max-Forwards:70\r\n' +
          'TO: <sip:bob@example.com>\r\n' +
          'f: Alice <sip:alice@example.com>;TAG=x1\r\n' +
          'i: abc@host\r\n' +
          'CSeq:   7    OPTIONS\r\n' +
          'X-Folded: first\r\n   second\r\n' +
          'l: 0\r\n\r\n',
      );
      expect(parseMessage(text).via[0]!.rport).to.equal(5062);
    });

    it('prepend, remove and replace headers as a proxy does (RFC 3261 §16.6)', () => {
      const m = parseMessage(raw);
      m.prependHeader('Via', 'SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp1');
      m.setHeader('Max-Forwards', String(m.maxForwards! - 1));
      m.prependHeader('Record-Route', '<sip:proxy.example.com;lr>');
      const out = parseMessage(m.toBuffer());
      expect(out.via.map((v) => v.branch)).to.deep.equal(['z9hG4bKp1', 'z9hG4bKabc']);
      expect(out.maxForwards).to.equal(69);
      expect(out.recordRoute[0]!.uri.params.lr).to.equal(null);
      expect(out.removeFirstValue('via')).to.equal(true);
      expect(out.via.map((v) => v.branch)).to.deep.equal(['z9hG4bKabc']);
    });

    it('removing the first of several comma-separated values keeps the rest', () => {
      const m = parseMessage(
        'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n' +
          'From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
      );
      m.removeFirstValue('v');
      expect(m.headers('via')).to.deep.equal(['SIP/2.0/UDP b.example.com;branch=z9hG4bK2']);
      expect(m.toString()).to.contain('\r\nVia: SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\nFrom:');
    });

    it('setBody keeps Content-Length in bytes, not characters', () => {
      const m = parseMessage(raw);
      m.setBody('héllo ☃', 'text/plain;charset=utf-8');
      expect(m.contentLength).to.equal(Buffer.byteLength('héllo ☃'));
      const again = parseMessage(m.toBuffer());
      expect(again.body.toString('utf8')).to.equal('héllo ☃');
      expect(again.contentType).to.equal('text/plain;charset=utf-8');
    });

    it('a changed Request-URI re-encodes only the start line', () => {
      const m = parseMessage(raw);
      m.requestUri = parseUri('sip:bob@192.0.2.9:5070;transport=tcp');
      const text = m.toString();
      expect(text.startsWith('OPTIONS sip:bob@192.0.2.9:5070;transport=tcp SIP/2.0\r\nvia:  SIP/2.0/UDP  host.example.com ;branch')).to.equal(true);
    });
  });

  describe('value types serialize and parse back to equal values', () => {
    const uris = [
      'sip:alice@atlanta.example.com',
      'sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi&Priority=urgent',
      'sip:user;par=u%40example.net@example.com',
      'sip:%61lice@example.com;name=v%61lue%25%34%31',
      'tel:+1-201-555-0123;phone-context=example.com',
      'urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
      'sip:null-%00-null@example.com',
    ];
    for (const text of uris) {
      it(`URI ${text}`, () => {
        const uri = parseUri(text);
        const again = parseUri(uri.toString());
        expect({ ...again }).to.deep.equal({ ...uri });
      });
    }

    const addresses = [
      '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8',
      'Bob Smith <sip:bob@example.com>;tag=x',
      'sip:carol@example.com;tag=3',
      '<sip:alice@example.com;transport=udp>;expires=60;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1',
      '"Ünïcödé" <sip:u@example.com>',
    ];
    for (const text of addresses) {
      it(`name-addr ${text}`, () => {
        const value = parseNameAddr(text);
        const again = parseNameAddr(value.toString());
        expect(again.displayName).to.equal(value.displayName);
        expect(again.uri.toString()).to.equal(value.uri.toString());
        expect({ ...again.params }).to.deep.equal({ ...value.params });
      });
    }

    it('a display name with quotes and backslashes is quoted again with escapes', () => {
      const value = new NameAddr(new SipUri({ user: 'a', host: 'example.com' }), { displayName: 'say "hi" \\ bye' });
      expect(value.toString()).to.equal('"say \\"hi\\" \\\\ bye" <sip:a@example.com>');
      expect(parseNameAddr(value.toString()).displayName).to.equal('say "hi" \\ bye');
    });

    it('a user part with reserved characters is escaped on output', () => {
      const uri = new SipUri({ user: 'sips:user@example.com', host: 'example.net' });
      expect(uri.toString()).to.equal('sip:sips%3Auser%40example.com@example.net');
      expect(parseUri(uri.toString()).user).to.equal('sips:user@example.com');
    });

    it('Via with IPv6, received and rport', () => {
      const via = parseVia('SIP/2.0/TLS [2001:db8::9:1]:5061;received=2001:db8::9:255;rport=5061;branch=z9hG4bKx');
      expect(via.transport).to.equal('TLS');
      expect(via.host).to.equal('[2001:db8::9:1]');
      expect(via.port).to.equal(5061);
      expect(via.received).to.equal('2001:db8::9:255');
      expect(via.rport).to.equal(5061);
      const again = parseVia(via.toString());
      expect({ ...again.params }).to.deep.equal({ ...via.params });
    });
  });
});

describe('heads longer than the first decode (2 KiB)', () => {
  it('parse identically wherever the 2 KiB boundary falls: in a name, a value, a fold or the empty line', () => {
    for (let pad = 1; pad <= 260; pad++) {
      const head =
        'OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n' +
        `X-Long: ${'v'.repeat(1800)}\r\nX-Pad: ${'a'.repeat(pad)}\r\n  folded\r\n` +
        'From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n';
      const m = parseMessage(head);
      expect(m.headerNames(), `pad ${pad}`).to.have.length(8);
      expect(m.header('x-pad')).to.equal(`${'a'.repeat(pad)} folded`);
      expect(m.cseq.seq).to.equal(1);
      expect(Buffer.compare(m.toBuffer(), Buffer.from(head))).to.equal(0);
    }
  });

  it('a head over maxHeaderBytes is refused with SIP_HEADERS_TOO_LARGE', () => {
    const head = `OPTIONS sip:a@example.com SIP/2.0\r\nX-Big: ${'b'.repeat(5000)}\r\n\r\n`;
    expect(() => parseMessage(head, { maxHeaderBytes: 4096 }))
      .to.throw(SipParseError)
      .with.property('code', 'SIP_HEADERS_TOO_LARGE');
  });
});

describe('building messages', () => {
  it('createRequest fills what RFC 3261 §8.1.1 requires and validates', () => {
    const request = createRequest({
      method: 'MESSAGE',
      uri: 'sip:bob@example.com',
      from: 'Alice <sip:alice@example.com>',
      to: 'sip:bob@example.com',
      body: 'hello ✓',
      contentType: 'text/plain;charset=utf-8',
    });
    const parsed = parseMessage(request.toBuffer());
    expect(parsed.method).to.equal('MESSAGE');
    expect(parsed.via[0]!.branch).to.match(/^z9hG4bK[A-Za-z0-9.-]{16}$/);
    expect(parsed.maxForwards).to.equal(70);
    expect(parsed.from.tag).to.match(/^[A-Za-z0-9.-]{12}$/);
    expect(parsed.to.tag).to.equal(undefined);
    expect(parsed.cseq).to.deep.equal({ seq: 1, method: 'MESSAGE' });
    expect(parsed.contentLength).to.equal(Buffer.byteLength('hello ✓'));
    expect(parsed.body.toString('utf8')).to.equal('hello ✓');
    expect(validateMessage(parsed)).to.deep.equal({ action: 'accept' });
  });

  it('createResponse copies Via, From, To, Call-ID, CSeq and adds a To tag (§8.2.6.2)', () => {
    const request = parseMessage(
      'INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n' +
        'From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 4 INVITE\r\nTimestamp: 54\r\nContent-Length: 0\r\n\r\n',
    );
    const ok = parseMessage(createResponse(request, 200, undefined, { toTag: 'abc' }).toBuffer());
    expect(ok.status).to.equal(200);
    expect(ok.reason).to.equal('OK');
    expect(ok.headers('via')).to.deep.equal(request.headers('via'));
    expect(ok.from.tag).to.equal('1');
    expect(ok.to.tag).to.equal('abc');
    expect(ok.callId).to.equal('c1');
    expect(ok.cseq).to.deep.equal({ seq: 4, method: 'INVITE' });
    expect(ok.header('timestamp')).to.equal(undefined);

    const trying = createResponse(request, 100);
    expect(trying.to.tag).to.equal(undefined);
    expect(trying.header('timestamp')).to.equal('54');
    expect(trying.reason).to.equal('Trying');
  });

  it('identifiers are unique and carry enough randomness', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10000; i++) {
      seen.add(generateBranch());
      seen.add(generateTag());
      seen.add(generateCallId());
    }
    expect(seen.size).to.equal(30000);
    expect(generateCallId('host.example.com')).to.match(/^[A-Za-z0-9.-]{24}@host\.example\.com$/);
  });
});

describe('validation verdicts beyond the torture tests', () => {
  const base = (extra: string, method = 'OPTIONS'): string =>
    `${method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n` +
    `From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 ${method}\r\n${extra}Content-Length: 0\r\n\r\n`;

  it('an ACK is never answered: a broken one is dropped', () => {
    expect(validateMessage(parseMessage(base('Require: foo\r\nMax-Forwards: 300\r\n', 'ACK')))).to.deep.include({ action: 'drop' });
  });

  it('a 420 lists the unsupported extensions', () => {
    const verdict = validateMessage(parseMessage(base('Require: foo, 100rel\r\n')), { supportedExtensions: ['100rel'] });
    expect(verdict).to.deep.include({ action: 'reply', status: 420, reason: 'Bad Extension' });
    expect(verdict.action === 'reply' && verdict.headers).to.deep.equal([['Unsupported', 'foo']]);
  });

  it('Max-Forwards above 255 is a 400', () => {
    expect(validateMessage(parseMessage(base('Max-Forwards: 256\r\n')))).to.deep.include({ action: 'reply', status: 400 });
  });

  it('a response to an endpoint with one Via is accepted', () => {
    const m = parseMessage(
      'SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n' +
        'To: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
    );
    expect(validateMessage(m)).to.deep.equal({ action: 'accept' });
  });
});

describe('the body of a parsed message', () => {
  it('stays the same after header changes (it is taken from the source lazily)', () => {
    const m = parseMessage(
      'MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n' +
        'To: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello',
    );
    m.prependHeader('Via', 'SIP/2.0/UDP p.example.com;branch=z9hG4bK2');
    m.removeHeader('call-id');
    expect(m.body.toString()).to.equal('hello');
    const again = parseMessage(m.toBuffer());
    expect(again.body.toString()).to.equal('hello');
    expect(again.via).to.have.length(2);
  });
});

describe('clone()', () => {
  it('is a deep copy: the same bytes, and changes to either side stay on that side', () => {
    const original = parseMessage(
      'INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n' +
        'To: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi',
    );
    const copy = original.clone();
    expect(Buffer.compare(copy.toBuffer(), original.toBuffer())).to.equal(0);
    copy.update<Via>('via', 0, (via) => {
      via.branch = 'z9hG4bK2';
    });
    copy.setBody('bye', 'text/plain');
    expect(original.via[0]!.branch).to.equal('z9hG4bK1');
    expect(original.body.toString()).to.equal('hi');
    expect(copy.via[0]!.branch).to.equal('z9hG4bK2');
    expect(parseMessage(copy.toBuffer()).body.toString()).to.equal('bye');
  });
});

describe('SipParseError offsets for header values', () => {
  it('point at the offending byte of the message, and name the header', () => {
    const text =
      'OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n' +
      'To: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1x OPTIONS\r\nContent-Length: 0\r\n\r\n';
    const m = parseMessage(text);
    const viaError = (() => {
      try {
        void m.via;
      } catch (error) {
        return error as SipParseError;
      }
      throw new Error('no error');
    })();
    expect(viaError).to.be.instanceOf(SipParseError);
    expect(viaError.code).to.equal('SIP_BAD_VALUE');
    expect(viaError.header).to.equal('via');
    expect(text.slice(viaError.offset, viaError.offset + 2)).to.equal(';b');
    expect(() => m.cseq)
      .to.throw(SipParseError)
      .that.satisfies((e: SipParseError) => e.header === 'cseq' && text.slice(e.offset, e.offset + 1) === 'x');
  });
});
