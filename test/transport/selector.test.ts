// TransportSelector on real loopback transports, against docs/transport-layer.md and
// RFC 3261 §18.1.1 (sending requests), §18.2.2 (sending responses), RFC 3581 §4.
import { expect } from 'chai';
import {
  TcpTransport,
  TransportSelector,
  UdpTransport,
  createRequest,
  createResponse,
  parseMessage,
  type SipMessage,
  type Target,
  type Tuple,
  LocalContact,
} from '../../src/index.js';
import {
  Cleanup,
  EventRecorder,
  RawTcpServer,
  RawUdp,
  callId,
  closedTcpPort,
  nextFailure,
  nextMessage,
  rawConnect,
  requestBytes,
  responseBytes,
  show,
  startLine,
  until,
  type RawConn,
  rejection,
} from '../support/transport-harness.js';

/** A request as a UA builds it before the transport fills in where it is sent from. */
function outgoing(init: { id?: string; body?: string; via?: string } = {}): SipMessage {
  return createRequest({
    method: 'MESSAGE',
    uri: 'sip:bob@127.0.0.1',
    from: '<sip:alice@parley.test>',
    to: '<sip:bob@parley.test>',
    callId: init.id ?? callId('sel'),
    via: init.via ?? 'SIP/2.0/UDP 0.0.0.0;branch=z9hG4bK-keep;x-keep=1',
    contact: new LocalContact('alice'),
    body: init.body ?? 'hi',
    contentType: 'text/plain',
  });
}

type Udp = { transport: UdpTransport; sink: EventRecorder };
type Tcp = { transport: TcpTransport; sink: EventRecorder };

