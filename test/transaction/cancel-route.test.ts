// RFC 3261 §9.1 on real sockets: "The destination address, port, and transport for the CANCEL
// MUST be identical to those used to send the original request", and the CANCEL's single Via
// matches the INVITE's top Via — also when §18.1.1 moved an INVITE over 1300 bytes from UDP to TCP.
// A SipStack on 127.0.0.1 (UDP and TCP, port 0) calls a raw peer that listens on one port number
// for both UDP and TCP; the peer answers 180, the caller cancels, and the test reads the bytes
// the peer got. Protocol timers run on a ManualClock that never advances (no retransmissions).
import { expect } from 'chai';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import {
  createRequest,
  createResponse,
  ManualClock,
  parseMessage,
  SipStack,
  StreamFramer,
  type SipMessage,
  LocalContact,
} from '../../src/index.js';
import { Cleanup, RawTcpServer, within, type RawConn } from '../support/transport-harness.js';

/** A datagram the peer's UDP socket took. */
interface Datagram {
  message: SipMessage;
  bytes: Buffer;
  from: { address: string; port: number };
}

/** A raw SIP peer on 127.0.0.1 with a UDP socket and a TCP listener on the same port number. */
class DualPeer {
  readonly datagrams: Datagram[] = [];
  private wake: Array<() => void> = [];

  private constructor(
    readonly tcp: RawTcpServer,
    readonly udp: DgramSocket,
  ) {
    udp.on('message', (bytes, from) => {
      this.datagrams.push({ message: parseMessage(bytes), bytes, from: { address: from.address, port: from.port } });
      this.notify();
    });
    tcp.server.on('connection', (socket) => socket.on('data', () => this.notify()));
  }

  /** Binds TCP on a free port, then UDP on the same number (tries again if UDP has it taken). */
  static async open(): Promise<DualPeer> {
    for (let attempt = 0; ; attempt++) {
      const tcp = await RawTcpServer.listen('127.0.0.1', 0);
      const udp = createSocket('udp4');
      const bound = await new Promise<boolean>((resolve) => {
        udp.once('error', () => resolve(false));
        udp.bind(tcp.port, '127.0.0.1', () => resolve(true));
      });
      if (bound) return new DualPeer(tcp, udp);
      udp.close();
      await tcp.close();
      if (attempt >= 20) throw new Error('no port free for both UDP and TCP');
    }
  }

  get port(): number {
    return this.tcp.port;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = [];
    for (const w of wake) w();
  }

  /** Every SIP message received on TCP connection `conn`, in order. */
  static framed(conn: RawConn): Array<{ message: SipMessage; bytes: Buffer }> {
    const framer = new StreamFramer();
    const out: Array<{ message: SipMessage; bytes: Buffer }> = [];
    for (const item of framer.push(conn.data)) if (item.type === 'message') out.push({ message: item.message, bytes: item.message.toBuffer() });
    return out;
  }

  /** Resolves once `found()` returns something (checked on every datagram and TCP chunk). */
  async waitFor<T>(found: () => T | undefined, label: string): Promise<T> {
    const wait = async (): Promise<T> => {
      for (;;) {
        const value = found();
        if (value !== undefined) return value;
        await new Promise<void>((resolve) => this.wake.push(resolve));
      }
    };
    return within(wait(), label);
  }

