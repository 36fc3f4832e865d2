// UdpTransport on real loopback sockets (127.0.0.1 and ::1, port 0), against
// docs/transport-layer.md and RFC 3261 §18 / RFC 3581 §4.
//
// "Nothing was sent" is asserted without sleeping: after the datagram under test, the raw peer sends
// a good request (a sentinel) and waits until the transport pushes it up, so the earlier datagram
// has been handled; then the transport sends a marker datagram to the raw peer, and the raw peer
// must receive the marker as the next datagram (loopback UDP keeps the order of one sender).
import { expect } from 'chai';
import { UdpTransport, parseMessage, type Tuple } from '../../src/index.js';
import { mulberry32 } from '../support/random.js';
import {
  Cleanup,
  EventRecorder,
  RawUdp,
  callId,
  nextFailure,
  nextMessage,
  requestBytes,
  responseBytes,
  show,
  startLine,
  rejection,
  sentBy,
} from '../support/transport-harness.js';

const FAMILIES = [
  { name: 'IPv4', address: '127.0.0.1' },
  { name: 'IPv6', address: '::1' },
] as const;

/** A request of exactly `size` bytes (the body pads it out). */
function requestOfSize(size: number, via: string, id = callId('big')): Buffer {
  // A header of 0..9 filler bytes gets past the sizes a Content-Length digit boundary skips.
  for (let filler = 0; filler < 10; filler++) {
    const make = (pad: number): Buffer =>
      requestBytes({ via, callId: id, body: 'x'.repeat(pad), extra: ['Content-Type: text/plain', `X-Filler: ${'f'.repeat(filler)}`] });
    const base = make(0).length;
    for (let pad = Math.max(0, size - base - 8); pad <= size - base; pad++) {
      const bytes = make(pad);
      if (bytes.length === size) return bytes;
    }
  }
  throw new Error(`cannot make a ${size}-byte request`);
}

