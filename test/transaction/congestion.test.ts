// Congestion (ARCHITECTURE.md "FIFOs between layers", docs/transaction-layer.md "What the stack does
// on receive" step 4): when a TU cannot keep up, requests for it wait in its TimeLimitFifo; once
// the wait passes tuQueueLimitMs, new requests are answered 503 + Retry-After by their server
// transaction (so retransmissions are absorbed), while responses and ACKs are always admitted and
// memory stays bounded. Everything runs on virtual time.
import { expect } from 'chai';
import type { ServerRequest, TransactionUser } from '../../src/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { TimeLimitFifo } from '../../src/util/time-limit-fifo.js';
import { settle } from '../support/stepping-clock.js';
import { cleanupHarnesses, harness, spec, toWire, txIt, wireResponse, type Harness } from '../support/transaction-script.js';

const LIMIT = 100;

/** Final responses the stack sent, by Call-ID. */
function finals(h: Harness): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const record of h.transport.sent) {
    const wire = toWire(record);
    if (wire.message.isRequest || wire.message.status < 200) continue;
    const list = out.get(wire.message.callId) ?? [];
    list.push(wire.message.status);
    out.set(wire.message.callId, list);
  }
  return out;
}

function retryAfterOk(h: Harness): void {
  for (const record of h.transport.sent) {
    const wire = toWire(record);
    if (!wire.message.isRequest && wire.message.status === 503) {
      expect(wire.message.header('retry-after'), '503 carries Retry-After').to.match(/^\d+/);
    }
  }
}

describe('congestion: the TU queue (TimeLimitFifo)', function () {
  this.timeout(15_000);
  afterEach(async () => {
    await cleanupHarnesses();
  });

  txIt('a TU that blocks its queue: new requests get 503 + Retry-After once the queue wait passes the limit; responses and ACKs still flow', async () => {
    const h = await harness({ protocol: 'udp', tu: 'none', tuQueueLimitMs: LIMIT });
    const seen: string[] = [];
    const releases: Array<() => void> = [];
    // onRequest does not return until released: its promise settles when the test says so.
    const blocking: TransactionUser = {
      onRequest: (r: ServerRequest) => {
        seen.push(`${r.message.method} ${r.message.callId}`);
        if (r.message.method === 'ACK') return;
        return new Promise<void>((resolve) =>
          releases.push(() => {
            r.respond(200);
            resolve();
          }),
        );
      },
    };
    h.stack.setDefaultTu(blocking);

    const m1 = spec({ method: 'MESSAGE', callId: 'm1@peer', body: '1' });
    const m2 = spec({ method: 'MESSAGE', callId: 'm2@peer', body: '2' });
    h.inject(h.request(m1));
    await settle();
    expect(seen).to.deep.equal(['MESSAGE m1@peer']);

    await h.clock.stepTo(50);
    h.inject(h.request(m2)); // admitted: the queue is empty; it waits behind the blocked TU
    // A request of our own goes out meanwhile.
    const options = h.send(h.outgoing('OPTIONS'));
    await settle();

    await h.clock.stepTo(50 + LIMIT + 100);
    // m2 has now waited longer than the limit: new requests are refused.
    const refused = Array.from({ length: 200 }, (_, i) => spec({ method: 'MESSAGE', callId: `r${i}@peer`, body: 'x' }));
    for (const r of refused) h.inject(h.request(r));
    await settle();
    // Responses are still admitted: the client transaction completes while the TU is stuck.
    h.inject(wireResponse(h.sentRequest('OPTIONS'), 200));
    // An ACK (for some 2xx: no transaction) is admitted to the queue, never refused.
    h.inject(h.request(spec({ method: 'ACK', callId: 'ack@peer', toTag: 'x' })));
    // A retransmission of a refused request gets the same 503 from its transaction.
    h.inject(h.request(refused[0]!));
    await settle();

    const answered = finals(h);
    expect((await options.final).status, 'response to our own request').to.equal(200);
    const statuses = refused.map((r) => answered.get(r.callId) ?? []);
    expect(
      statuses.filter((s) => s[0] !== 503).length,
      `requests not refused with 503 while the queue wait was over ${LIMIT} ms`,
    ).to.equal(0);
    expect(answered.get('r0@peer'), 'the retransmission got the 503 again').to.deep.equal([503, 503]);
    retryAfterOk(h);
    expect(seen, 'nothing refused reached the TU').to.deep.equal(['MESSAGE m1@peer']);

    // Release the TU: it drains exactly what was admitted (m2, the ACK), nothing else.
    for (let guard = 0; releases.length > 0 && guard < 10; guard++) {
      releases.splice(0).forEach((release) => release());
      await settle();
    }
    expect(seen).to.deep.equal(['MESSAGE m1@peer', 'MESSAGE m2@peer', 'ACK ack@peer']);
    expect(finals(h).get('m1@peer')).to.deep.equal([200]);
    expect(finals(h).get('m2@peer')).to.deep.equal([200]);
  });

  txIt('a TU slower than the arrival rate: the backlog stays bounded and the excess is refused with 503 (ARCHITECTURE.md: degrade, do not fall over)', async () => {
    // Each request costs the TU 1 s of (virtual) time; requests arrive every 100 ms for 10 s.
    const h = await harness({ protocol: 'udp', tu: 'none', tuQueueLimitMs: 2000 });
    const clock = h.clock;
    const total = 100;
    let injected = 0;
    let maxBacklog = 0;
    const handled: string[] = [];
    const refusedSoFar = (): number => [...finals(h).values()].filter((s) => s.includes(503)).length;
    h.stack.setDefaultTu({
      onRequest: (r) => {
        maxBacklog = Math.max(maxBacklog, injected - handled.length - refusedSoFar());
        handled.push(r.message.callId);
        clock.advance(1000); // the TU is busy for 1 s; arrivals due meanwhile still arrive
        r.respond(200);
      },
    });
    for (let i = 0; i < total; i++) {
      clock.setTimer(i * 100, () => {
        injected += 1;
        h.inject(h.request(spec({ method: 'MESSAGE', callId: `slow${i}@peer`, body: 'x' })));
      });
    }
    for (let guard = 0; guard < 400 && [...finals(h).keys()].length < total; guard++) await clock.step(1000, 4);

    const answered = finals(h);
    expect(answered.size, 'every request got a final response').to.equal(total);
    const refused = [...answered.values()].filter((s) => s[0] === 503).length;
    retryAfterOk(h);
    expect(refused, 'requests refused with 503 (the TU can serve about one per second)').to.be.at.least(total / 2);
    expect(maxBacklog, 'requests queued ahead of the TU at once (about limit × arrival rate + one service time of arrivals)').to.be.at.most(40);
    expect(handled.length + refused).to.equal(total);
  });

  txIt('during congestion a new INVITE gets 503 while the CANCEL of an admitted INVITE is still answered 200', async () => {
    const h = await harness({ protocol: 'udp', tu: 'none', tuQueueLimitMs: LIMIT });
    const releases: Array<() => void> = [];
    const seen: string[] = [];
    h.stack.setDefaultTu({
      onRequest: (r) => {
        seen.push(r.message.method);
        if (r.message.method !== 'INVITE') return;
        return new Promise<void>((resolve) => releases.push(() => (r.respond(487), resolve())));
      },
    });
    const first = spec({ method: 'INVITE', callId: 'inv1@peer' });
    const queued = spec({ method: 'INVITE', callId: 'inv2@peer' });
    h.inject(h.request(first));
    await settle();
    await h.clock.stepTo(10);
    h.inject(h.request(queued));
    await h.clock.stepTo(10 + LIMIT + 50);
    const late = spec({ method: 'INVITE', callId: 'inv3@peer' });
    h.inject(h.request(late));
    h.inject(h.cancel(first));
    await settle();
    const answered = finals(h);
    expect(answered.get('inv3@peer'), 'a new INVITE while congested').to.deep.equal([503]);
    expect(answered.get('inv1@peer'), 'the CANCEL of an admitted INVITE is answered 200').to.deep.equal([200]);
    // Clean up: release, ACK the finals.
    for (let guard = 0; releases.length > 0 && guard < 10; guard++) {
      releases.splice(0).forEach((release) => release());
      await settle();
    }
    for (const s of [first, queued, late]) {
      const final = h.transport.sent
        .map(toWire)
        .find((w) => !w.message.isRequest && w.message.callId === s.callId && w.message.status >= 300 && w.message.cseq.method === 'INVITE');
      if (final) h.inject(h.ack(s, final.message.to.tag));
    }
    await settle();
    expect(seen.filter((m) => m === 'INVITE')).to.have.length.at.most(2);
  });
});

