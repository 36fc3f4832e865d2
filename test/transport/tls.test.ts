// TlsTransport on real loopback sockets with certificates made at test time (test/support/certs.ts),
// against docs/transport-layer.md and RFC 3261 §26.2 / §18.
import { expect } from 'chai';
import {
  TlsTransport,
  TransportSelector,
  createRequest,
  createResponse,
  type Tuple,
  LocalContact,
} from '../../src/index.js';
import { testCerts, type TestCerts } from '../support/certs.js';
import {
  Cleanup,
  EventRecorder,
  callId,
  nextFailure,
  nextMessage,
  requestBytes,
  show,
  startLine,
  rejection,
  sentBy,
} from '../support/transport-harness.js';

describe('TlsTransport (RFC 3261 §26.2.1, §18)', () => {
  const cleanup = new Cleanup();
  let certs: TestCerts;
  before(function () {
    this.timeout(10_000);
    certs = testCerts();
  });
  afterEach(() => cleanup.run());

  type Side = { transport: TlsTransport; sink: EventRecorder };

  async function tls(role: 'server' | 'bad-server' | 'client', address = '127.0.0.1'): Promise<Side> {
    const sink = new EventRecorder();
    const options =
      role === 'bad-server'
        ? { key: certs.badKey, cert: certs.badCert }
        : role === 'server'
          ? { key: certs.serverKey, cert: certs.serverCert }
          : { key: certs.serverKey, cert: certs.serverCert, ca: certs.ca, rejectUnauthorized: true };
    const transport = new TlsTransport({ address, port: 0, sink, tls: options });
    cleanup.add(`tls ${role} ${address}`, transport, (t) => t.close());
    await transport.start();
    return { transport, sink };
  }

  for (const family of [
    { name: 'IPv4', address: '127.0.0.1' },
    { name: 'IPv6', address: '::1' },
  ]) {
    it(`${family.name}: a client trusting the test CA sends a request; the response comes back on the same connection`, async () => {
      const server = await tls('server', family.address);
      const client = await tls('client', family.address);
      const id = callId('tls');
      const request = requestBytes({ via: `SIP/2.0/TLS ${sentBy(client.transport.local)};branch=z9hG4bK-tls-${family.name}`, callId: id });
      const connectionId = await client.transport.send(request, server.transport.local, 'tid-tls');
      expect(connectionId).to.be.a('number');

      const arrived = await nextMessage(server.sink, id);
      expect(arrived.message.toBuffer().equals(request), show(arrived.message)).to.equal(true);
      expect(arrived.source.protocol).to.equal('tls');
      expect(arrived.source.address).to.equal(family.address);
      expect(arrived.connectionId).to.be.a('number');
      expect(arrived.local).to.deep.equal(server.transport.local);

      const selector = new TransportSelector({ transports: [server.transport] });
      const sent = await selector.respond(createResponse(arrived.message, 200), { source: arrived.source, connectionId: arrived.connectionId });
      expect(sent.connectionId).to.equal(arrived.connectionId);
      const back = await nextMessage(client.sink, id);
      expect(startLine(back.message.toBuffer())).to.equal('SIP/2.0 200 OK');
      expect(back.message.toBuffer().equals(sent.bytes)).to.equal(true);
      expect(back.connectionId).to.equal(connectionId);
      expect(back.source).to.deep.equal(server.transport.local);
      expect(client.transport.connections.size).to.equal(1);
      expect(server.transport.connections.size).to.equal(1);
      expect(client.sink.types).to.deep.equal(['message']);
      expect(server.sink.types).to.deep.equal(['message']);
    });
  }

  it('a server with a self-signed certificate the client does not trust: send rejects TRANSPORT_TLS and a failure event with the tid is pushed', async () => {
    const server = await tls('bad-server');
    const client = await tls('client');
    const target: Tuple = server.transport.local;
    const error = await rejection(client.transport.send(requestBytes({ via: `SIP/2.0/TLS ${sentBy(client.transport.local)};branch=z9hG4bK-bad` }), target, 'tid-bad-cert'));
    expect(error.code).to.equal('TRANSPORT_TLS');
    expect(error.target).to.deep.equal(target);
    const failure = await nextFailure(client.sink);
    expect(failure.tid).to.equal('tid-bad-cert');
    expect(failure.target).to.deep.equal(target);
    expect(failure.error.code).to.equal('TRANSPORT_TLS');
    expect(client.sink.types).to.deep.equal(['failure']);
    expect(client.transport.connections.size).to.equal(0);
    expect(server.sink.types, 'nothing reaches the server').to.deep.equal([]);
  });

  it('TLS is a reliable transport (what a sips: URI needs): protocol tls, reliable true; the selector writes Via TLS and Contact ;transport=tls', async () => {
    const server = await tls('server');
    const client = await tls('client');
    expect(client.transport.protocol).to.equal('tls');
    expect(client.transport.reliable).to.equal(true);
    expect(client.transport.local).to.deep.equal({ protocol: 'tls', address: '127.0.0.1', port: client.transport.local.port });

    const id = callId('sips');
    const request = createRequest({
      method: 'OPTIONS',
      uri: `sip:bob@127.0.0.1:${server.transport.local.port};transport=tls`,
      from: '<sip:alice@parley.test>',
      to: '<sip:bob@parley.test>',
      callId: id,
      via: 'SIP/2.0/TLS 0.0.0.0;branch=z9hG4bK-sips',
      // a sip: Contact: RFC 5630 §3.1.3 deprecates transport=tls on sips: URIs
      contact: new LocalContact('alice'),
    });
    const selector = new TransportSelector({ transports: [client.transport] });
    const sent = await selector.transmit(request, server.transport.local);
    expect(sent.transport).to.equal(client.transport);
    const arrived = await nextMessage(server.sink, id);
    const via = arrived.message.via[0]!;
    expect([via.transport, via.host, via.port, via.branch]).to.deep.equal(['TLS', '127.0.0.1', client.transport.local.port, 'z9hG4bK-sips']);
    const contact = arrived.message.contact[0]!.uri;
    expect([contact.scheme, contact.user, contact.host, contact.port, contact.params.transport]).to.deep.equal([
      'sip',
      'alice',
      '127.0.0.1',
      client.transport.local.port,
      'tls',
    ]);
  });
});
