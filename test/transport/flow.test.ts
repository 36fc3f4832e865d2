// RFC 5626 §5.3 flows: a request for a device reached over a flow goes on that flow's connection
// only; when the flow is gone it fails at once with 430 (Flow Failed) and is never redialled — on
// real TCP sockets on 127.0.0.1 against a SipStack.
import { expect } from 'chai';
import { SipStack, createRequest, parseMessage, type ServerRequest, type SipMessage } from '../../src/index.js';
import { RawTcpServer, rawConnect, requestBytes, turns, until, type RawConn } from '../support/transport-harness.js';

function options(target: string): SipMessage {
  return createRequest({ method: 'OPTIONS', uri: target, from: '<sip:server@127.0.0.1>', to: `<${target}>` });
}

/** The first whole SIP message in what a raw peer received. */
function firstMessage(conn: RawConn): SipMessage {
  const text = conn.data.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return parseMessage(text.slice(0, end + 4));
}

describe('RFC 5626 §5.3 flows', () => {
  let stack: SipStack;
  let arrivals: ServerRequest[];
  beforeEach(async () => {
    stack = new SipStack({ transports: ['tcp:127.0.0.1:0'], dns: false });
    arrivals = [];
    stack.setDefaultTu({
      onRequest: (request) => {
        arrivals.push(request);
        request.respond(200);
      },
    });
    await stack.start();
  });
  afterEach(async () => {
    await stack.stop();
  });

  it("a request for the flow goes back on the device's own connection, and fails 430 at once when that connection is gone", async () => {
    const port = stack.transports[0]!.local.port;
    const device = await rawConnect('127.0.0.1', port);
    await device.write(requestBytes({ method: 'OPTIONS', uri: `sip:server@127.0.0.1:${port}`, via: `SIP/2.0/TCP 127.0.0.1:${device.localPort};branch=z9hG4bK-flow-1` }));
    await until(() => arrivals.length === 1 && device.data.length > 0, 'the OPTIONS and its 200');
    const flow = arrivals[0]!.connectionId!;
    const source = arrivals[0]!.source;
    const devicePort = device.localPort;
    device.data = Buffer.alloc(0);

    const onFlow = stack.request(options(`sip:device@127.0.0.1:${devicePort};transport=tcp`), { target: { ...source, flow } });
    await until(() => device.data.includes('\r\n\r\n'), 'the OPTIONS on the flow');
    const received = firstMessage(device);
    expect([received.method, received.via[0]!.transport, received.via[0]!.port]).to.deep.equal(['OPTIONS', 'TCP', port]);
    await device.write(
      `SIP/2.0 200 OK\r\nVia: ${received.header('via')}\r\nFrom: ${received.header('from')}\r\nTo: ${received.header('to')};tag=dev\r\nCall-ID: ${received.callId}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
    );
    expect((await onFlow.final).status).to.equal(200);

    device.socket.destroy();
    await until(() => !stack.transports[0]!.hasConnection(flow), 'the server to see the flow close');
    const started = Date.now();
    const final = await stack.request(options(`sip:device@127.0.0.1:${devicePort};transport=tcp`), { target: { ...source, flow } }).final;
    expect([final.status, final.reason]).to.deep.equal([430, 'Flow Failed']);
    expect(final.header('warning')).to.match(/^399 parley "transport failure: the tcp flow \d+ to 127\.0\.0\.1:\d+ is gone"$/);
    expect(Date.now() - started, 'at once, not after Timer F').to.be.below(1000);
  });

  it('a flow the stack opened is never redialled: after it closes, a request for it gets 430 and the device sees no new connection', async () => {
    const device = await RawTcpServer.listen();
    try {
      const first = stack.request(options(`sip:device@127.0.0.1:${device.port};transport=tcp`), { target: device.tuple() });
      const conn = await device.connection(0);
      await until(() => conn.data.includes('\r\n\r\n'), 'the first OPTIONS');
      // Connection ids come from the stack's own sequence: the one it opened is its first.
      const flow = 1;
      expect(stack.transports[0]!.hasConnection(flow), 'the connection the stack opened').to.equal(true);
      const sent = firstMessage(conn);
      await conn.write(`SIP/2.0 200 OK\r\nVia: ${sent.header('via')}\r\nFrom: ${sent.header('from')}\r\nTo: ${sent.header('to')};tag=dev\r\nCall-ID: ${sent.callId}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`);
      expect((await first.final).status).to.equal(200);

      conn.socket.destroy();
      await until(() => !stack.transports[0]!.hasConnection(flow), 'the stack to see the flow close');
      const final = await stack.request(options(`sip:device@127.0.0.1:${device.port};transport=tcp`), { target: { ...device.tuple(), flow } }).final;
      expect(final.status).to.equal(430);
      await turns(20);
      expect(device.connections, 'connections the device accepted').to.have.length(1);
    } finally {
      await device.close();
    }
  });
});
