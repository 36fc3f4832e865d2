// The test LoopbackTransport itself: its knobs must do exactly what the transaction tests assume.
import { expect } from 'chai';
import { TransportError, type TransportEvent } from '../../src/index.js';
import { LoopbackNetwork, LoopbackTransport } from '../support/loopback-transport.js';
import { settle, SteppingClock } from '../support/stepping-clock.js';

const request = (id: string): Buffer =>
  Buffer.from(
    [
      'OPTIONS sip:b@10.0.0.2 SIP/2.0',
      'Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-' + id,
      'Max-Forwards: 70',
      'From: <sip:a@x>;tag=1',
      'To: <sip:b@y>',
      `Call-ID: ${id}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );

async function pairOf(protocol: 'udp' | 'tcp', knobs: ConstructorParameters<typeof LoopbackTransport>[0] = {}) {
  const clock = new SteppingClock();
  const network = new LoopbackNetwork();
  const got: TransportEvent[] = [];
  const a = new LoopbackTransport({ protocol, address: '10.0.0.1', port: 5060, clock, network, ...knobs });
  const b = new LoopbackTransport({ protocol, address: '10.0.0.2', port: 5060, clock, network, sink: { push: (e) => got.push(e) } });
  a.attach({ push: () => undefined });
  await a.start();
  await b.start();
  return { clock, a, b, got };
}

describe('LoopbackTransport (test support)', () => {
  it('delivers to the peer bound at the target and records every send with its virtual time', async () => {
    const { clock, a, got } = await pairOf('udp');
    await clock.step(250);
    await a.send(request('one'), { protocol: 'udp', address: '10.0.0.2', port: 5060 }, 'tid-1');
    await settle();
    expect(got).to.have.length(1);
    const e = got[0]!;
    expect(e.type === 'message' && e.message.callId).to.equal('one');
    expect(e.type === 'message' && e.source).to.deep.equal({ protocol: 'udp', address: '10.0.0.1', port: 5060 });
    expect(a.sent.map((r) => [r.at, r.tid, r.outcome])).to.deep.equal([[250, 'tid-1', 'delivered']]);
  });

  it('drops by predicate or seeded probability, duplicates, and delays on the clock', async () => {
    const { clock, a, got } = await pairOf('udp', { drop: (r) => r.bytes.includes('drop-me'), duplicate: (r) => r.bytes.includes('twice'), delay: 100 });
    const to = { protocol: 'udp' as const, address: '10.0.0.2', port: 5060 };
    await a.send(request('drop-me'), to);
    await a.send(request('twice'), to);
    await settle();
    expect(got).to.have.length(0);
    await clock.step(99);
    expect(got).to.have.length(0);
    await clock.step(1);
    expect(got.map((e) => e.type === 'message' && e.message.callId)).to.deep.equal(['twice', 'twice']);

    const seeded = await pairOf('udp', { drop: 0.3, seed: 9 });
    for (let i = 0; i < 1000; i++) await seeded.a.send(request(`n${i}`), to);
    const rate = seeded.a.sent.filter((r) => r.outcome === 'dropped').length / 1000;
    expect(rate).to.be.within(0.25, 0.35);
  });

  it('failNext rejects the next send with a TransportError and pushes a failure event with the tid', async () => {
    const events: TransportEvent[] = [];
    const t = new LoopbackTransport({ protocol: 'udp', sink: { push: (e) => events.push(e) } });
    await t.start();
    t.failNext('TRANSPORT_UNREACHABLE');
    const error = await t.send(request('x'), { protocol: 'udp', address: '192.0.2.1', port: 5060 }, 'tid-9').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(TransportError);
    expect((error as TransportError).code).to.equal('TRANSPORT_UNREACHABLE');
    expect(events.map((e) => e.type === 'failure' && [e.tid, e.error.code])).to.deep.equal([['tid-9', 'TRANSPORT_UNREACHABLE']]);
    await t.send(request('y'), { protocol: 'udp', address: '192.0.2.1', port: 5060 });
  });

  it('tcp: messages arrive on a connection, and sendOnConnection answers on it', async () => {
    const { a, b, got } = await pairOf('tcp');
    const id = await a.send(request('c1'), { protocol: 'tcp', address: '10.0.0.2', port: 5060 });
    await settle();
    expect(id).to.be.a('number');
    const e = got[0]!;
    if (e.type !== 'message') throw new Error('expected a message');
    expect(e.connectionId).to.be.a('number');
    expect(b.hasConnection(e.connectionId!)).to.equal(true);
    await b.sendOnConnection(e.connectionId!, request('back'));
    expect(b.sent[0]!.how).to.equal('connection');
    b.dropConnection(e.connectionId!);
    expect(b.hasConnection(e.connectionId!)).to.equal(false);
    const closed = await b.sendOnConnection(e.connectionId!, request('late')).catch((err: TransportError) => err.code);
    expect(closed).to.equal('TRANSPORT_CLOSED');
  });

  it('inject: a UDP datagram shorter than its Content-Length request gets the transport 400 (§18.3)', async () => {
    const events: TransportEvent[] = [];
    const t = new LoopbackTransport({ protocol: 'udp', sink: { push: (e) => events.push(e) } });
    await t.start();
    t.inject(Buffer.from(request('short').toString().replace('Content-Length: 0', 'Content-Length: 40')), { address: '192.0.2.1', port: 5060 });
    expect(events).to.have.length(0);
    expect(t.sent.map((r) => [r.byTransport, r.bytes.toString().split('\r\n')[0]])).to.deep.equal([[true, 'SIP/2.0 400 Bad Request']]);
  });
});
