// TcpTransport on real loopback sockets, against docs/transport-layer.md, RFC 3261 §18 and
// RFC 5626 §3.5.1 / §4.4.1. Peers are either TcpTransports or raw node:net sockets that record
// every byte. Idle timeouts and keep-alive timers run on a ManualClock: no test sleeps on them.
import { expect } from 'chai';
import {
  ManualClock,
  StreamFramer,
  TcpTransport,
  TransportSelector,
  createResponse,
  type SipMessage,
  type StreamOptions,
  type Tuple,
} from '../../src/index.js';
import {
  Cleanup,
  EventRecorder,
  RawTcpServer,
  callId,
  closedTcpPort,
  nextEvent,
  nextFailure,
  nextMessage,
  rawConnect,
  requestBytes,
  responseBytes,
  show,
  startLine,
  turns,
  until,
  type FlowFailedEvent,
  type RawConn,
  rejection,
  sentBy,
} from '../support/transport-harness.js';

/** Splits what a peer received into framed items (every byte must frame cleanly). */
function frame(bytes: Buffer): ReturnType<StreamFramer['push']> {
  return new StreamFramer().push(bytes);
}

type Side = { transport: TcpTransport; sink: EventRecorder };

describe('TcpTransport (RFC 3261 §18)', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  async function tcp(options: Partial<StreamOptions> & { address?: string } = {}): Promise<Side> {
    const { address = '127.0.0.1', ...stream } = options;
    const sink = new EventRecorder();
    const transport = new TcpTransport({ address, port: 0, sink, ...stream });
    cleanup.add(`tcp ${address}`, transport, (t) => t.close());
    await transport.start();
    return { transport, sink };
  }

  async function rawServer(address = '127.0.0.1'): Promise<RawTcpServer> {
    return cleanup.add('raw tcp server', await RawTcpServer.listen(address), (s) => s.close());
  }

  async function rawClient(to: Tuple): Promise<RawConn> {
    return cleanup.add('raw tcp client', await rawConnect(to.address, to.port), (c) => c.destroy());
  }

  function tcpRequest(from: { address: string; port: number }, id = callId('tcp'), extra: Partial<Parameters<typeof requestBytes>[0]> = {}): Buffer {
    return requestBytes({ via: `SIP/2.0/TCP ${sentBy(from)};branch=z9hG4bK-${id.slice(0, 12)}`, callId: id, ...extra });
  }

  describe('a TcpTransport pair (RFC 3261 §18.1.1, §18.2.2)', () => {
    for (const family of [
      { name: 'IPv4', address: '127.0.0.1' },
      { name: 'IPv6', address: '::1' },
    ]) {
      it(`${family.name}: the request arrives with a connectionId and the response sent by respond() comes back on the same connection`, async () => {
        const client = await tcp({ address: family.address });
        const server = await tcp({ address: family.address });
        expect(server.transport.protocol).to.equal('tcp');
        expect(server.transport.reliable).to.equal(true);
        expect(server.transport.local).to.deep.equal({ protocol: 'tcp', address: family.address, port: server.transport.local.port });
        const selector = new TransportSelector({ transports: [server.transport] });

        const id = callId('pair');
        const request = tcpRequest(client.transport.local, id);
        const clientConnection = await client.transport.send(request, server.transport.local);
        expect(clientConnection).to.be.a('number');

        const arrived = await nextMessage(server.sink, id);
        expect(arrived.message.toBuffer().equals(request), show(arrived.message)).to.equal(true);
        expect(arrived.connectionId).to.be.a('number');
        expect(arrived.source.protocol).to.equal('tcp');
        expect(arrived.source.address).to.equal(family.address);
        expect(arrived.local).to.deep.equal(server.transport.local);

        const sent = await selector.respond(createResponse(arrived.message, 200), { source: arrived.source, connectionId: arrived.connectionId });
        expect(sent.transport).to.equal(server.transport);
        expect(sent.connectionId).to.equal(arrived.connectionId);
        const back = await nextMessage(client.sink, id);
        expect(startLine(back.message.toBuffer())).to.equal('SIP/2.0 200 OK');
        expect(back.message.toBuffer().equals(sent.bytes)).to.equal(true);
        expect(back.connectionId).to.equal(clientConnection);
        expect(back.source).to.deep.equal(server.transport.local);

        // A second request reuses the connection in both directions.
        const id2 = callId('pair2');
        expect(await client.transport.send(tcpRequest(client.transport.local, id2), server.transport.local)).to.equal(clientConnection);
        const second = await nextMessage(server.sink, id2);
        expect(second.connectionId).to.equal(arrived.connectionId);
        expect(second.source).to.deep.equal(arrived.source);

        expect(client.transport.connections.size, 'client connections').to.equal(1);
        expect(client.transport.connections.has(server.transport.local)).to.equal(true);
        expect(server.transport.connections.size, 'server connections').to.equal(1);
        expect(client.sink.types).to.deep.equal(['message']);
        expect(server.sink.types).to.deep.equal(['message', 'message']);
      });
    }
  });

  describe('framing a byte stream (RFC 3261 §18.3)', () => {
    it('a ~300-byte message split in two at every byte position arrives whole, once each', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      const body = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n';
      const make = (k: number): Buffer =>
        requestBytes({
          method: 'MESSAGE',
          via: `SIP/2.0/TCP 127.0.0.1:${conn.localPort};branch=z9hG4bK-split${String(k).padStart(4, '0')}`,
          callId: `split-${String(k).padStart(4, '0')}@parley.test`,
          cseq: 1000 + k,
          body,
          extra: ['Content-Type: application/sdp'],
        });
      const length = make(0).length;
      expect(length).to.be.within(280, 330);
      const sent: Buffer[] = [];
      for (let at = 1; at < length; at++) {
        const bytes = make(at);
        expect(bytes.length).to.equal(length);
        sent.push(bytes);
        await conn.write(bytes.subarray(0, at));
        await turns(2); // let the server read the first piece on its own
        await conn.write(bytes.subarray(at));
        const event = await nextMessage(server.sink, `split-${String(at).padStart(4, '0')}@parley.test`);
        expect(event.message.toBuffer().equals(bytes), `split at ${at}: ${show(event.message)}`).to.equal(true);
      }
      const messages = server.sink.messages;
      expect(messages.length).to.equal(length - 1);
      expect(server.sink.events.length).to.equal(length - 1);
      expect(new Set(messages.map((e) => e.connectionId)).size, 'one connection').to.equal(1);
      for (const e of messages) expect(e.source).to.deep.equal({ protocol: 'tcp', address: '127.0.0.1', port: conn.localPort });
      expect(server.transport.connections.size).to.equal(1);
    });

    it('three messages in one write are delivered as three events, in order', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      const ids = [callId('b1'), callId('b2'), callId('b3')];
      const sent = ids.map((id, k) => tcpRequest({ address: '127.0.0.1', port: conn.localPort }, id, { body: 'x'.repeat(k * 10) }));
      await conn.write(Buffer.concat(sent));
      await nextMessage(server.sink, ids[2]);
      expect(server.sink.messages.map((e) => e.message.callId)).to.deep.equal(ids);
      server.sink.messages.forEach((e, k) => expect(e.message.toBuffer().equals(sent[k]!)).to.equal(true));
    });
  });

  describe('keep-alive pings from the peer (RFC 5626 §3.5.1)', () => {
    it('CRLFCRLF is answered with exactly CRLF', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      await conn.write('\r\n\r\n');
      await conn.receivedBytes(2, 'the pong');
      conn.socket.end();
      const all = await conn.ended();
      expect(all.toString('latin1')).to.equal('\r\n');
      expect(server.sink.types).to.deep.equal([]);
    });

    it('a ping split across two writes is answered once', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      await conn.write('\r\n');
      await turns(2);
      await conn.write('\r\n');
      await conn.receivedBytes(2, 'the pong');
      conn.socket.end();
      expect((await conn.ended()).toString('latin1')).to.equal('\r\n');
    });

    it('a ping between two messages: both messages go up and exactly one CRLF comes back', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      const [m1, m2] = [callId('p1'), callId('p2')].map((id) => tcpRequest({ address: '127.0.0.1', port: conn.localPort }, id));
      await conn.write(Buffer.concat([m1!, Buffer.from('\r\n\r\n'), m2!]));
      await conn.receivedBytes(2, 'the pong');
      await nextMessage(server.sink, parseCallId(m2!));
      expect(server.sink.messages.map((e) => e.message.callId)).to.deep.equal([parseCallId(m1!), parseCallId(m2!)]);
      expect(server.sink.messages.map((e, k) => e.message.toBuffer().equals([m1!, m2!][k]!))).to.deep.equal([true, true]);
      conn.socket.end();
      expect((await conn.ended()).toString('latin1')).to.equal('\r\n');
    });
  });

  describe('framing errors (RFC 3261 §18.3)', () => {
    it('a request without Content-Length is answered 400 Bad Request, then the connection is closed', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      const id = callId('nocl');
      await conn.write(tcpRequest({ address: '127.0.0.1', port: conn.localPort }, id, { contentLength: null }));
      const all = await conn.ended('the server to close the connection');
      const items = frame(all);
      expect(items.map((i) => i.type), JSON.stringify(all.toString('latin1'))).to.deep.equal(['message']);
      const answer = (items[0] as { type: 'message'; message: SipMessage }).message;
      expect(startLine(answer.toBuffer())).to.equal('SIP/2.0 400 Bad Request');
      expect(answer.callId).to.equal(id);
      expect(server.sink.types).to.deep.equal([]);
    });

    it('a request with a non-numeric Content-Length is answered 400 Bad Request, then the connection is closed', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      await conn.write(tcpRequest({ address: '127.0.0.1', port: conn.localPort }, callId('badcl'), { extra: ['Content-Length: ten'], contentLength: null }));
      const all = await conn.ended('the server to close the connection');
      expect(startLine(all)).to.equal('SIP/2.0 400 Bad Request');
      expect(frame(all).map((i) => i.type)).to.deep.equal(['message']);
      expect(server.sink.types).to.deep.equal([]);
    });

    it('a garbage start line closes the connection with no answer; the server keeps serving others', async () => {
      const server = await tcp();
      const bad = await rawClient(server.transport.local);
      await bad.write('THIS IS NOT SIP\r\nAt: all\r\n\r\n');
      expect((await bad.ended('the server to close the connection')).length, 'bytes sent back').to.equal(0);

      const good = await rawClient(server.transport.local);
      const id = callId('after-garbage');
      await good.write(tcpRequest({ address: '127.0.0.1', port: good.localPort }, id));
      await nextMessage(server.sink, id);
      expect(server.sink.types).to.deep.equal(['message']);
    });

    it('a response without Content-Length closes the connection with no answer', async () => {
      const server = await tcp();
      const conn = await rawClient(server.transport.local);
      const bytes = responseBytes({ via: `SIP/2.0/TCP 127.0.0.1:${conn.localPort};branch=z9hG4bK-r` });
      await conn.write(Buffer.from(bytes.toString('latin1').replace(/Content-Length: 0\r\n/, ''), 'latin1'));
      expect((await conn.ended('the server to close the connection')).length).to.equal(0);
      expect(server.sink.types).to.deep.equal([]);
    });
  });

  describe('a peer that resets mid-message', () => {
    it('the server keeps running: an existing connection and a new one still work, and nothing is pushed for the cut message', async () => {
      const server = await tcp();
      const other = await rawClient(server.transport.local);
      const resetter = await rawClient(server.transport.local);
      const whole = tcpRequest({ address: '127.0.0.1', port: resetter.localPort }, callId('cut'), { body: 'x'.repeat(100) });
      await resetter.write(whole.subarray(0, Math.floor(whole.length / 2)));
      await turns(2);
      resetter.socket.resetAndDestroy();
      await resetter.ended();

      const id1 = callId('still-open');
      await other.write(tcpRequest({ address: '127.0.0.1', port: other.localPort }, id1));
      await nextMessage(server.sink, id1);

      const client = await tcp();
      const id2 = callId('new-conn');
      await client.transport.send(tcpRequest(client.transport.local, id2), server.transport.local);
      await nextMessage(server.sink, id2);
      expect(server.sink.messages.map((e) => e.message.callId)).to.deep.equal([id1, id2]);
      expect(server.sink.types).to.deep.equal(['message', 'message']);
    });
  });

  describe('connection management', () => {
    it('maxConnections 2: a third outgoing connection closes the least recently used idle one', async () => {
      const client = await tcp({ maxConnections: 2 });
      const [a, b, c] = [await rawServer(), await rawServer(), await rawServer()];
      const send = async (to: RawTcpServer, n: number): Promise<void> => {
        const bytes = tcpRequest(client.transport.local, callId('lru'));
        const before = to.connections[n]?.data.length ?? 0;
        await client.transport.send(bytes, to.tuple());
        const conn = await to.connection(n);
        await conn.receivedBytes(before + bytes.length);
      };
      const aConn = (await send(a, 0), a.connections[0]!);
      const bConn = (await send(b, 0), b.connections[0]!);
      await send(a, 0); // a is now the most recently used
      expect(client.transport.connections.size).to.equal(2);

      await send(c, 0); // evicts b
      await bConn.ended('the least recently used connection (b) to close');
      await turns(5);
      expect(aConn.closed, 'a stays open').to.equal(false);
      expect(c.connections[0]!.closed, 'c stays open').to.equal(false);
      expect(client.transport.connections.size).to.equal(2);
      expect(client.transport.connections.has(a.tuple())).to.equal(true);
      expect(client.transport.connections.has(b.tuple())).to.equal(false);
      expect(client.transport.connections.has(c.tuple())).to.equal(true);

      await send(b, 1); // a new connection to b; a is now the least recently used
      await aConn.ended('the least recently used connection (a) to close');
      await turns(5);
      expect(c.connections[0]!.closed, 'c stays open').to.equal(false);
      expect([a.connections.length, b.connections.length, c.connections.length]).to.deep.equal([1, 2, 1]);
      expect(client.transport.connections.size).to.equal(2);
      expect(client.transport.connections.has(a.tuple())).to.equal(false);
      expect(client.sink.types).to.deep.equal([]);
    });

    it('idleTimeoutMs (ManualClock): an outgoing connection idle that long is closed; a send restarts the wait', async () => {
      const clock = new ManualClock();
      const client = await tcp({ clock, idleTimeoutMs: 1000 });
      const raw = await rawServer();
      const first = tcpRequest(client.transport.local, callId('idle1'));
      await client.transport.send(first, raw.tuple());
      const conn = await raw.connection(0);
      await conn.receivedBytes(first.length);

      clock.advance(600);
      const second = tcpRequest(client.transport.local, callId('idle2'));
      await client.transport.send(second, raw.tuple()); // activity at t=600
      await conn.receivedBytes(first.length + second.length);
      clock.advance(999); // t=1599: 999 ms since the last use
      await turns(5);
      expect(conn.closed, 'closed before idleTimeoutMs passed').to.equal(false);
      expect(client.transport.connections.has(raw.tuple())).to.equal(true);

      clock.advance(2); // t=1601
      await conn.ended('the idle connection to close');
      await until(() => client.transport.connections.size === 0, 'the client forgets the connection');
      expect(raw.connections.length).to.equal(1);
      expect(client.sink.types).to.deep.equal([]);
    });

    it('idleTimeoutMs (ManualClock): an incoming connection idle that long is closed by the server', async () => {
      const clock = new ManualClock();
      const server = await tcp({ clock, idleTimeoutMs: 5000 });
      const conn = await rawClient(server.transport.local);
      const id = callId('idle-in');
      await conn.write(tcpRequest({ address: '127.0.0.1', port: conn.localPort }, id));
      await nextMessage(server.sink, id);
      clock.advance(4999);
      await turns(5);
      expect(conn.closed).to.equal(false);
      clock.advance(2);
      await conn.ended('the server to close the idle connection');
      await until(() => server.transport.connections.size === 0, 'the server forgets the connection');
    });

    it('connecting to a closed port rejects TRANSPORT_REFUSED and pushes a failure event with the tid', async () => {
      const client = await tcp();
      const target: Tuple = { protocol: 'tcp', address: '127.0.0.1', port: await closedTcpPort() };
      const error = await rejection(client.transport.send(tcpRequest(client.transport.local), target, 'tid-refused'));
      expect(error.code).to.equal('TRANSPORT_REFUSED');
      expect(error.target).to.deep.equal(target);
      const failure = await nextFailure(client.sink);
      expect(failure.tid).to.equal('tid-refused');
      expect(failure.target).to.deep.equal(target);
      expect(failure.error.code).to.equal('TRANSPORT_REFUSED');
      expect(client.sink.types).to.deep.equal(['failure']);
      expect(client.transport.connections.size).to.equal(0);
    });
  });

  describe('keep-alive pings we send (RFC 5626 §4.4.1, §3.5.1)', () => {
    const INTERVAL = 30_000;
    const PONG_TIMEOUT = 10_000;

    async function flow(): Promise<{ clock: ManualClock; client: Side; raw: RawTcpServer; conn: RawConn; request: Buffer; connectionId: number | undefined }> {
      const clock = new ManualClock();
      const client = await tcp({ clock, keepAliveIntervalMs: INTERVAL, pongTimeoutMs: PONG_TIMEOUT });
      const raw = await rawServer();
      const request = tcpRequest(client.transport.local, callId('ka'));
      const connectionId = await client.transport.send(request, raw.tuple());
      const conn = await raw.connection(0);
      await conn.receivedBytes(request.length);
      return { clock, client, raw, conn, request, connectionId };
    }

    it('after keepAliveIntervalMs the peer receives CRLFCRLF; with no pong within pongTimeoutMs a flow-failed event is pushed and the connection closes', async () => {
      const { clock, client, raw, conn, request, connectionId } = await flow();
      clock.advance(INTERVAL);
      const got = await conn.receivedBytes(request.length + 4, 'the CRLFCRLF ping');
      expect(got.subarray(request.length).toString('latin1')).to.equal('\r\n\r\n');

      clock.advance(PONG_TIMEOUT + 1);
      const failed = await nextEvent<FlowFailedEvent>(client.sink, (e) => e.type === 'flow-failed', undefined, 'flow-failed');
      expect(failed.connectionId).to.equal(connectionId);
      expect(failed.target).to.deep.equal(raw.tuple());
      expect(failed.reason).to.be.a('string').and.not.equal('');
      const all = await conn.ended('the failed flow to close');
      expect(all.subarray(request.length).toString('latin1'), 'exactly one ping').to.equal('\r\n\r\n');
      await until(() => client.transport.connections.size === 0, 'the client forgets the failed connection');
      expect(client.sink.types).to.deep.equal(['flow-failed']);
    });

    it('a CRLF pong keeps the flow: no flow-failed after pongTimeoutMs, and the next ping follows', async () => {
      const { clock, client, raw, conn, request } = await flow();
      clock.advance(INTERVAL);
      await conn.receivedBytes(request.length + 4, 'the CRLFCRLF ping');
      // The pong, then a request on the same stream: once the request is up, the pong was read.
      const id = callId('after-pong');
      await conn.write(Buffer.concat([Buffer.from('\r\n'), tcpRequest({ address: '127.0.0.1', port: raw.port }, id)]));
      await nextMessage(client.sink, id);

      clock.advance(PONG_TIMEOUT + 1);
      await turns(5);
      expect(client.sink.flowFailures.length).to.equal(0);
      expect(conn.closed).to.equal(false);
      expect(client.transport.connections.has(raw.tuple())).to.equal(true);

      clock.advance(INTERVAL - PONG_TIMEOUT - 1); // t = 2 × interval
      const got = await conn.receivedBytes(request.length + 8, 'the second ping');
      expect(got.subarray(request.length).toString('latin1')).to.equal('\r\n\r\n\r\n\r\n');
      expect(client.sink.types).to.deep.equal(['message']);
    });
  });

  describe('maxBufferedBytes', () => {
    it('a peer whose header line never ends is disconnected (well below the 64 KiB header limit)', async () => {
      const server = await tcp({ maxBufferedBytes: 4096 });
      const conn = await rawClient(server.transport.local);
      const peer: Tuple = { protocol: 'tcp', address: '127.0.0.1', port: conn.localPort };
      await conn.write('OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nX-Endless: ');
      const chunk = Buffer.alloc(1024, 'a');
      let written = 0;
      try {
        // Stops at 48 KiB: a transport without the limit would wait for more under the 64 KiB header limit.
        while (!conn.closed && written < 48 * 1024) {
          await conn.write(chunk);
          written += chunk.length;
          await turns(1);
        }
      } catch {
        // EPIPE / ECONNRESET: the server has closed the connection
      }
      await conn.ended('the server to drop the endless header');
      expect(server.sink.types).to.deep.equal([]);
      await until(() => !server.transport.connections.has(peer), 'the server forgets the connection');
      // RFC 5626 §5.3 / §6: the layers above hear that the flow is gone, with why.
      expect(server.sink.closedFlows).to.have.length(1);
      expect(server.sink.closedFlows[0]!.target).to.deep.equal(peer);
      expect(server.sink.closedFlows[0]!.reason).to.match(/^TRANSPORT_/);
    });
  });
});

function parseCallId(bytes: Buffer): string {
  const m = /\r\nCall-ID: ([^\r]+)\r\n/.exec(bytes.toString('latin1'));
  if (!m) throw new Error('no Call-ID');
  return m[1]!;
}
