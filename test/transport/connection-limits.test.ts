// Issue 16, resource limits on stream connections (docs/transport-layer.md, docs/security.md):
// a per-source connection limit, deadlines for the first complete message and for finishing a
// partial one (on a ManualClock), and the eviction order at maxConnections (never-used inbound
// connections first, flows that carry a binding last). Real sockets on 127.0.0.0/8 only.
import { expect } from 'chai';
import { connect, type Socket } from 'node:net';
import { ManualClock, TcpTransport, type StreamOptions } from '../../src/index.js';
import { Cleanup, EventRecorder, RawConn, nextMessage, requestBytes, until, within } from '../support/transport-harness.js';

/** A raw TCP connection from `from` (any 127.0.0.x) to the transport. */
async function rawFrom(from: string, port: number): Promise<RawConn> {
  const socket: Socket = connect({ host: '127.0.0.1', port, localAddress: from });
  const conn = new RawConn(socket);
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    }),
    `a raw connection from ${from}`,
  );
  socket.setNoDelay(true);
  return conn;
}

/** Opens `count` raw connections, `perAddress` from each of 127.0.0.(first…), `parallel` at a time. */
async function many(count: number, port: number, perAddress: number, first: number, parallel = 50): Promise<RawConn[]> {
  const conns: RawConn[] = [];
  for (let i = 0; i < count; i += parallel) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + parallel); j++) batch.push(rawFrom(`127.0.0.${first + Math.floor(j / perAddress)}`, port));
    conns.push(...(await Promise.all(batch)));
  }
  return conns;
}

/** markFlow through an optional call, so that the same test runs (and fails) against the code before it existed. */
function markFlow(transport: TcpTransport, connectionId: number): boolean {
  return (transport as { markFlow?: (id: number) => boolean }).markFlow?.(connectionId) ?? false;
}

/** Bytes buffered on the transport's connections (undefined before the accessor existed). */
function buffered(transport: TcpTransport): number[] {
  return transport.connections.all().map((c) => (c as { bufferedBytes?: number }).bufferedBytes ?? -1);
}

