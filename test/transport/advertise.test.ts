// Addresses a stack advertises (RFC 3261 §18.1.1 sent-by, §8.1.1.8 Contact): a wildcard bind is
// never advertised, a listener takes an advertised host and port, our Contact is marked by a typed
// flag (not a magic IP), and a response not naming our sent-by is dropped (§18.1.2) — on real UDP
// sockets on 127.0.0.1.
import { createSocket, type Socket } from 'node:dgram';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { expect } from 'chai';
import { LocalContact, SipStack, TransportError, createRequest, parseAdvertised, parseMessage, type SipMessage, type SipStackOptions } from '../../src/index.js';

interface Peer {
  socket: Socket;
  port: number;
  received: Array<{ message: SipMessage; port: number }>;
}

async function udpPeer(): Promise<Peer> {
  const socket = createSocket('udp4');
  const received: Peer['received'] = [];
  socket.on('message', (data, from) => received.push({ message: parseMessage(data), port: from.port }));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port, received };
}

async function waitFor(condition: () => boolean, label: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function options(peer: Peer, contact: string | LocalContact = new LocalContact('alice')): SipMessage {
  return createRequest({ method: 'OPTIONS', uri: `sip:bob@127.0.0.1:${peer.port}`, from: '<sip:alice@parley.test>', to: '<sip:bob@parley.test>', contact });
}

/** The peer answers `request` 200 with its Via as given (or rewritten). */
function answer(peer: Peer, request: SipMessage, toPort: number, via = request.header('via')!): void {
  const text = [
    'SIP/2.0 200 OK',
    `Via: ${via}`,
    `From: ${request.header('from')}`,
    `To: ${request.header('to')};tag=peer`,
    `Call-ID: ${request.callId}`,
    `CSeq: ${request.cseq.seq} ${request.cseq.method}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  peer.socket.send(text, toPort, '127.0.0.1');
}

describe('advertised addresses', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(transports: SipStackOptions['transports']): Promise<SipStack> {
    const stack = new SipStack({ transports, dns: false });
    await stack.start();
    cleanups.push(() => stack.stop());
    return stack;
  }

  async function peer(): Promise<Peer> {
    const p = await udpPeer();
    cleanups.push(() => void p.socket.close());
    return p;
  }

  it('a transport bound to 0.0.0.0 never advertises the wildcard: Via and Contact carry an interface address that works', async () => {
    const stack = await start(['udp:0.0.0.0:0']);
    const transport = stack.transports[0]!;
    const sentBy = stack.sentBy(transport);
    expect(sentBy.host).to.not.equal('0.0.0.0');
    expect(sentBy.host).to.match(/^\d+\.\d+\.\d+\.\d+$/);
    expect(sentBy.port).to.equal(transport.local.port);
    const p = await peer();
    const pending = stack.request(options(p), { target: { protocol: 'udp', address: '127.0.0.1', port: p.port } });
    await waitFor(() => p.received.length === 1, 'the OPTIONS');
    const { message, port } = p.received[0]!;
    const via = message.via[0]!;
    expect([via.transport, via.host, via.port]).to.deep.equal(['UDP', sentBy.host, sentBy.port]);
    expect(message.contact[0]!.uri.toString()).to.equal(`sip:alice@${sentBy.host}:${sentBy.port}`);
    answer(p, message, port);
    expect((await pending.final).status).to.equal(200);
  });

  it('a listener with an advertised host and port puts them in Via and Contact, and takes responses to them', async () => {
    const stack = await start([{ listen: 'udp:0.0.0.0:0', advertise: '192.0.2.7:5070' }]);
    const p = await peer();
    const pending = stack.request(options(p), { target: { protocol: 'udp', address: '127.0.0.1', port: p.port } });
    await waitFor(() => p.received.length === 1, 'the OPTIONS');
    const { message } = p.received[0]!;
    expect(message.header('via')).to.match(/^SIP\/2\.0\/UDP 192\.0\.2\.7:5070;branch=z9hG4bK/);
    expect(message.header('contact')).to.equal('<sip:alice@192.0.2.7:5070>');
    // The response goes to the port the request came from (the peer knows; §18.2.2 is its business).
    answer(p, message, stack.transports[0]!.local.port);
    expect((await pending.final).status).to.equal(200);
  });

  it('§18.1.2: a response whose top Via is not our sent-by is dropped (and said on parley:transaction:drop); ours is taken', async () => {
    const drops: unknown[] = [];
    const listener = (d: unknown): void => void drops.push(d);
    subscribe('parley:transaction:drop', listener);
    cleanups.push(() => void unsubscribe('parley:transaction:drop', listener));
    const stack = await start(['udp:127.0.0.1:0']);
    const p = await peer();
    let final: SipMessage | undefined;
    const pending = stack.request(options(p), { target: { protocol: 'udp', address: '127.0.0.1', port: p.port } });
    void pending.final.then((r) => (final = r));
    await waitFor(() => p.received.length === 1, 'the OPTIONS');
    const { message, port } = p.received[0]!;
    const foreign = message.header('via')!.replace(/^SIP\/2\.0\/UDP [^;]+/, 'SIP/2.0/UDP 198.51.100.9:5060');
    answer(p, message, port, foreign);
    await waitFor(() => drops.length === 1, 'the drop');
    expect(final, 'no final response from the foreign Via').to.equal(undefined);
    expect((drops[0] as { reason: string }).reason).to.equal('not our sent-by (RFC 3261 §18.1.2)');
    answer(p, message, port);
    expect((await pending.final).status).to.equal(200);
  });

  it('a Contact of 0.0.0.0 that is not marked ours is sent as written: the flag decides, not the address', async () => {
    const stack = await start(['udp:127.0.0.1:0']);
    const p = await peer();
    const request = options(p, '<sip:alice@0.0.0.0>');
    expect(request.contactFillIn).to.equal(false);
    void stack.request(request, { target: { protocol: 'udp', address: '127.0.0.1', port: p.port } });
    await waitFor(() => p.received.length === 1, 'the OPTIONS');
    expect(p.received[0]!.message.header('contact')).to.equal('<sip:alice@0.0.0.0>');
    answer(p, p.received[0]!.message, p.received[0]!.port);
  });

  it('parseAdvertised: HOST, HOST:PORT, [IPv6]:PORT and bare IPv6; the wildcard and bad ports are refused with TRANSPORT_BAD_ADDRESS', () => {
    expect(parseAdvertised('sip.example.com')).to.deep.equal({ host: 'sip.example.com', port: undefined });
    expect(parseAdvertised('192.0.2.7:5070')).to.deep.equal({ host: '192.0.2.7', port: 5070 });
    expect(parseAdvertised('[2001:db8::7]:5070')).to.deep.equal({ host: '2001:db8::7', port: 5070 });
    expect(parseAdvertised('2001:db8::7')).to.deep.equal({ host: '2001:db8::7', port: undefined });
    for (const bad of ['0.0.0.0', '::', '[::]:5060', '192.0.2.7:0', '192.0.2.7:70000', 'a b', '']) {
      expect(() => parseAdvertised(bad), bad).to.throw(TransportError).with.property('code', 'TRANSPORT_BAD_ADDRESS');
    }
  });
});
