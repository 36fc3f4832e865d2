// The error boundary between layers (ARCHITECTURE.md, FIFOs): a consumer that throws — a bug, an
// embedder's TU — is caught per item and reported on `parley:fifo:consumer-error`; the rest of the
// batch runs; a request with a transaction is answered 500; the process lives.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { expect } from 'chai';
import { Fifo } from '../../src/util/fifo.js';
import { TimeLimitFifo } from '../../src/util/time-limit-fifo.js';
import { ManualClock } from '../../src/util/clock.js';
import { cleanupHarnesses, harness, run, spec, txIt } from '../support/transaction-script.js';

interface Report {
  queue: string;
  item: unknown;
  error: unknown;
}

function recordReports(): { reports: Report[]; stop(): void } {
  const reports: Report[] = [];
  const listener = (data: unknown): void => void reports.push(data as Report);
  subscribe('parley:fifo:consumer-error', listener);
  return { reports, stop: () => unsubscribe('parley:fifo:consumer-error', listener) };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('error boundary between layers', () => {
  let recorder: ReturnType<typeof recordReports>;
  beforeEach(() => {
    recorder = recordReports();
  });
  afterEach(async () => {
    recorder.stop();
    await cleanupHarnesses();
  });

  it('Fifo: the item whose consumer throws is reported and handed to onError; the items after it in the batch still run', async () => {
    const consumed: number[] = [];
    const failed: number[] = [];
    const fifo = new Fifo<number>(
      (n) => {
        if (n === 2) throw new Error('bug on two');
        consumed.push(n);
      },
      { name: 'test', onError: (n) => failed.push(n) },
    );
    for (const n of [1, 2, 3]) fifo.push(n);
    await turn();
    expect(consumed).to.deep.equal([1, 3]);
    expect(failed).to.deep.equal([2]);
    expect(recorder.reports.map((r) => [r.queue, r.item, (r.error as Error).message])).to.deep.equal([['test', 2, 'bug on two']]);
    expect(fifo.size).to.equal(0);
  });

  it('TimeLimitFifo: a throw and a rejected promise are each reported once; the queue keeps serving', async () => {
    const clock = new ManualClock();
    const served: number[] = [];
    const failed: number[] = [];
    const fifo = new TimeLimitFifo<number>(
      (n) => {
        if (n === 1) throw new Error('sync');
        if (n === 2) return Promise.reject(new Error('async'));
        served.push(n);
        return undefined;
      },
      { limitMs: 1000, concurrency: 4, clock, name: 'tu-test' },
      (n) => failed.push(n),
    );
    for (const n of [1, 2, 3, 4]) fifo.push(n, 'request');
    await turn();
    await turn();
    expect(served).to.deep.equal([3, 4]);
    expect(failed).to.deep.equal([1, 2]);
    expect(recorder.reports.map((r) => [r.queue, r.item, (r.error as Error).message])).to.deep.equal([
      ['tu-test', 1, 'sync'],
      ['tu-test', 2, 'async'],
    ]);
    fifo.push(5, 'request');
    await turn();
    expect(served).to.deep.equal([3, 4, 5]);
  });

  txIt('a TU that throws on one MESSAGE: that one is answered 500 with a Warning, the next in the same batch gets its 200', async () => {
    const h = await harness({ protocol: 'udp', tu: 'none' });
    h.stack.setDefaultTu({
      onRequest: (request) => {
        if (request.message.body.toString() === 'boom') throw new Error('the handler broke');
        request.respond(200);
      },
    });
    await run(h, [
      { do: (x) => (x.inject(x.request(spec({ method: 'MESSAGE', body: 'boom' }))), x.inject(x.request(spec({ method: 'MESSAGE', body: 'fine' })))) },
      { advance: 1 },
      {
        expectWire: (w) =>
          expect([w.startLine, w.message.header('warning')]).to.deep.equal(['SIP/2.0 500 Server Internal Error', `399 parley "the request's handler failed: the handler broke"`]),
      },
      { expectWire: 'SIP/2.0 200 OK' },
      { expectNothing: true },
    ]);
    expect(recorder.reports.map((r) => r.queue)).to.deep.equal(['tu']);
  });

  txIt('a TU whose promise rejects before answering: 500; one that rejects after its 200: nothing more is sent', async () => {
    const h = await harness({ protocol: 'udp', tu: 'none' });
    h.stack.setDefaultTu({
      onRequest: async (request) => {
        await Promise.resolve();
        if (request.message.body.toString() === 'late') request.respond(200);
        throw new Error('rejected');
      },
    });
    await run(h, [
      { wire: (x) => x.request(spec({ method: 'MESSAGE', body: 'early' })) },
      { expectWire: /^SIP\/2\.0 500 Server Internal Error\r\n/ },
      { wire: (x) => x.request(spec({ method: 'MESSAGE', body: 'late' })) },
      { expectWire: 'SIP/2.0 200 OK' },
      { expectNothing: true },
    ]);
    expect(recorder.reports).to.have.length(2);
  });
});