describe('Stream connection limits (issue 16)', function () {
  this.timeout(60_000);
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  async function tcp(options: Partial<StreamOptions> = {}): Promise<{ transport: TcpTransport; sink: EventRecorder }> {
    const sink = new EventRecorder();
    const transport = new TcpTransport({ address: '127.0.0.1', port: 0, sink, ...options });
    cleanup.add('tcp', transport, (t) => t.close());
    await transport.start();
    return { transport, sink };
  }

  function track(conns: RawConn[]): RawConn[] {
    cleanup.add('raw connections', conns, (all) => Promise.all(all.map((c) => c.destroy())));
    return conns;
  }

  /** Sends a complete request on `conn` and waits for the transport to hand it up. */
  async function sendRequest(conn: RawConn, sink: EventRecorder): Promise<number> {
    const id = `cl-${Math.random().toString(36).slice(2)}`;
    await conn.write(requestBytes({ callId: id, via: `SIP/2.0/TCP 127.0.0.1:${conn.localPort};branch=z9hG4bK-${id}` }));
    return (await nextMessage(sink, id)).connectionId!;
  }

  describe('maxConnectionsPerSource', () => {
    it('default 64: the 65th connection from one address is closed at once; another address still gets in', async () => {
      const { transport } = await tcp();
      const conns = track(await many(70, transport.local.port, 70, 2));
      await until(() => conns.filter((c) => c.closed).length === 6, 'six refused');
      expect(transport.connections.size).to.equal(64);
      expect(conns.slice(0, 64).every((c) => !c.closed), 'the first 64 stay').to.equal(true);
      const other = track([await rawFrom('127.0.0.3', transport.local.port)]);
      await until(() => transport.connections.size === 65, 'another source admitted');
      expect(other[0]!.closed).to.equal(false);
    });

    it('a closed connection frees its place', async () => {
      const { transport } = await tcp({ maxConnectionsPerSource: 2 });
      const conns = track(await many(2, transport.local.port, 2, 2));
      await until(() => transport.connections.size === 2, 'two admitted');
      const third = track([await rawFrom('127.0.0.2', transport.local.port)]);
      await third[0]!.ended('a third from the same address is refused');
      await conns[0]!.destroy();
      await until(() => transport.connections.size === 1, 'one left');
      const again = track([await rawFrom('127.0.0.2', transport.local.port)]);
      await until(() => transport.connections.size === 2, 'admitted again');
      expect(again[0]!.closed).to.equal(false);
    });
  });

  describe('firstMessageTimeoutMs and partialMessageTimeoutMs (ManualClock)', () => {
    it('a connection that sends nothing is closed at 10 s (default); one that sent a message is not', async () => {
      const clock = new ManualClock();
      const { transport, sink } = await tcp({ clock });
      const [bare, used] = track(await many(2, transport.local.port, 2, 2));
      await until(() => transport.connections.size === 2, 'both admitted');
      await sendRequest(used!, sink);
      clock.advance(9_999);
      await new Promise((r) => setTimeout(r, 50));
      expect(bare!.closed, 'at 9,999 ms').to.equal(false);
      clock.advance(1);
      await bare!.ended('the bare connection closed at 10 s');
      clock.advance(60_000);
      await new Promise((r) => setTimeout(r, 50));
      expect(used!.closed, 'the connection that carried a message').to.equal(false);
      expect(transport.connections.size).to.equal(1);
    });

    it('a connection holding one byte is closed at the first-message deadline', async () => {
      const clock = new ManualClock();
      const { transport } = await tcp({ clock, firstMessageTimeoutMs: 2_000, partialMessageTimeoutMs: 0 });
      const [conn] = track(await many(1, transport.local.port, 1, 2));
      await conn!.write('O');
      await until(() => buffered(transport)[0] !== 0, 'one byte buffered');
      clock.advance(2_000);
      await conn!.ended('closed at the first-message deadline');
    });

    it('a message begun must be finished within partialMessageTimeoutMs (default 30 s), restarted per message', async () => {
      const clock = new ManualClock();
      const { transport, sink } = await tcp({ clock });
      const [conn] = track(await many(1, transport.local.port, 1, 2));
      await sendRequest(conn!, sink);
      const bytes = requestBytes({ callId: 'partial-1', via: 'SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK-p1' });
      await conn!.write(bytes.subarray(0, 40));
      await until(() => buffered(transport)[0] !== 0, 'partial buffered');
      clock.advance(20_000);
      // The rest of the first message and the start of a second: the deadline restarts.
      const second = requestBytes({ callId: 'partial-2', via: 'SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK-p2' });
      await conn!.write(Buffer.concat([bytes.subarray(40), second.subarray(0, 30)]));
      await nextMessage(sink, 'partial-1');
      clock.advance(29_999);
      await new Promise((r) => setTimeout(r, 50));
      expect(conn!.closed, 'at 29,999 ms into the second message').to.equal(false);
      clock.advance(1);
      await conn!.ended('closed 30 s into an unfinished message');
    });
  });

  describe('eviction order at maxConnections', () => {
    it('never-used inbound connections go first (even holding bytes), then idle used ones, flows last', async () => {
      const { transport, sink } = await tcp({ maxConnections: 4, maxConnectionsPerSource: 0 });
      const port = transport.local.port;
      const [flow] = track(await many(1, port, 1, 2));
      const flowId = await sendRequest(flow!, sink);
      markFlow(transport, flowId);
      const [used] = track(await many(1, port, 1, 3));
      await sendRequest(used!, sink);
      const [bare, holding] = track(await many(2, port, 2, 4));
      await holding!.write('OPT');
      await until(() => transport.connections.size === 4, 'four admitted');
      // Touch the flow last: by recency alone it would not be first; the bare ones still go first.
      const [e] = track(await many(1, port, 1, 5));
      await bare!.ended('the oldest never-used connection makes room');
      const [f] = track(await many(1, port, 1, 6));
      await holding!.ended('then the one holding three bytes');
      await sendRequest(e!, sink);
      await sendRequest(f!, sink);
      // Now every connection carried a message: the least recently used idle non-flow goes.
      const [g] = track(await many(1, port, 1, 7));
      await used!.ended('then an idle used connection, not the flow');
      expect(flow!.closed, 'the flow').to.equal(false);
      expect(transport.connections.isFlow(flowId)).to.equal(true);
      expect(g!.closed).to.equal(false);
    });

    it('1,100 bare connects (20 source addresses) do not evict a registered flow, and it still carries messages', async () => {
      const { transport, sink } = await tcp();
      const port = transport.local.port;
      const flow = track([await rawFrom('127.0.0.1', port)])[0]!;
      const flowId = await sendRequest(flow, sink);
      markFlow(transport, flowId);
      const bare = track(await many(1_100, port, 55, 10, 100));
      await until(() => [flow, ...bare].filter((c) => c.closed).length >= 1_100 + 1 - 1_024, 'the overflow closed', 20_000);
      expect(transport.connections.size).to.be.at.most(1_024);
      expect(flow.closed, 'the registered flow').to.equal(false);
      expect(transport.hasConnection(flowId)).to.equal(true);
      expect(await sendRequest(flow, sink)).to.equal(flowId);
    });

    it('1,030 connections each holding one byte do not keep a new client out', async () => {
      const { transport, sink } = await tcp();
      const port = transport.local.port;
      const holders = track(await many(1_030, port, 52, 30, 100));
      await Promise.all(holders.map((c) => (c.closed ? undefined : c.write('O').catch(() => undefined))));
      await new Promise((r) => setTimeout(r, 500)); // the server has read every byte
      const late = track([await rawFrom('127.0.0.1', port)])[0]!;
      await sendRequest(late, sink);
      expect(late.closed).to.equal(false);
    });
  });
});