describe('UdpTransport (RFC 3261 §18)', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  async function udp(address = '127.0.0.1', maxMessageSize?: number): Promise<{ transport: UdpTransport; sink: EventRecorder }> {
    const sink = new EventRecorder();
    const transport = new UdpTransport({ address, port: 0, sink, ...(maxMessageSize === undefined ? {} : { maxMessageSize }) });
    cleanup.add(`udp ${address}`, transport, (t) => t.close());
    await transport.start();
    return { transport, sink };
  }

  async function raw(address = '127.0.0.1'): Promise<RawUdp> {
    return cleanup.add(`raw udp ${address}`, await RawUdp.open(address), (r) => r.close());
  }

  /**
   * Proves the transport answered nothing more to `peer` than the `expected` datagrams already
   * seen, and pushed nothing more than `pushed` events: a sentinel request goes up, a marker
   * comes back, and the marker must be the next datagram.
   */
  async function expectQuiet(server: { transport: UdpTransport; sink: EventRecorder }, peer: RawUdp, expected: number, pushed: number): Promise<void> {
    const sentinel = callId('sentinel');
    await peer.send(requestBytes({ via: `SIP/2.0/UDP ${sentBy(peer.tuple)};branch=z9hG4bK-sentinel`, callId: sentinel }), server.transport.local);
    await nextMessage(server.sink, sentinel);
    expect(server.sink.events.length, 'events pushed (the sentinel included)').to.equal(pushed + 1);
    const marker = responseBytes({ callId: callId('marker') });
    await server.transport.send(marker, peer.tuple);
    const datagrams = await peer.received(expected + 1, 'the marker');
    expect(datagrams.length).to.equal(expected + 1);
    expect(datagrams[expected]!.data.equals(marker), `datagram #${expected + 1} is the marker, got ${show(datagrams[expected]!.data)}`).to.equal(true);
  }

  describe('sending and receiving (RFC 3261 §18.1.1, §18.2.1)', () => {
    for (const family of FAMILIES) {
      it(`${family.name}: the request arrives byte for byte, from the sender's exact address and port, and the answer travels back`, async () => {
        const a = await udp(family.address);
        const b = await udp(family.address);
        expect(a.transport.protocol).to.equal('udp');
        expect(a.transport.reliable).to.equal(false);
        expect(a.transport.local.protocol).to.equal('udp');
        expect(a.transport.local.address).to.equal(family.address);
        expect(a.transport.local.port).to.be.a('number').above(0);

        const id = callId();
        const request = requestBytes({ via: `SIP/2.0/UDP ${sentBy(a.transport.local)};branch=z9hG4bK-${family.name}`, callId: id });
        const result = await a.transport.send(request, b.transport.local);
        expect(result, 'send resolves no connectionId on UDP').to.equal(undefined);

        const event = await nextMessage(b.sink, id);
        expect(event.message.isRequest).to.equal(true);
        expect(event.message.toBuffer().equals(request), show(event.message)).to.equal(true);
        expect(event.source).to.deep.equal({ protocol: 'udp', address: family.address, port: a.transport.local.port });
        expect(event.local).to.deep.equal(b.transport.local);
        expect(event.connectionId).to.equal(undefined);

        const response = responseBytes({ via: `SIP/2.0/UDP ${sentBy(a.transport.local)};branch=z9hG4bK-${family.name}`, callId: id });
        await b.transport.send(response, event.source);
        const back = await nextMessage(a.sink, id);
        expect(back.message.toBuffer().equals(response)).to.equal(true);
        expect(back.source).to.deep.equal({ protocol: 'udp', address: family.address, port: b.transport.local.port });
        expect(a.sink.types).to.deep.equal(['message']);
        expect(b.sink.types).to.deep.equal(['message']);
      });
    }

    it('one message per datagram (§18.3): three datagrams give three events, in order', async () => {
      const server = await udp();
      const peer = await raw();
      const ids = [callId('one'), callId('two'), callId('three')];
      const sent = ids.map((id, k) => requestBytes({ via: `SIP/2.0/UDP ${sentBy(peer.tuple)};branch=z9hG4bK-n${k}`, callId: id, cseq: k + 1 }));
      for (const bytes of sent) await peer.send(bytes, server.transport.local);
      await nextMessage(server.sink, ids[2]);
      expect(server.sink.messages.map((e) => e.message.callId)).to.deep.equal(ids);
      server.sink.messages.forEach((e, k) => {
        expect(e.message.toBuffer().equals(sent[k]!)).to.equal(true);
        expect(e.source).to.deep.equal(peer.tuple);
      });
    });
  });

  describe('Content-Length in a datagram (RFC 3261 §18.3)', () => {
    it('a request whose Content-Length is larger than its body gets exactly one 400 Bad Request at its source and is not pushed up', async () => {
      const server = await udp();
      const peer = await raw();
      const id = callId('short');
      const bytes = requestBytes({ via: `SIP/2.0/UDP ${sentBy(peer.tuple)};branch=z9hG4bK-short`, callId: id, body: 'ten bytes!', contentLength: 50 });
      await peer.send(bytes, server.transport.local);

      const [answer] = await peer.received(1, 'the 400');
      expect(startLine(answer!.data)).to.equal('SIP/2.0 400 Bad Request');
      expect(answer!.from.address).to.equal('127.0.0.1');
      expect(answer!.from.port, 'sent from the transport socket').to.equal(server.transport.local.port);
      // RFC 3261 §8.2.6.2: the response copies Via, Call-ID and CSeq so the client can match it.
      const response = parseMessage(answer!.data);
      expect(response.callId).to.equal(id);
      expect(response.via[0]!.branch).to.equal('z9hG4bK-short');
      expect(response.cseq).to.deep.equal({ seq: 1, method: 'OPTIONS' });

      await expectQuiet(server, peer, 1, 0);
    });

    it('a response whose Content-Length is larger than its body is dropped: nothing up, nothing sent', async () => {
      const server = await udp();
      const peer = await raw();
      await peer.send(responseBytes({ body: 'ten bytes!', contentLength: 50 }), server.transport.local);
      await expectQuiet(server, peer, 0, 0);
    });

    it('bytes after the declared body are ignored: the message ends at the body', async () => {
      const server = await udp();
      const peer = await raw();
      const id = callId('extra');
      const message = requestBytes({ via: `SIP/2.0/UDP ${sentBy(peer.tuple)};branch=z9hG4bK-extra`, callId: id, body: 'hello', extra: ['Content-Type: text/plain'] });
      await peer.send(Buffer.concat([message, Buffer.from('EXTRA BYTES\r\n')]), server.transport.local);
      const event = await nextMessage(server.sink, id);
      expect(event.message.toBuffer().equals(message), show(event.message)).to.equal(true);
      expect(event.message.body.toString()).to.equal('hello');
      await expectQuiet(server, peer, 0, 1);
    });

    it('two messages in one datagram: only the first is a message; the second is bytes after its body', async () => {
      const server = await udp();
      const peer = await raw();
      const first = requestBytes({ via: `SIP/2.0/UDP ${sentBy(peer.tuple)};branch=z9hG4bK-first`, callId: callId('first') });
      const second = requestBytes({ via: `SIP/2.0/UDP ${sentBy(peer.tuple)};branch=z9hG4bK-second`, callId: callId('second') });
      await peer.send(Buffer.concat([first, second]), server.transport.local);
      const event = await nextMessage(server.sink);
      expect(event.message.toBuffer().equals(first), show(event.message)).to.equal(true);
      await expectQuiet(server, peer, 0, 1);
    });
  });

  describe('datagrams that are not SIP (RFC 3261 §18.3)', () => {
    it('are dropped without an answer, and the transport keeps working', async () => {
      const server = await udp();
      const peer = await raw();
      const rng = mulberry32(0x5ec0de);
      const noise = Buffer.alloc(300);
      for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(rng() * 256);
      const garbage = [
        noise,
        Buffer.from('hello world'),
        Buffer.from('GET / HTTP/1.1\r\nHost: parley.test\r\n\r\n'),
        Buffer.from('\r\n\r\n'),
        Buffer.from([0, 0, 0, 0, 0, 0]),
        Buffer.alloc(0),
      ];
      for (const bytes of garbage) await peer.send(bytes, server.transport.local);
      await expectQuiet(server, peer, 0, 0);
    });
  });

  describe('received and rport (RFC 3261 §18.2.1, RFC 3581 §4)', () => {
    async function receive(via: string): Promise<{ event: Awaited<ReturnType<typeof nextMessage>>; peer: RawUdp; bytes: Buffer }> {
      const server = await udp();
      const peer = await raw();
      const id = callId('via');
      const bytes = requestBytes({
        via: via.replace('PEER', sentBy(peer.tuple)),
        callId: id,
        extra: ['Via: SIP/2.0/UDP proxy.invalid:5070;branch=z9hG4bK-lower'],
      });
      await peer.send(bytes, server.transport.local);
      return { event: await nextMessage(server.sink, id), peer, bytes };
    }

    it('a top Via with ;rport and another host gets received=<source address> and rport=<source port>', async () => {
      const { event, peer } = await receive('SIP/2.0/UDP client.invalid:5060;rport;branch=z9hG4bK-rport1');
      const [top, lower] = event.message.via;
      expect(top!.host).to.equal('client.invalid');
      expect(top!.port).to.equal(5060);
      expect(top!.branch).to.equal('z9hG4bK-rport1');
      expect(top!.received).to.equal('127.0.0.1');
      expect(top!.rport).to.equal(peer.port);
      expect(lower!.toString()).to.equal('SIP/2.0/UDP proxy.invalid:5070;branch=z9hG4bK-lower');
      expect(event.message.via.length).to.equal(2);
    });

    it('a bare ;rport gets received even when the sent-by host is the source address (RFC 3581 §4)', async () => {
      const { event, peer } = await receive('SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK-rport2');
      const top = event.message.via[0]!;
      expect(top.received).to.equal('127.0.0.1');
      expect(top.rport).to.equal(peer.port);
      expect(top.branch).to.equal('z9hG4bK-rport2');
    });

    it('another host without rport gets received only', async () => {
      const { event } = await receive('SIP/2.0/UDP client.invalid:5060;branch=z9hG4bK-recv');
      const top = event.message.via[0]!;
      expect(top.received).to.equal('127.0.0.1');
      expect(top.rport).to.equal(undefined);
    });

    it('the source address as sent-by and no rport: the message is untouched', async () => {
      const { event, bytes } = await receive('SIP/2.0/UDP PEER;branch=z9hG4bK-same');
      expect(event.message.via[0]!.received).to.equal(undefined);
      expect(event.message.toBuffer().equals(bytes), show(event.message)).to.equal(true);
    });

    it('responses are not touched', async () => {
      const server = await udp();
      const peer = await raw();
      const id = callId('resp');
      const bytes = responseBytes({ via: 'SIP/2.0/UDP client.invalid:5060;rport;branch=z9hG4bK-resp', callId: id });
      await peer.send(bytes, server.transport.local);
      const event = await nextMessage(server.sink, id);
      expect(event.message.toBuffer().equals(bytes), show(event.message)).to.equal(true);
    });
  });

  describe('size limit', () => {
    it('a message of exactly maxMessageSize bytes is sent; one byte more rejects TRANSPORT_TOO_LARGE and pushes a failure', async () => {
      const a = await udp('127.0.0.1', 1000);
      const b = await udp();
      const via = `SIP/2.0/UDP ${sentBy(a.transport.local)};branch=z9hG4bK-size`;
      const fits = requestOfSize(1000, via);
      await a.transport.send(fits, b.transport.local, 'tid-fits');
      const arrived = await nextMessage(b.sink);
      expect(arrived.message.toBuffer().equals(fits)).to.equal(true);

      const target: Tuple = b.transport.local;
      const error = await rejection(a.transport.send(requestOfSize(1001, via), target, 'tid-big'));
      expect(error.code).to.equal('TRANSPORT_TOO_LARGE');
      expect(error.target).to.deep.equal(target);
      const failure = await nextFailure(a.sink);
      expect(failure.tid).to.equal('tid-big');
      expect(failure.target).to.deep.equal(target);
      expect(failure.error.code).to.equal('TRANSPORT_TOO_LARGE');
      expect(a.sink.types).to.deep.equal(['failure']);
      expect(b.sink.types).to.deep.equal(['message']);
    });

    it('a 70,000-byte datagram (over the IPv4 UDP maximum) rejects TRANSPORT_TOO_LARGE', async () => {
      const a = await udp();
      const b = await udp();
      const error = await rejection(a.transport.send(requestOfSize(70_000, `SIP/2.0/UDP ${sentBy(a.transport.local)};branch=z9hG4bK-huge`), b.transport.local));
      expect(error.code).to.equal('TRANSPORT_TOO_LARGE');
    });
  });
});
