// Issue 16, memory: a stream connection to a ParleyServer buffers no more for one unfinished
// message than the largest message the server takes (maxMessageBytes + a header allowance,
// src/transport/stream-transport.ts streamLimitsFor). Real sockets on 127.0.0.1.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ParleyServer, type StreamOptions, type StreamTransport } from '../../src/index.js';
import { until, within } from '../support/waiting.js';

const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

interface Raw {
  socket: Socket;
  data: () => string;
  closed: Promise<void>;
  isClosed: () => boolean;
}

function raw(port: number): Promise<Raw> {
  const socket = connect({ host: '127.0.0.1', port });
  let data = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const done = new Promise<void>((resolve) => socket.once('close', () => ((closed = true), resolve())));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, data: () => data, closed: done, isClosed: () => closed }));
    socket.once('error', reject);
  });
}

function messageHead(contentLength: number, callId: string): string {
  return [
    'MESSAGE sip:bob@localhost SIP/2.0',
    'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-limits-' + callId,
    'Max-Forwards: 70',
    'To: <sip:bob@localhost>',
    'From: <sip:alice@localhost>;tag=l1',
    `Call-ID: ${callId}`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
    `Content-Length: ${contentLength}`,
    '',
    '',
  ].join('\r\n');
}

describe('ParleyServer stream buffer limit (issue 16)', function () {
  this.timeout(20_000);
  let server: ParleyServer | undefined;
  let dir: string | undefined;
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server?.stop();
    server = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function start(stream: StreamOptions = {}): Promise<{ port: number; tcp: StreamTransport }> {
    dir = await mkdtemp(join(tmpdir(), 'parley-stream-limits-'));
    server = await ParleyServer.start({ domains: ['localhost'], listen: ['tcp:127.0.0.1:0'], data: dir, maxMessageBytes: 65_536 }, { logger: silent, stack: { stream } });
    const tcp = server.transports.find((t) => t.protocol === 'tcp') as StreamTransport;
    return { port: tcp.local.port, tcp };
  }

  /** The most any connection of the transport holds for one message, sampled as bytes go out. */
  function maxBuffered(tcp: StreamTransport): number {
    return Math.max(0, ...tcp.connections.all().map((c) => (c as { bufferedBytes?: number }).bufferedBytes ?? 0));
  }

  it('a 200 KB partial MESSAGE to a server with maxMessageBytes 64 KB: 413 at once, its body never buffered, closed when unfinished', async () => {
    const { port, tcp } = await start({ partialMessageTimeoutMs: 1_000 });
    const conn = await raw(port);
    sockets.push(conn.socket);
    conn.socket.write(messageHead(200 * 1024, 'big-1'));
    let peak = 0;
    const chunk = Buffer.alloc(8 * 1024, 0x78);
    // 150 KB of the 200 KB body, then nothing: the message is never finished.
    for (let sent = 0; sent < 150 * 1024 && !conn.isClosed(); sent += chunk.length) {
      conn.socket.write(chunk);
      await new Promise((r) => setImmediate(r));
      peak = Math.max(peak, maxBuffered(tcp));
    }
    await until(() => conn.data().length > 0, 'an answer');
    expect(conn.data(), 'answered before the body came').to.match(/^SIP\/2\.0 413 /);
    await within(conn.closed, 'the connection closed at the partial-message deadline');
    expect(peak, 'peak bytes buffered for the message').to.be.at.most(16 * 1024);
  });

  it('a complete 200 KB MESSAGE then a small one on the same connection: 413, then the next is answered (the stream stays in step)', async () => {
    const { port, tcp } = await start();
    const conn = await raw(port);
    sockets.push(conn.socket);
    conn.socket.write(messageHead(200 * 1024, 'big-2') + 'x'.repeat(200 * 1024) + messageHead(5, 'small-2') + 'hello');
    await until(() => (conn.data().match(/^SIP\/2\.0 /gm) ?? []).length >= 2, 'two answers');
    const statuses = (conn.data().match(/^SIP\/2\.0 \d{3}/gm) ?? []).map((line) => line.slice(8));
    expect(statuses[0]).to.equal('413');
    expect(statuses[1]).to.match(/^40[17]$/);
    expect(conn.isClosed()).to.equal(false);
    expect(maxBuffered(tcp)).to.equal(0);
  });

  it('a head that never ends (200 KB of header bytes): closed once the header allowance is passed', async () => {
    const { port, tcp } = await start();
    const conn = await raw(port);
    sockets.push(conn.socket);
    conn.socket.write('MESSAGE sip:bob@localhost SIP/2.0\r\n');
    let peak = 0;
    const line = `X-Filler: ${'y'.repeat(1000)}\r\n`;
    for (let i = 0; i < 200 && !conn.isClosed(); i++) {
      conn.socket.write(line);
      if (i % 8 === 0) await new Promise((r) => setImmediate(r));
      peak = Math.max(peak, maxBuffered(tcp));
    }
    await within(conn.closed, 'the connection closed');
    expect(peak, 'peak bytes buffered').to.be.at.most(65_536 + 65_536);
  });

  it('a 64 KB body (the limit) is still taken on the same kind of connection (401: it reached the server)', async () => {
    const { port } = await start();
    const conn = await raw(port);
    sockets.push(conn.socket);
    conn.socket.write(messageHead(65_536, 'fits-1') + 'z'.repeat(65_536));
    await until(() => /^SIP\/2\.0 \d{3} /.test(conn.data()), 'an answer');
    expect(conn.data()).to.match(/^SIP\/2\.0 (401|407) /);
    expect(conn.isClosed()).to.equal(false);
  });

  it('the server config sets the connection limits: maxConnectionsPerSource 2 refuses a third; a negative value is CONFIG_INVALID', async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-stream-limits-'));
    await ParleyServer.start({ domains: ['localhost'], listen: ['tcp:127.0.0.1:0'], data: dir, maxConnectionsPerSource: -1 }, { logger: silent }).then(
      () => expect.fail('started with maxConnectionsPerSource -1'),
      (error: { code?: string }) => expect(error.code).to.equal('CONFIG_INVALID'),
    );
    server = await ParleyServer.start({ domains: ['localhost'], listen: ['tcp:127.0.0.1:0'], data: dir, maxConnectionsPerSource: 2, firstMessageTimeoutMs: 0 }, { logger: silent });
    const tcp = server.transports[0] as StreamTransport;
    const conns = [await raw(tcp.local.port), await raw(tcp.local.port)];
    sockets.push(...conns.map((c) => c.socket));
    await until(() => tcp.connections.size === 2, 'two admitted');
    const third = await raw(tcp.local.port);
    sockets.push(third.socket);
    await within(third.closed, 'the third closed at once');
    expect(conns.some((c) => c.isClosed())).to.equal(false);
  });
});
