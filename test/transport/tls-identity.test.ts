// RFC 5922 on real loopback sockets: the stack's TLS client verifies the server's certificate
// against the SIP domain the request is for (§7.3), not the resolved IP; §7.1 which names count
// (URI sip:domain, DNS names, CN only without subjectAltName), §7.2 how they compare (whole, no
// wildcards). Certificates come from test/support/certs.ts, signed by its CA.
import { expect } from 'chai';
import { SipStack, TlsTransport, createRequest, type SipMessage } from '../../src/index.js';
import { checkSipIdentity, sipDomainIdentities } from '../../src/transport/tls-transport.js';
import type { PeerCertificate } from 'node:tls';
import { issueCert, testCerts } from '../support/certs.js';
import { Cleanup, EventRecorder, callId, nextFailure, nextMessage, requestBytes, sentBy } from '../support/transport-harness.js';

describe('TLS server identity (RFC 5922 §7)', () => {
  const cleanup = new Cleanup();
  before(function () {
    this.timeout(20_000);
    testCerts();
  });
  afterEach(() => cleanup.run());

  /** A stack listening on TLS with `cert`, answering 200 to every request; its port. */
  async function server(cert: { key: Buffer; cert: Buffer }): Promise<{ stack: SipStack; port: number; seen: SipMessage[] }> {
    const stack = new SipStack({ transports: ['tls:127.0.0.1:0'], tls: { key: cert.key, cert: cert.cert }, dns: false });
    cleanup.add('tls server stack', stack, (s) => s.stop());
    await stack.start();
    const seen: SipMessage[] = [];
    stack.setDefaultTu({
      onRequest: (request) => {
        seen.push(request.message);
        request.respond(200);
      },
    });
    return { stack, port: stack.transports[0]!.local.port, seen };
  }

  /** A client stack trusting the test CA only. */
  async function client(): Promise<SipStack> {
    const stack = new SipStack({ transports: ['tls:127.0.0.1:0'], tls: { ca: testCerts().ca, systemCa: false }, dns: false });
    cleanup.add('tls client stack', stack, (s) => s.stop());
    await stack.start();
    return stack;
  }

  function options(uri: string): SipMessage {
    return createRequest({
      method: 'OPTIONS',
      uri,
      from: '<sips:bob@client.test>;tag=1',
      to: `<${uri}>`,
      callId: callId('rfc5922'),
      via: 'SIP/2.0/TLS 0.0.0.0',
    });
  }

  async function send(cert: { key: Buffer; cert: Buffer }, uri: string): Promise<{ final: SipMessage; seen: number }> {
    const far = await server(cert);
    const near = await client();
    const request = near.request(options(uri), { target: { protocol: 'tls', address: '127.0.0.1', port: far.port } });
    const final = await request.final;
    return { final, seen: far.seen.length };
  }

  it('a certificate with subjectAltName URI sip:example.test proves example.test: sips:alice@example.test sent to 127.0.0.1 gets its 200', async () => {
    const { final, seen } = await send(issueCert('URI:sip:example.test'), 'sips:alice@example.test');
    expect(final.status).to.equal(200);
    expect(seen).to.equal(1);
  });

  it('a DNS subjectAltName equal to the domain (any case) proves it too', async () => {
    const { final } = await send(issueCert('DNS:Example.TEST'), 'sips:alice@example.test');
    expect(final.status).to.equal(200);
  });

  it('a certificate naming only IP 127.0.0.1 does not prove example.test: 503 to the TU, nothing reaches the server', async () => {
    const far = await server(issueCert('IP:127.0.0.1'));
    const near = await client();
    const recorder = new EventRecorder();
    // What the transport reports, below the transaction: TRANSPORT_TLS.
    const transport = new TlsTransport({ address: '127.0.0.1', port: 0, sink: recorder, tls: { ca: testCerts().ca, systemCa: false } });
    cleanup.add('raw tls client', transport, (t) => t.close());
    await transport.start();
    const bytes = requestBytes({ via: `SIP/2.0/TLS ${sentBy(transport.local)};branch=z9hG4bK-ip-only` });
    const error = await transport.send(bytes, { protocol: 'tls', address: '127.0.0.1', port: far.port, tlsDomain: 'example.test' } as never, 'tid-ip').then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).to.equal('TRANSPORT_TLS');
    expect(error?.message).to.match(/example\.test/);
    expect((await nextFailure(recorder)).tid).to.equal('tid-ip');

    const request = near.request(options('sips:alice@example.test'), { target: { protocol: 'tls', address: '127.0.0.1', port: far.port } });
    const final = await request.final;
    expect(final.status).to.equal(503);
    expect(far.seen).to.have.length(0);
  });

  it('a certificate for another domain (sip:other.test) does not prove example.test: 503', async () => {
    const { final, seen } = await send(issueCert('URI:sip:other.test,DNS:other.test'), 'sips:alice@example.test');
    expect(final.status).to.equal(503);
    expect(seen).to.equal(0);
  });

  it('§7.2: a wildcard DNS name *.example.test does not match sip.example.test', async () => {
    const { final, seen } = await send(issueCert('DNS:*.example.test'), 'sips:alice@sip.example.test');
    expect(final.status).to.equal(503);
    expect(seen).to.equal(0);
  });

  it('§7.2: no suffix match — a certificate for example.test does not prove sip.example.test', async () => {
    const { final } = await send(issueCert('URI:sip:example.test'), 'sips:alice@sip.example.test');
    expect(final.status).to.equal(503);
  });

  it('an IP-literal URI keeps verifying against the certificate IP subjectAltName', async () => {
    const good = await send(issueCert('IP:127.0.0.1'), 'sips:alice@127.0.0.1');
    expect(good.final.status).to.equal(200);
    const bad = await send(issueCert('URI:sip:example.test'), 'sips:alice@127.0.0.1');
    expect(bad.final.status).to.equal(503);
  });

  it('the first Route decides the domain (loose routing): a Route to sips:proxy.test needs a certificate for proxy.test', async () => {
    const far = await server(issueCert('URI:sip:proxy.test'));
    const near = await client();
    const routed = options('sips:alice@example.test');
    routed.prependHeader('Route', '<sips:proxy.test;lr>');
    const final = await near.request(routed, { target: { protocol: 'tls', address: '127.0.0.1', port: far.port } }).final;
    expect(final.status).to.equal(200);
  });

  it('a connection verified for one domain is not reused for a domain its certificate does not name', async () => {
    const far = await server(issueCert('URI:sip:example.test'));
    const near = await client();
    const target = { protocol: 'tls' as const, address: '127.0.0.1', port: far.port };
    expect((await near.request(options('sips:alice@example.test'), { target }).final).status).to.equal(200);
    expect((await near.request(options('sips:alice@other.test'), { target }).final).status).to.equal(503);
    expect(far.seen.map((m) => m.requestUri.host)).to.deep.equal(['example.test']);
    expect((await near.request(options('sips:bob@example.test'), { target }).final).status).to.equal(200);
  });

  describe('which names a certificate carries (§7.1) and how they compare (§7.2)', () => {
    const cert = (subjectaltname: string | undefined, cn?: string): PeerCertificate =>
      ({ subjectaltname, subject: cn === undefined ? {} : { CN: cn } }) as unknown as PeerCertificate;

    it('URI sip: hosts (no user part, not sips:), non-wildcard DNS names; CN only without subjectAltName', () => {
      expect(sipDomainIdentities(cert('URI:sip:a.test, URI:sips:b.test, URI:sip:carol@c.test, DNS:d.test, DNS:*.e.test, IP Address:127.0.0.1', 'f.test'))).to.deep.equal([
        'a.test',
        'd.test',
      ]);
      expect(sipDomainIdentities(cert(undefined, 'F.test'))).to.deep.equal(['f.test']);
      expect(sipDomainIdentities(cert('IP Address:127.0.0.1', 'f.test'))).to.deep.equal([]);
      expect(sipDomainIdentities(cert('URI:"sip:a.test;x=1,2"'))).to.deep.equal(['a.test']);
    });

    it('whole-name, case-insensitive comparison', () => {
      expect(checkSipIdentity('EXAMPLE.test', cert('URI:sip:example.test'))).to.equal(undefined);
      expect(checkSipIdentity('example.test', cert('DNS:www.example.test'))).to.be.an('error');
      expect(checkSipIdentity('www.example.test', cert('DNS:example.test'))).to.be.an('error');
      expect(checkSipIdentity('*.example.test', cert('DNS:*.example.test'))).to.be.an('error');
    });
  });

  it('with no domain on the target the transport checks the address, as before (the test CA, SAN IP:127.0.0.1)', async () => {
    const certs = testCerts();
    const sink = new EventRecorder();
    const far = new TlsTransport({ address: '127.0.0.1', port: 0, sink, tls: { key: certs.serverKey, cert: certs.serverCert } });
    cleanup.add('far', far, (t) => t.close());
    await far.start();
    const near = new TlsTransport({ address: '127.0.0.1', port: 0, sink: new EventRecorder(), tls: { ca: certs.ca } });
    cleanup.add('near', near, (t) => t.close());
    await near.start();
    const id = callId('plain');
    await near.send(requestBytes({ via: `SIP/2.0/TLS ${sentBy(near.local)};branch=z9hG4bK-plain`, callId: id }), far.local);
    await nextMessage(sink, id);
  });
});