describe('TransportSelector (RFC 3261 §18)', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  async function udp(address = '127.0.0.1', port = 0): Promise<Udp> {
    const sink = new EventRecorder();
    const transport = new UdpTransport({ address, port, sink });
    cleanup.add(`udp ${address}`, transport, (t) => t.close());
    await transport.start();
    return { transport, sink };
  }

  async function tcp(address = '127.0.0.1', port = 0): Promise<Tcp> {
    const sink = new EventRecorder();
    const transport = new TcpTransport({ address, port, sink });
    cleanup.add(`tcp ${address}`, transport, (t) => t.close());
    await transport.start();
    return { transport, sink };
  }

  /** A UDP and a TCP transport on the same port number (retrying if the TCP port is taken). */
  async function udpAndTcpOnOnePort(): Promise<{ udp: Udp; tcp: Tcp; port: number }> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 10; attempt++) {
      const u = await udp();
      try {
        const t = await tcp('127.0.0.1', u.transport.local.port);
        return { udp: u, tcp: t, port: u.transport.local.port };
      } catch (error) {
        lastError = error;
      }
    }
    throw new Error(`no port free for both UDP and TCP: ${String(lastError)}`);
  }

  async function rawUdp(address = '127.0.0.1'): Promise<RawUdp> {
    return cleanup.add('raw udp', await RawUdp.open(address), (r) => r.close());
  }

  async function rawTcpServer(): Promise<RawTcpServer> {
    return cleanup.add('raw tcp server', await RawTcpServer.listen('127.0.0.1'), (s) => s.close());
  }

  async function rawTcpClient(to: Tuple): Promise<RawConn> {
    return cleanup.add('raw tcp client', await rawConnect(to.address, to.port), (c) => c.destroy());
  }

  /** Proves `peer` received nothing more than `expected` datagrams, by a marker from `from`. */
  async function expectNoMoreDatagrams(peer: RawUdp, expected: number, from: UdpTransport): Promise<void> {
    const marker = responseBytes({ callId: callId('marker') });
    await from.send(marker, peer.tuple);
    const datagrams = await peer.received(expected + 1, 'the marker');
    expect(datagrams.length).to.equal(expected + 1);
    expect(datagrams[expected]!.data.equals(marker), `datagram #${expected + 1} at :${peer.port} is the marker, got ${show(datagrams[expected]!.data)}`).to.equal(true);
  }

  describe('transmit (§18.1.1)', () => {
    it('over UDP: fills the top Via (UDP, sent-by = local address:port, branch and other parameters kept) and a 0.0.0.0 Contact (no transport parameter)', async () => {
      const client = await udp();
      const peer = await rawUdp();
      const selector = new TransportSelector({ transports: [client.transport] });
      const sent = await selector.transmit(outgoing(), peer.tuple, 'tid-udp');
      expect(sent.transport).to.equal(client.transport);
      expect(sent.target).to.deep.equal(peer.tuple);
      expect(sent.connectionId).to.equal(undefined);

      const [datagram] = await peer.received(1);
      expect(datagram!.data.equals(sent.bytes), show(datagram!.data)).to.equal(true);
      expect(datagram!.from.port).to.equal(client.transport.local.port);
      const message = parseMessage(datagram!.data);
      expect(message.via.length).to.equal(1);
      const via = message.via[0]!;
      expect([via.transport, via.host, via.port, via.branch, via.params['x-keep']]).to.deep.equal([
        'UDP',
        '127.0.0.1',
        client.transport.local.port,
        'z9hG4bK-keep',
        '1',
      ]);
      const contact = message.contact[0]!.uri;
      expect([contact.user, contact.host, contact.port, contact.params.transport]).to.deep.equal(['alice', '127.0.0.1', client.transport.local.port, undefined]);
    });

    it('over TCP: Via SIP/2.0/TCP with the TCP transport\'s listening address and port, Contact ;transport=tcp', async () => {
      const clientUdp = await udp();
      const clientTcp = await tcp();
      const server = await tcp();
      const selector = new TransportSelector({ transports: [clientUdp.transport, clientTcp.transport] });
      const id = callId('sel-tcp');
      const sent = await selector.transmit(outgoing({ id }), server.transport.local);
      expect(sent.transport).to.equal(clientTcp.transport);
      expect(sent.target).to.deep.equal(server.transport.local);
      expect(sent.connectionId).to.be.a('number');

      const arrived = await nextMessage(server.sink, id);
      expect(arrived.message.toBuffer().equals(sent.bytes), show(arrived.message)).to.equal(true);
      const via = arrived.message.via[0]!;
      expect([via.transport, via.host, via.port, via.branch, via.params['x-keep']]).to.deep.equal([
        'TCP',
        '127.0.0.1',
        clientTcp.transport.local.port,
        'z9hG4bK-keep',
        '1',
      ]);
      const contact = arrived.message.contact[0]!.uri;
      expect([contact.user, contact.host, contact.port, contact.params.transport]).to.deep.equal(['alice', '127.0.0.1', clientTcp.transport.local.port, 'tcp']);
    });

    it('picks the transport of the target\'s address family: an IPv6 target goes out on the ::1 transport, Via and Contact host [::1]', async () => {
      const v4 = await udp('127.0.0.1');
      const v6 = await udp('::1');
      const peer = await rawUdp('::1');
      const selector = new TransportSelector({ transports: [v4.transport, v6.transport] });
      const sent = await selector.transmit(outgoing(), peer.tuple);
      expect(sent.transport).to.equal(v6.transport);
      const [datagram] = await peer.received(1);
      expect(datagram!.from.address).to.equal('::1');
      const message = parseMessage(datagram!.data);
      expect([message.via[0]!.host, message.via[0]!.port]).to.deep.equal(['[::1]', v6.transport.local.port]);
      expect([message.contact[0]!.uri.host, message.contact[0]!.uri.port]).to.deep.equal(['[::1]', v6.transport.local.port]);
    });

    it('a request over 1300 bytes to a UDP target goes over TCP to the same address and port; its top Via says TCP', async () => {
      const server = await udpAndTcpOnOnePort();
      const clientUdp = await udp();
      const clientTcp = await tcp();
      const selector = new TransportSelector({ transports: [clientUdp.transport, clientTcp.transport] });
      const id = callId('big');
      const target: Target = { protocol: 'udp', address: '127.0.0.1', port: server.port };
      const sent = await selector.transmit(outgoing({ id, body: 'x'.repeat(1100) }), target);
      expect(sent.bytes.length).to.be.within(1301, 1500);
      expect(sent.transport).to.equal(clientTcp.transport);
      expect(sent.target).to.deep.equal({ protocol: 'tcp', address: '127.0.0.1', port: server.port });

      const arrived = await nextMessage(server.tcp.sink, id);
      expect(arrived.message.toBuffer().equals(sent.bytes)).to.equal(true);
      expect(arrived.message.via[0]!.transport).to.equal('TCP');
      expect(arrived.message.via[0]!.port).to.equal(clientTcp.transport.local.port);
      // Nothing went to the UDP side: a later datagram is the first thing it sees.
      const sentinel = callId('sentinel');
      await clientUdp.transport.send(requestBytes({ via: `SIP/2.0/UDP 127.0.0.1:${clientUdp.transport.local.port};branch=z9hG4bK-s`, callId: sentinel }), server.udp.transport.local);
      await nextMessage(server.udp.sink, sentinel);
      expect(server.udp.sink.types).to.deep.equal(['message']);
    });

    it('with allowTcpSwitch false the large request goes over UDP', async () => {
      const server = await udpAndTcpOnOnePort();
      const clientUdp = await udp();
      const clientTcp = await tcp();
      const selector = new TransportSelector({ transports: [clientUdp.transport, clientTcp.transport] });
      const id = callId('big-udp');
      const sent = await selector.transmit(outgoing({ id, body: 'x'.repeat(1100) }), { protocol: 'udp', address: '127.0.0.1', port: server.port, allowTcpSwitch: false });
      expect(sent.bytes.length).to.be.within(1301, 1500);
      expect(sent.transport).to.equal(clientUdp.transport);
      expect(sent.target).to.deep.equal({ protocol: 'udp', address: '127.0.0.1', port: server.port });
      const arrived = await nextMessage(server.udp.sink, id);
      expect(arrived.message.toBuffer().equals(sent.bytes)).to.equal(true);
      expect(arrived.message.via[0]!.transport).to.equal('UDP');
      expect(server.tcp.sink.types).to.deep.equal([]);
      expect(server.tcp.transport.connections.size).to.equal(0);
      expect(clientTcp.transport.connections.size).to.equal(0);
    });

    it('the switch point is exact: 1300 bytes stay on UDP, 1301 bytes go over TCP', async () => {
      const server = await udpAndTcpOnOnePort();
      const clientUdp = await udp();
      const clientTcp = await tcp();
      const selector = new TransportSelector({ transports: [clientUdp.transport, clientTcp.transport] });
      const target = { protocol: 'udp' as const, address: '127.0.0.1', port: server.port };
      // Same Call-ID length and branch every time, so only the body length changes the size.
      const make = (pad: number, k: number): SipMessage => outgoing({ id: `edge-${k}@parley.test`, body: 'x'.repeat(pad) });
      const probe = await selector.transmit(make(800, 0), { ...target, allowTcpSwitch: false });
      await nextMessage(server.udp.sink, 'edge-0@parley.test');
      const pad = 800 + 1300 - probe.bytes.length;
      expect(pad, 'Content-Length keeps 3 digits').to.be.within(100, 998);

      const at1300 = await selector.transmit(make(pad, 1), target);
      expect(at1300.bytes.length).to.equal(1300);
      expect(at1300.transport).to.equal(clientUdp.transport);
      await nextMessage(server.udp.sink, 'edge-1@parley.test');

      const at1301 = await selector.transmit(make(pad + 1, 2), target);
      // 1301 bytes as prepared for UDP; over TCP our Contact names the transport it now goes on.
      expect(at1301.bytes.length).to.equal(1301 + ';transport=tcp'.length);
      expect(at1301.transport).to.equal(clientTcp.transport);
      const overTcp = await nextMessage(server.tcp.sink, 'edge-2@parley.test');
      expect(overTcp.message.via[0]!.transport).to.equal('TCP');
      expect(overTcp.message.contact[0]!.uri.toString()).to.equal(`sip:alice@127.0.0.1:${clientTcp.transport.local.port};transport=tcp`);
    });
  });

  describe('retransmit', () => {
    it('sends the same bytes again, without re-serializing the (since changed) message', async () => {
      const client = await udp();
      const peer = await rawUdp();
      const selector = new TransportSelector({ transports: [client.transport] });
      const request = outgoing();
      const sent = await selector.transmit(request, peer.tuple);
      request.setHeader('Subject', 'changed after the first transmission');
      await selector.retransmit(sent);
      const datagrams = await peer.received(2);
      expect(datagrams[0]!.data.equals(sent.bytes)).to.equal(true);
      expect(datagrams[1]!.data.equals(sent.bytes), show(datagrams[1]!.data)).to.equal(true);
      await expectNoMoreDatagrams(peer, 2, client.transport);
    });
  });

  describe('respond (§18.2.2)', () => {
    it('UDP: a response goes to the top Via\'s received address and rport (RFC 3581 §4)', async () => {
      const server = await udp();
      const peer = await rawUdp();
      const id = callId('rport');
      await peer.send(requestBytes({ via: 'SIP/2.0/UDP client.invalid:5999;rport;branch=z9hG4bK-rp', callId: id }), server.transport.local);
      const arrived = await nextMessage(server.sink, id);
      const selector = new TransportSelector({ transports: [server.transport] });
      const sent = await selector.respond(createResponse(arrived.message, 200), { source: arrived.source });
      expect(sent.transport).to.equal(server.transport);
      expect(sent.target).to.deep.equal(peer.tuple);
      const [answer] = await peer.received(1);
      expect(startLine(answer!.data)).to.equal('SIP/2.0 200 OK');
      expect(answer!.data.equals(sent.bytes)).to.equal(true);
      const via = parseMessage(answer!.data).via[0]!;
      expect([via.received, via.rport]).to.deep.equal(['127.0.0.1', peer.port]);
      await expectNoMoreDatagrams(peer, 1, server.transport);
    });

    it('UDP: the Via decides, not the packet source: received + rport beat the sent-by port', async () => {
      const server = await udp();
      const [sentByPeer, rportPeer, sourcePeer] = [await rawUdp(), await rawUdp(), await rawUdp()];
      const request = parseMessage(
        requestBytes({ via: `SIP/2.0/UDP [::1]:${sentByPeer.port};received=127.0.0.1;rport=${rportPeer.port};branch=z9hG4bK-v` }),
      );
      const selector = new TransportSelector({ transports: [server.transport] });
      const sent = await selector.respond(createResponse(request, 200), { source: sourcePeer.tuple });
      expect(sent.target).to.deep.equal(rportPeer.tuple);
      const [answer] = await rportPeer.received(1);
      expect(answer!.data.equals(sent.bytes)).to.equal(true);
      await expectNoMoreDatagrams(sentByPeer, 0, server.transport);
      await expectNoMoreDatagrams(sourcePeer, 0, server.transport);
    });

    it('UDP: received without rport → the received address and the sent-by port', async () => {
      const server = await udp();
      const peer = await rawUdp();
      const request = parseMessage(requestBytes({ via: `SIP/2.0/UDP [::1]:${peer.port};received=127.0.0.1;branch=z9hG4bK-r` }));
      const selector = new TransportSelector({ transports: [server.transport] });
      const sent = await selector.respond(createResponse(request, 200), { source: { protocol: 'udp', address: '127.0.0.1', port: peer.port } });
      expect(sent.target).to.deep.equal(peer.tuple);
      await peer.received(1);
      expect(peer.datagrams[0]!.data.equals(sent.bytes)).to.equal(true);
    });

    it('UDP: maddr → the maddr address and the sent-by port', async () => {
      const server = await udp();
      const peer = await rawUdp();
      const other = await rawUdp();
      const request = parseMessage(requestBytes({ via: `SIP/2.0/UDP [::1]:${peer.port};maddr=127.0.0.1;branch=z9hG4bK-m` }));
      const selector = new TransportSelector({ transports: [server.transport] });
      const sent = await selector.respond(createResponse(request, 200), { source: other.tuple });
      expect(sent.target).to.deep.equal(peer.tuple);
      const [answer] = await peer.received(1);
      expect(answer!.data.equals(sent.bytes)).to.equal(true);
      await expectNoMoreDatagrams(other, 0, server.transport);
    });

    it('TCP: on the connection the request came in on', async () => {
      const client = await tcp();
      const server = await tcp();
      const clientSelector = new TransportSelector({ transports: [client.transport] });
      const serverSelector = new TransportSelector({ transports: [server.transport] });
      const id = callId('same-conn');
      const out = await clientSelector.transmit(outgoing({ id }), server.transport.local, 'tid-tcp');
      const arrived = await nextMessage(server.sink, id);
      const sent = await serverSelector.respond(createResponse(arrived.message, 202), { source: arrived.source, connectionId: arrived.connectionId });
      expect(sent.connectionId).to.equal(arrived.connectionId);
      expect(sent.target).to.deep.equal(arrived.source);
      const back = await nextMessage(client.sink, id);
      expect(startLine(back.message.toBuffer())).to.equal('SIP/2.0 202 Accepted');
      expect(back.connectionId).to.equal(out.connectionId);
      expect(client.transport.connections.size).to.equal(1);
      expect(server.transport.connections.size).to.equal(1);
    });

    it('TCP: once that connection is closed, a new connection to the received address and the sent-by port', async () => {
      const server = await tcp();
      const listener = await rawTcpServer();
      const conn = await rawTcpClient(server.transport.local);
      const id = callId('reconnect');
      await conn.write(requestBytes({ via: `SIP/2.0/TCP [::1]:${listener.port};branch=z9hG4bK-re`, callId: id }));
      const arrived = await nextMessage(server.sink, id);
      expect(arrived.message.via[0]!.received).to.equal('127.0.0.1');
      await conn.destroy();
      await until(() => server.transport.connections.size === 0, 'the server to notice the closed connection');

      const selector = new TransportSelector({ transports: [server.transport] });
      const sent = await selector.respond(createResponse(arrived.message, 200), { source: arrived.source, connectionId: arrived.connectionId });
      expect(sent.target).to.deep.equal(listener.tuple());
      expect(sent.connectionId).to.be.a('number').and.not.equal(arrived.connectionId);
      const fresh = await listener.connection(0);
      const bytes = await fresh.receivedBytes(sent.bytes.length);
      expect(bytes.equals(sent.bytes), show(bytes)).to.equal(true);
      expect(startLine(bytes)).to.equal('SIP/2.0 200 OK');
    });
  });

  describe('errors', () => {
    it('no transport for the protocol or the address family → TRANSPORT_NO_TRANSPORT', async () => {
      const v4 = await udp('127.0.0.1');
      const selector = new TransportSelector({ transports: [v4.transport] });
      const tcpTarget: Tuple = { protocol: 'tcp', address: '127.0.0.1', port: 5060 };
      const overTcp = await rejection(selector.transmit(outgoing(), tcpTarget));
      expect(overTcp.code).to.equal('TRANSPORT_NO_TRANSPORT');
      const overV6 = await rejection(selector.transmit(outgoing(), { protocol: 'udp', address: '::1', port: 5060 }));
      expect(overV6.code).to.equal('TRANSPORT_NO_TRANSPORT');
      const response = createResponse(parseMessage(requestBytes({ via: 'SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-nt' })), 200);
      const respondTcp = await rejection(selector.respond(response, { source: tcpTarget }));
      expect(respondTcp.code).to.equal('TRANSPORT_NO_TRANSPORT');
      expect(v4.sink.types).to.deep.equal([]);
    });

    it('a failed transmit rejects with the transport\'s error and a failure event carries the tid', async () => {
      const client = await tcp();
      const selector = new TransportSelector({ transports: [client.transport] });
      const target: Tuple = { protocol: 'tcp', address: '127.0.0.1', port: await closedTcpPort() };
      const error = await rejection(selector.transmit(outgoing({ via: 'SIP/2.0/TCP 0.0.0.0;branch=z9hG4bK-f' }), target, 'tid-refused'));
      expect(error.code).to.equal('TRANSPORT_REFUSED');
      const failure = await nextFailure(client.sink);
      expect([failure.tid, failure.error.code]).to.deep.equal(['tid-refused', 'TRANSPORT_REFUSED']);
      expect(failure.target).to.deep.equal(target);
      expect(client.sink.types).to.deep.equal(['failure']);
    });
  });
});
