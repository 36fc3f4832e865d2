// WsTransport (RFC 7118) on real loopback sockets, against docs/transport-layer.md; the peer is either
// a plain `ws` client or another WsTransport.
import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { TransportSelector, WsTransport, createResponse, type Tuple } from '../../src/index.js';
import { Cleanup, EventRecorder, callId, nextMessage, requestBytes, show, startLine, turns, within } from '../support/transport-harness.js';

interface Frame {
  data: Buffer;
  isBinary: boolean;
}

/** A `ws` client that records every frame it receives. */
class WsClient {
  readonly frames: Frame[] = [];
  localPort = 0;
  private waiters: Array<() => void> = [];

  error: Error | undefined;

  private constructor(readonly socket: WebSocket) {
    socket.on('error', (error) => (this.error = error));
    socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      this.frames.push({ data: bytes, isBinary });
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
  }

  static async open(url: string, protocols?: string | string[]): Promise<WsClient> {
    const socket = new WebSocket(url, protocols);
    const client = new WsClient(socket);
    socket.once('upgrade', (res: IncomingMessage) => (client.localPort = res.socket.localPort ?? 0));
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      }),
      `a WebSocket connection to ${url}`,
    );
    return client;
  }

  async frame(index: number): Promise<Frame> {
    while (this.frames.length <= index) {
      await within(new Promise<void>((resolve) => this.waiters.push(resolve)), `frame #${index + 1}`);
    }
    return this.frames[index]!;
  }

  /** A ping/pong round trip: every frame the server wrote before it is here once this resolves. */
  async roundTrip(): Promise<void> {
    await within(
      new Promise<void>((resolve) => {
        this.socket.once('pong', () => resolve());
        this.socket.ping();
      }),
      'a pong',
    );
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.terminate();
    });
  }
}

describe('WsTransport (RFC 7118)', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  async function ws(): Promise<{ transport: WsTransport; sink: EventRecorder }> {
    const sink = new EventRecorder();
    const transport = new WsTransport({ address: '127.0.0.1', port: 0, sink });
    cleanup.add('ws transport', transport, (t) => t.close());
    await transport.start();
    return { transport, sink };
  }

  const url = (t: Tuple): string => `ws://127.0.0.1:${t.port}/`;

  it('a ws client with subprotocol "sip" sends a request in one text frame; the response comes back as one frame on the same socket (§4.1, §5)', async () => {
    const server = await ws();
    expect(server.transport.protocol).to.equal('ws');
    expect(server.transport.reliable).to.equal(true);
    const client = cleanup.add('ws client', await WsClient.open(url(server.transport.local), 'sip'), (c) => c.close());
    expect(client.socket.protocol, 'the 101 names the sip subprotocol').to.equal('sip');

    const id = callId('ws');
    const request = requestBytes({ method: 'REGISTER', uri: 'sip:127.0.0.1', via: 'SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws1', callId: id });
    client.socket.send(request.toString('utf8')); // one text frame

    const arrived = await nextMessage(server.sink, id);
    expect(arrived.message.method).to.equal('REGISTER');
    expect(arrived.message.via[0]!.branch).to.equal('z9hG4bK-ws1');
    expect(arrived.source).to.deep.equal({ protocol: 'ws', address: '127.0.0.1', port: client.localPort });
    expect(arrived.connectionId).to.be.a('number');
    expect(arrived.local).to.deep.equal(server.transport.local);

    const selector = new TransportSelector({ transports: [server.transport] });
    const sent = await selector.respond(createResponse(arrived.message, 200), { source: arrived.source, connectionId: arrived.connectionId });
    expect(sent.connectionId).to.equal(arrived.connectionId);
    const frame = await client.frame(0);
    expect(startLine(frame.data)).to.equal('SIP/2.0 200 OK');
    expect(frame.data.equals(sent.bytes), show(frame.data)).to.equal(true);
    await client.roundTrip();
    expect(client.frames.length, 'exactly one frame').to.equal(1);
    expect(server.transport.connections.size).to.equal(1);
    expect(server.sink.types).to.deep.equal(['message']);
  });

  it('a request in a binary frame is accepted too (§4.2)', async () => {
    const server = await ws();
    const client = cleanup.add('ws client', await WsClient.open(url(server.transport.local), 'sip'), (c) => c.close());
    const id = callId('ws-bin');
    client.socket.send(requestBytes({ via: 'SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws2', callId: id, body: 'hello', extra: ['Content-Type: text/plain'] }), { binary: true });
    const arrived = await nextMessage(server.sink, id);
    expect(arrived.message.body.toString()).to.equal('hello');
  });

  it('a client that does not offer the "sip" subprotocol is refused: the handshake does not complete', async () => {
    const server = await ws();
    const socket = new WebSocket(url(server.transport.local));
    cleanup.add('refused ws client', socket, (s) => s.terminate());
    const outcome = await within(
      new Promise<string>((resolve) => {
        socket.on('open', () => resolve('open'));
        socket.on('unexpected-response', (_req, res: IncomingMessage) => {
          resolve(`http ${res.statusCode ?? '?'}`);
          res.resume();
        });
        socket.on('error', (error) => resolve(`error: ${error.message}`));
      }),
      'the handshake outcome',
    );
    // RFC 6455 §4.2.2 lets a server refuse an opening handshake with an HTTP error status; the
    // 101 must not come, since it could not name the "sip" subprotocol (RFC 7118 §4.1).
    expect(outcome).to.match(/^http 4\d\d$/);
    await turns(5);
    expect(server.transport.connections.size).to.equal(0);
    expect(server.sink.types).to.deep.equal([]);
  });

  it('WsTransport to WsTransport: the request arrives and the response returns on the same connection', async () => {
    const server = await ws();
    const client = await ws();
    const id = callId('ws-ws');
    const request = requestBytes({ via: `SIP/2.0/WS 127.0.0.1:${client.transport.local.port};branch=z9hG4bK-ws3`, callId: id });
    const connectionId = await client.transport.send(request, server.transport.local, 'tid-ws');
    expect(connectionId).to.be.a('number');

    const arrived = await nextMessage(server.sink, id);
    expect(arrived.message.toBuffer().equals(request), show(arrived.message)).to.equal(true);
    expect(arrived.source.protocol).to.equal('ws');
    expect(arrived.source.address).to.equal('127.0.0.1');

    const selector = new TransportSelector({ transports: [server.transport] });
    const sent = await selector.respond(createResponse(arrived.message, 200), { source: arrived.source, connectionId: arrived.connectionId });
    const back = await nextMessage(client.sink, id);
    expect(back.message.toBuffer().equals(sent.bytes)).to.equal(true);
    expect(back.connectionId).to.equal(connectionId);
    expect(back.source).to.deep.equal(server.transport.local);
    expect(client.transport.connections.size).to.equal(1);
    expect(server.transport.connections.size).to.equal(1);
  });
});
