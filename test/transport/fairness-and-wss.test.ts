// Fair service across connections (one busy connection must not starve the others) and WSS
// (RFC 7118 §3: SIP over secure WebSocket), on real loopback sockets.
import { expect } from 'chai';
import { TcpTransport, TransportSelector, WsTransport, createResponse } from '../../src/index.js';
import { testCerts } from '../support/certs.js';
import { Cleanup, EventRecorder, callId, nextMessage, rawConnect, requestBytes, until } from '../support/transport-harness.js';

describe('transport fairness and WSS', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  it('a flood on one connection does not starve another: at most messagesPerTurn per turn', async () => {
    const sink = new EventRecorder();
    const server = cleanup.add('tcp server', new TcpTransport({ address: '127.0.0.1', port: 0, sink, messagesPerTurn: 4 }), (t) => t.close());
    await server.start();
    const flooder = cleanup.add('flooder', await rawConnect('127.0.0.1', server.local.port), (c) => c.socket.destroy());
    const quiet = cleanup.add('quiet', await rawConnect('127.0.0.1', server.local.port), (c) => c.socket.destroy());
    await until(() => server.connections.size === 2, 'both connections accepted');

    const flood = Buffer.concat(Array.from({ length: 2000 }, (_, i) => requestBytes({ callId: `flood-${i}` })));
    const lonely = callId('quiet');
    flooder.socket.write(flood);
    quiet.socket.write(requestBytes({ callId: lonely }));
    await nextMessage(sink, lonely);
    await until(() => sink.messages.length === 2001, 'every message handed up', 10_000);

    // The flood's first read alone holds ~180 messages; without pacing the quiet connection's
    // message would wait behind all of them.
    const position = sink.messages.findIndex((e) => e.message.callId === lonely);
    expect(position, `the quiet connection's message came ${position}th`).to.be.below(40);
    // And the flood itself arrived whole and in order.
    const order = sink.messages.filter((e) => e.message.callId.startsWith('flood-')).map((e) => Number(e.message.callId.slice(6)));
    expect(order).to.deep.equal(Array.from({ length: 2000 }, (_, i) => i));
  });

  it('WSS: a secure WebSocket transport carries a request and its response (RFC 7118 §3)', async () => {
    const certs = testCerts();
    const serverSink = new EventRecorder();
    const clientSink = new EventRecorder();
    const server = cleanup.add(
      'wss server',
      new WsTransport({ address: '127.0.0.1', port: 0, sink: serverSink, secure: true, tls: { key: certs.serverKey, cert: certs.serverCert } }),
      (t) => t.close(),
    );
    await server.start();
    expect(server.protocol).to.equal('wss');
    expect(server.reliable).to.equal(true);
    const client = cleanup.add(
      'wss client',
      new WsTransport({ address: '127.0.0.1', port: 0, sink: clientSink, secure: true, tls: { ca: certs.ca } }),
      (t) => t.close(),
    );
    await client.start();

    const id = callId('wss');
    const target = { protocol: 'wss' as const, address: '127.0.0.1', port: server.local.port };
    await client.send(requestBytes({ callId: id, via: 'SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKwss1;rport' }), target);
    const received = await nextMessage(serverSink, id);
    expect(received.source.protocol).to.equal('wss');
    expect(received.message.via[0]!.received).to.equal('127.0.0.1');

    const selector = new TransportSelector({ transports: [server] });
    await selector.respond(createResponse(received.message, 200), received);
    const answer = await nextMessage(clientSink, id);
    expect(answer.message.status).to.equal(200);
    expect(answer.connectionId).to.be.a('number');
  });

  it('WSS: a server certificate the client does not trust fails with TRANSPORT_TLS', async () => {
    const certs = testCerts();
    const server = cleanup.add(
      'wss server (bad cert)',
      new WsTransport({ address: '127.0.0.1', port: 0, sink: new EventRecorder(), secure: true, tls: { key: certs.badKey, cert: certs.badCert } }),
      (t) => t.close(),
    );
    await server.start();
    const clientSink = new EventRecorder();
    const client = cleanup.add('wss client', new WsTransport({ address: '127.0.0.1', port: 0, sink: clientSink, secure: true, tls: { ca: certs.ca } }), (t) => t.close());
    const error = await client
      .send(requestBytes(), { protocol: 'wss', address: '127.0.0.1', port: server.local.port }, 'tid-wss')
      .then(() => undefined, (e: unknown) => e);
    expect(error).to.have.property('code', 'TRANSPORT_TLS');
    expect(clientSink.failures.map((f) => [f.tid, f.error.code])).to.deep.equal([['tid-wss', 'TRANSPORT_TLS']]);
  });
});