  sendUdp(message: SipMessage, port: number): Promise<void> {
    return new Promise((resolve, reject) => this.udp.send(message.toBuffer(), port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
    await this.tcp.close();
  }
}

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function startStack(clock = new ManualClock()): Promise<SipStack> {
  const stack = new SipStack({ transports: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'], clock, dns: false });
  await stack.start();
  return cleanup.add('stack', stack, (s) => s.stop());
}

function portOf(stack: SipStack, protocol: 'udp' | 'tcp'): number {
  return stack.transports.find((t) => t.protocol === protocol)!.local.port;
}

/** An INVITE to the peer whose URI names no transport (so §18.1.1 may switch), `bodyBytes` of SDP-ish body. */
function invite(peer: DualPeer, bodyBytes: number): SipMessage {
  return createRequest({
    method: 'INVITE',
    uri: `sip:bob@127.0.0.1:${peer.port}`,
    from: '<sip:alice@127.0.0.1>',
    to: `<sip:bob@127.0.0.1:${peer.port}>`,
    contact: new LocalContact('alice'),
    body: `v=0\r\n${'a=x\r\n'.repeat(Math.ceil(bodyBytes / 5))}`.slice(0, bodyBytes),
    contentType: 'application/sdp',
  });
}

const method = (name: string) => (m: { message: SipMessage }) => m.message.isRequest && m.message.method === name;

describe('CANCEL goes where its INVITE went (RFC 3261 §9.1), on real sockets', () => {
  it('a small INVITE over UDP, 180, cancel(): the CANCEL arrives on UDP from the same socket to the same address, the INVITE\'s top Via byte for byte', async () => {
    const stack = await startStack();
    const peer = cleanup.add('peer', await DualPeer.open(), (p) => p.close());
    const request = stack.request(invite(peer, 200));

    const got = await peer.waitFor(() => peer.datagrams.find(method('INVITE')), 'the INVITE on UDP');
    expect(got.bytes.length).to.be.below(1300);
    const inviteVia = got.message.headers('via');
    expect(inviteVia).to.have.length(1);
    expect(inviteVia[0]).to.match(new RegExp(`^SIP/2\\.0/UDP 127\\.0\\.0\\.1:${portOf(stack, 'udp')};branch=z9hG4bK`));
    await peer.sendUdp(createResponse(got.message, 180, undefined, { toTag: 'callee1' }), portOf(stack, 'udp'));
    request.cancel();

    const cancel = await peer.waitFor(() => peer.datagrams.find(method('CANCEL')), 'the CANCEL on UDP');
    expect(cancel.from, 'the CANCEL leaves from the socket the INVITE left from').to.deep.equal(got.from);
    expect(cancel.message.headers('via'), 'exactly the INVITE\'s top Via (sent-by, transport, branch)').to.deep.equal(inviteVia);
    expect(cancel.bytes.toString('latin1')).to.include(`\r\nVia: ${inviteVia[0]!}\r\n`);
    expect(cancel.message.requestUriText).to.equal(got.message.requestUriText);
    for (const name of ['from', 'to', 'call-id']) expect(cancel.message.header(name), name).to.equal(got.message.header(name));
    expect(cancel.message.cseq).to.deep.equal({ seq: got.message.cseq.seq, method: 'CANCEL' });
    expect(peer.tcp.connections, 'nothing over TCP').to.have.length(0);

    // The callee ends it: 200 to the CANCEL, 487 to the INVITE; the §17.1.1.3 ACK follows the INVITE too.
    await peer.sendUdp(createResponse(cancel.message, 200), portOf(stack, 'udp'));
    await peer.sendUdp(createResponse(got.message, 487, undefined, { toTag: 'callee1' }), portOf(stack, 'udp'));
    expect((await within(request.final, 'the 487')).status).to.equal(487);
    const ack = await peer.waitFor(() => peer.datagrams.find(method('ACK')), 'the ACK on UDP');
    expect(ack.message.headers('via')).to.deep.equal(inviteVia);
    expect(ack.message.header('to')).to.equal(`<sip:bob@127.0.0.1:${peer.port}>;tag=callee1`);
  });

  it('an INVITE over 1300 bytes to a URI with no transport goes over TCP (§18.1.1), and so does its CANCEL, with the same Via, on the same connection', async () => {
    const stack = await startStack();
    const peer = cleanup.add('peer', await DualPeer.open(), (p) => p.close());
    const request = stack.request(invite(peer, 1400));

    const conn = await within(peer.tcp.connection(0), 'a TCP connection from the stack');
    const got = await peer.waitFor(() => DualPeer.framed(conn).find(method('INVITE')), 'the INVITE on TCP');
    expect(got.bytes.length).to.be.above(1300);
    expect(peer.datagrams, 'the INVITE did not go over UDP').to.have.length(0);
    const inviteVia = got.message.headers('via');
    expect(inviteVia).to.have.length(1);
    expect(inviteVia[0], '§18.1.1: "the value in the top Via MUST be changed"').to.match(
      new RegExp(`^SIP/2\\.0/TCP 127\\.0\\.0\\.1:${portOf(stack, 'tcp')};branch=z9hG4bK`),
    );
    await conn.write(createResponse(got.message, 180, undefined, { toTag: 'callee2' }).toBuffer());
    request.cancel();

    const cancel = await peer.waitFor(
      () => DualPeer.framed(conn).find(method('CANCEL')) ?? peer.datagrams.find(method('CANCEL')),
      'the CANCEL (on TCP or UDP)',
    );
    expect(peer.datagrams.map((d) => `${d.message.method} over UDP, Via ${d.message.header('via')!}`), 'nothing over UDP').to.deep.equal([]);
    expect(peer.tcp.connections, 'on the INVITE\'s connection, no new one').to.have.length(1);
    expect(cancel.message.headers('via'), 'exactly the INVITE\'s top Via (TCP, its sent-by, its branch)').to.deep.equal(inviteVia);
    expect(cancel.bytes.toString('latin1')).to.include(`\r\nVia: ${inviteVia[0]!}\r\n`);
    expect(cancel.message.requestUriText).to.equal(got.message.requestUriText);
    expect(cancel.message.cseq).to.deep.equal({ seq: got.message.cseq.seq, method: 'CANCEL' });

    await conn.write(createResponse(cancel.message, 200).toBuffer());
    await conn.write(createResponse(got.message, 487, undefined, { toTag: 'callee2' }).toBuffer());
    expect((await within(request.final, 'the 487')).status).to.equal(487);
    const ack = await peer.waitFor(() => DualPeer.framed(conn).find(method('ACK')), 'the ACK on TCP');
    expect(ack.message.headers('via')).to.deep.equal(inviteVia);
    expect(peer.datagrams).to.have.length(0);
  });

  it('the INVITE moved to TCP is not retransmitted on Timer A (§17.1.1.2: "If an unreliable transport is being used"), nor a large MESSAGE on Timer E', async () => {
    const clock = new ManualClock();
    const stack = await startStack(clock);
    const peer = cleanup.add('peer', await DualPeer.open(), (p) => p.close());
    const large = invite(peer, 1400);
    const message = createRequest({ method: 'MESSAGE', uri: large.requestUriText, from: '<sip:alice@127.0.0.1>', to: large.header('to')!, body: 'x'.repeat(1400), contentType: 'text/plain' });
    void stack.request(large);
    void stack.request(message);
    const conn = await within(peer.tcp.connection(0), 'a TCP connection from the stack');
    await peer.waitFor(() => (DualPeer.framed(conn).length >= 2 ? true : undefined), 'the INVITE and the MESSAGE on TCP');
    // T1 = 500 ms: unreliable timers would fire at 0.5, 1.5, 3.5 s (A) and 0.5, 1.5, 3.5, 7.5 s (E).
    for (let i = 0; i < 16; i++) {
      clock.advance(500);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await new Promise<void>((resolve) => setTimeout(resolve, 50));
    expect(DualPeer.framed(conn).map((m) => m.message.method)).to.deep.equal(['INVITE', 'MESSAGE']);
    expect(peer.datagrams).to.have.length(0);
  });
});