describe('TimeLimitFifo with concurrent consumers', () => {
  /** Items whose consumer returns a promise the test settles: `release()` ends the oldest running one. */
  function fifoHarness(concurrency: number) {
    const clock = new ManualClock(0);
    const running: Array<() => void> = [];
    const fifo = new TimeLimitFifo<number>(
      () =>
        new Promise<void>((resolve) => {
          running.push(resolve);
        }),
      { limitMs: 150, concurrency, clock },
    );
    // Two turns of the event loop: a settled item's slot is refilled on the turn after its promise resolves.
    const turn = async (): Promise<void> => {
      for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    return { clock, fifo, running, turn };
  }

  it('expects no wait while a slot is free, however long the running items take', async () => {
    const { clock, fifo, running, turn } = fifoHarness(32);
    for (let i = 0; i < 25; i++) expect(fifo.push(i, 'request')).to.equal(true);
    await turn();
    expect(running.length).to.equal(25);
    // One item took 100 ms (a disk commit): the service time is now 100 ms.
    clock.advance(100);
    running.shift()!();
    await turn();
    // 24 running side by side, 8 slots free: a newcomer starts at once (the old estimate said 2.4 s).
    expect(fifo.expectedWait).to.equal(0);
    expect(fifo.admits('request')).to.equal(true);
  });

  it('with every slot taken, expects one service time per `concurrency` items ahead beyond the slots', async () => {
    const { clock, fifo, running, turn } = fifoHarness(4);
    for (let i = 0; i < 5; i++) fifo.push(i, 'request');
    await turn();
    clock.advance(100);
    running.shift()!(); // 100 ms measured; the fifth item takes the slot
    await turn();
    expect(running.length).to.equal(4);
    expect(fifo.size).to.equal(0);
    // 4 running, none queued: the newcomer waits for a slot, about one service time.
    expect(fifo.expectedWait).to.equal(100);
    expect(fifo.admits('request')).to.equal(true);
    for (let i = 0; i < 4; i++) fifo.push(10 + i, 'request');
    // 4 running + 4 queued: the newcomer is the ninth, two rounds of 4 away.
    expect(fifo.expectedWait).to.equal(200);
    expect(fifo.admits('request')).to.equal(false);
    expect(fifo.admits('other')).to.equal(true);
  });
});
