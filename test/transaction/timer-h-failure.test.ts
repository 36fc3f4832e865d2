// RFC 3261 §17.2.1: "If timer H fires while in the Completed state, it implies that the ACK was
// never received. In this case, the server transaction MUST transition to the Terminated state,
// and MUST indicate to the TU that a transaction failure has occurred."
import { expect } from 'chai';
import type { ServerTransaction } from '../../src/index.js';
import { settle } from '../support/stepping-clock.js';
import { cleanupHarnesses, harness, spec, txIt } from '../support/transaction-script.js';

describe('INVITE server transaction: Timer H tells the TU (§17.2.1)', () => {
  afterEach(() => cleanupHarnesses());

  for (const protocol of ['udp', 'tcp'] as const) {
    txIt(`over ${protocol}: no ACK for a 486 within 64·T1 → onTransactionFailure, once; an ACK in time → none`, async () => {
      const h = await harness({ protocol, tu: 'none' });
      const failures: Array<{ callId: string; reason: string; state: string }> = [];
      h.stack.setDefaultTu({
        onRequest: (r) => {
          if (r.message.method === 'INVITE') r.respond(486);
        },
        onTransactionFailure: (tx: ServerTransaction, reason: string) => {
          failures.push({ callId: tx.request.callId, reason, state: tx.state });
        },
      });
      const lost = spec({ method: 'INVITE', callId: 'no-ack@peer' });
      const acked = spec({ method: 'INVITE', callId: 'acked@peer' });
      h.inject(h.request(lost));
      h.inject(h.request(acked));
      await settle();
      // The ACK for the non-2xx carries the INVITE's branch and so matches it (§17.1.1.3, §17.2.3).
      await h.clock.stepTo(1000);
      h.inject(h.request({ ...acked, method: 'ACK', cseqMethod: 'ACK', toTag: 'any' }));
      await settle();
      await h.clock.stepTo(64 * 500 - 1);
      expect(failures).to.deep.equal([]);
      await h.clock.stepTo(64 * 500);
      expect(failures).to.deep.equal([{ callId: 'no-ack@peer', reason: 'no ACK for the final response (Timer H)', state: 'terminated' }]);
      await h.clock.stepTo(10 * 64 * 500);
      expect(failures).to.have.length(1);
    });
  }
});
