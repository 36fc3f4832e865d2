// TimerQueue (docs/transaction-layer.md, "Time"; ARCHITECTURE.md: "a binary heap, one Node timer
// for the earliest deadline") on a ManualClock: order, cancellation, memory, and the one armed
// clock timer.
import { expect } from 'chai';
import { TimerQueue } from '../../src/index.js';
import { mulberry32, randInt } from '../support/random.js';
import { SteppingClock } from '../support/stepping-clock.js';

describe('TimerQueue', () => {
  let clock: SteppingClock;
  let queue: TimerQueue;

  beforeEach(() => {
    clock = new SteppingClock();
    queue = new TimerQueue(clock);
  });

  describe('firing order', () => {
    it('fires in deadline order, each at its deadline', () => {
      const fired: Array<[string, number]> = [];
      const at = (name: string) => () => fired.push([name, clock.now()]);
      queue.schedule(300, at('c'));
      queue.schedule(100, at('a'));
      queue.schedule(200, at('b'));
      queue.schedule(50, at('first'));
      clock.advance(1000);
      expect(fired).to.deep.equal([
        ['first', 50],
        ['a', 100],
        ['b', 200],
        ['c', 300],
      ]);
      expect(queue.size).to.equal(0);
    });

    it('fires nothing before its deadline and exactly at it', () => {
      const fired: number[] = [];
      queue.schedule(500, () => fired.push(clock.now()));
      clock.advance(499);
      expect(fired).to.deep.equal([]);
      expect(queue.size).to.equal(1);
      clock.advance(1);
      expect(fired).to.deep.equal([500]);
      expect(queue.size).to.equal(0);
    });

    it('fires timers with the same deadline in insertion order', () => {
      const fired: string[] = [];
      for (const name of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) queue.schedule(100, () => fired.push(name));
      queue.schedule(50, () => fired.push('early'));
      queue.schedule(100, () => fired.push('i'));
      clock.advance(100);
      expect(fired).to.deep.equal(['early', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    });

    it('keeps insertion order for equal deadlines reached from different start times', () => {
      const fired: string[] = [];
      queue.schedule(300, () => fired.push('x')); // due at 300
      clock.advance(100);
      queue.schedule(200, () => fired.push('y')); // due at 300, inserted later
      clock.advance(200);
      expect(fired).to.deep.equal(['x', 'y']);
    });

    it('orders 2,000 random deadlines like a stable sort', () => {
      const rng = mulberry32(7);
      const fired: number[] = [];
      const expected: Array<{ at: number; i: number }> = [];
      for (let i = 0; i < 2000; i++) {
        const at = randInt(rng, 0, 500);
        expected.push({ at, i });
        queue.schedule(at, () => fired.push(i));
      }
      expected.sort((p, q) => p.at - q.at || p.i - q.i);
      clock.advance(1000);
      expect(fired).to.deep.equal(expected.map((e) => e.i));
    });

    it('fires a timer scheduled by a callback for now in the same advance, after the current one', () => {
      const fired: Array<[string, number]> = [];
      queue.schedule(100, () => {
        fired.push(['outer', clock.now()]);
        queue.schedule(0, () => fired.push(['inner', clock.now()]));
        queue.schedule(50, () => fired.push(['later', clock.now()]));
      });
      queue.schedule(100, () => fired.push(['sibling', clock.now()]));
      clock.advance(1000);
      expect(fired).to.deep.equal([
        ['outer', 100],
        ['sibling', 100],
        ['inner', 100],
        ['later', 150],
      ]);
      expect(queue.size).to.equal(0);
    });

    it('treats a negative delay as zero', () => {
      const fired: number[] = [];
      queue.schedule(-20, () => fired.push(clock.now()));
      clock.advance(0);
      expect(fired).to.deep.equal([0]);
    });
  });

  describe('cancel', () => {
    it('removes the timer from the heap at once: size drops before any time passes', () => {
      const a = queue.schedule(100, () => expect.fail('a was cancelled'));
      const b = queue.schedule(200, () => undefined);
      const c = queue.schedule(300, () => undefined);
      expect(queue.size).to.equal(3);
      b.cancel();
      expect(queue.size).to.equal(2);
      a.cancel();
      expect(queue.size).to.equal(1);
      c.cancel();
      expect(queue.size).to.equal(0);
      clock.advance(1000);
    });

    it('is idempotent, and a no-op on a timer that already fired', () => {
      let fired = 0;
      const a = queue.schedule(10, () => fired++);
      const b = queue.schedule(20, () => fired++);
      a.cancel();
      a.cancel();
      expect(queue.size).to.equal(1);
      clock.advance(20);
      expect(fired).to.equal(1);
      const c = queue.schedule(5, () => fired++);
      b.cancel(); // already fired: must not remove c
      expect(queue.size).to.equal(1);
      clock.advance(5);
      expect(fired).to.equal(2);
      c.cancel();
      expect(queue.size).to.equal(0);
    });

    it('lets a callback cancel a later timer due at the same instant', () => {
      const fired: string[] = [];
      const later: { victim?: { cancel(): void } } = {};
      queue.schedule(100, () => {
        fired.push('first');
        later.victim?.cancel();
      });
      later.victim = queue.schedule(100, () => fired.push('victim'));
      queue.schedule(100, () => fired.push('third'));
      clock.advance(100);
      expect(fired).to.deep.equal(['first', 'third']);
      expect(queue.size).to.equal(0);
    });

    it('keeps the remaining order correct after cancelling from the middle of the heap', () => {
      const rng = mulberry32(11);
      const handles: Array<{ at: number; i: number; cancel(): void }> = [];
      const fired: number[] = [];
      for (let i = 0; i < 1000; i++) {
        const at = randInt(rng, 1, 10_000);
        const h = queue.schedule(at, () => fired.push(i));
        handles.push({ at, i, cancel: () => h.cancel() });
      }
      const kept = handles.filter(() => rng() < 0.5);
      const keptSet = new Set(kept);
      for (const h of handles) if (!keptSet.has(h)) h.cancel();
      expect(queue.size).to.equal(kept.length);
      kept.sort((p, q) => p.at - q.at || p.i - q.i);
      clock.advance(10_000);
      expect(fired).to.deep.equal(kept.map((h) => h.i));
    });

    it('100,000 scheduled and cancelled timers leave size 0 and no clock timer armed', () => {
      const rng = mulberry32(3);
      const handles = [];
      for (let i = 0; i < 100_000; i++) handles.push(queue.schedule(randInt(rng, 0, 64_000), () => expect.fail('cancelled')));
      expect(queue.size).to.equal(100_000);
      // Cancel in a shuffled order so removal from every heap position is exercised.
      for (let i = handles.length - 1; i > 0; i--) {
        const j = randInt(rng, 0, i);
        [handles[i], handles[j]] = [handles[j]!, handles[i]!];
      }
      for (const h of handles) h.cancel();
      expect(queue.size).to.equal(0);
      expect(clock.live, 'clock timers still armed with nothing queued').to.equal(0);
      clock.advance(100_000);
    });

    it('100,000 timers that schedule-and-cancel in turn (a retransmit timer reset each time) leave nothing', () => {
      let h = queue.schedule(1000, () => undefined);
      for (let i = 0; i < 100_000; i++) {
        h.cancel();
        h = queue.schedule(1000 + (i % 7), () => undefined);
      }
      expect(queue.size).to.equal(1);
      h.cancel();
      expect(queue.size).to.equal(0);
      expect(clock.live).to.equal(0);
    });
  });

  describe('the one clock timer', () => {
    it('never has more than one clock timer armed, through random schedule / cancel / advance', () => {
      const rng = mulberry32(5);
      const live: Array<{ cancel(): void }> = [];
      let maxLive = 0;
      for (let step = 0; step < 20_000; step++) {
        const r = rng();
        if (r < 0.5) live.push(queue.schedule(randInt(rng, 0, 5000), () => undefined));
        else if (r < 0.8 && live.length > 0) live.splice(randInt(rng, 0, live.length - 1), 1)[0]!.cancel();
        else clock.advance(randInt(rng, 0, 300));
        maxLive = Math.max(maxLive, clock.live);
        expect(clock.live).to.be.at.most(1);
        if (queue.size > 0) expect(clock.live, `step ${step}: timers queued but no clock timer armed`).to.equal(1);
      }
      expect(maxLive).to.equal(1);
      expect(clock.maxLive).to.equal(1);
    });

    it('arms the clock timer for the earliest deadline', () => {
      queue.schedule(1000, () => undefined);
      expect(clock.deadlines).to.deep.equal([1000]);
      queue.schedule(3000, () => undefined);
      expect(clock.deadlines).to.deep.equal([1000]);
    });

    it('re-arms for an earlier deadline scheduled later, and fires it on time', () => {
      const fired: Array<[string, number]> = [];
      queue.schedule(1000, () => fired.push(['late', clock.now()]));
      clock.advance(100);
      queue.schedule(50, () => fired.push(['early', clock.now()])); // due at 150
      expect(clock.deadlines).to.deep.equal([150]);
      expect(clock.live).to.equal(1);
      clock.advance(50);
      expect(fired).to.deep.equal([['early', 150]]);
      expect(clock.deadlines).to.deep.equal([1000]);
      clock.advance(850);
      expect(fired).to.deep.equal([
        ['early', 150],
        ['late', 1000],
      ]);
      expect(clock.live).to.equal(0);
    });

    it('re-arms for the next deadline when the earliest is cancelled', () => {
      const fired: number[] = [];
      const first = queue.schedule(100, () => fired.push(clock.now()));
      queue.schedule(700, () => fired.push(clock.now()));
      first.cancel();
      expect(clock.deadlines).to.deep.equal([700]);
      clock.advance(699);
      expect(fired).to.deep.equal([]);
      clock.advance(1);
      expect(fired).to.deep.equal([700]);
    });

    it('disarms the clock when the queue empties by cancellation', () => {
      const a = queue.schedule(100, () => undefined);
      expect(clock.live).to.equal(1);
      a.cancel();
      expect(clock.live).to.equal(0);
    });

    it('re-arms after firing when timers remain, and not when none do', () => {
      queue.schedule(100, () => undefined);
      queue.schedule(200, () => undefined);
      clock.advance(100);
      expect(clock.deadlines).to.deep.equal([200]);
      clock.advance(100);
      expect(clock.live).to.equal(0);
      expect(queue.size).to.equal(0);
    });
  });
});
