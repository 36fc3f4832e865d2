// The four RFC 3261 §17 transaction machines (with RFC 6026 §7) as scripts against one SipStack on a
// loopback transport, over UDP (unreliable) and TCP (reliable), on virtual time. Every transition
// and every timer: A B D E F G H I J K L M, the 200 ms 100 Trying, CANCEL (§9), matching (§17.1.3,
// §17.2.3 with the RFC 2543 fallback), validation on receive, and no leftovers after each test.
import { expect } from 'chai';
import { parseMessage, type SipMessage } from '../../src/index.js';
import { settle } from '../support/stepping-clock.js';
import {
  PEER,
  cleanupHarnesses,
  harness,
  run,
  spec,
  toWire,
  txIt,
  wireResponse,
  type Harness,
  type Step,
  type TuEvent,
  type Wire,
} from '../support/transaction-script.js';

const T1 = 500;
const T2 = 4000;
const T4 = 5000;
const T64 = 64 * T1;

/** Send times of a retransmission timer that starts at `t1` after `start` and doubles (capped at `cap`), before `until`. */
function backoff(start: number, t1: number, until: number, cap = Infinity): number[] {
  const out: number[] = [];
  let interval = t1;
  for (let t = start + t1; t < until; ) {
    out.push(t);
    interval = Math.min(interval * 2, cap);
    t += interval;
  }
  return out;
}

/** Steps for a reliable transport, or for an unreliable one. */
function split(reliable: boolean, yes: Step[], no: Step[]): Step[] {
  return reliable ? yes : no;
}

/** A response the stack made itself for a timeout or a transport failure (docs: Warning 399). */
function localFailure(status: number, request: () => SipMessage) {
  return function localFailureResponse(e: TuEvent): void {
    expect(e.kind).to.equal('final');
    if (e.kind === 'request') return;
    const r = e.response;
    expect(r.status, 'status').to.equal(status);
    expect(r.header('warning'), 'Warning').to.match(/^399 \S+ "[^"]+"$/);
    const req = request();
    expect(r.callId).to.equal(req.callId);
    expect(r.cseq).to.deep.equal(req.cseq);
    expect(r.via[0]!.branch).to.equal(req.via[0]!.branch);
  };
}

/** The message just read is byte for byte the latest earlier one with this start line (a retransmission). */
function sameBytesAs(h: Harness, startLine: string | RegExp) {
  return function sameBytes(w: Wire): void {
    const earlier = h.seen
      .slice(0, -1)
      .reverse()
      .find((e) => (typeof startLine === 'string' ? e.startLine === startLine : startLine.test(e.startLine)));
    expect(earlier, `an earlier ${startLine}`).to.not.equal(undefined);
    expect(w.text, 'a retransmission is the same bytes').to.equal(earlier!.text);
  };
}

for (const protocol of ['udp', 'tcp'] as const) {
  const reliable = protocol === 'tcp';
  const TR = protocol.toUpperCase();

  describe(`transaction machines over ${TR} (${reliable ? 'reliable' : 'unreliable'})`, function () {
    let h: Harness;

    beforeEach(async () => {
      h = await harness({ protocol, t1: T1, t2: T2, t4: T4 });
    });
    afterEach(async () => {
      await cleanupHarnesses();
    });

    // -----------------------------------------------------------------------------------------
    describe('non-INVITE client (§17.1.2)', () => {
      txIt('Trying → Proceeding → Completed: each 1xx and the final go to the TU, a retransmitted final is absorbed; Timer K', async () => {
        await run(h, [
          { send: (x) => x.outgoing('OPTIONS') },
          { expectWire: /^OPTIONS sip:bob@192\.0\.2\.10:5060/, at: 0 },
          { advanceTo: 100 },
          { wire: (x) => x.respond('OPTIONS', 100) },
          { expectTu: 'provisional 100', at: 100 },
          { wire: (x) => x.respond('OPTIONS', 180) },
          { expectTu: 'provisional 180', at: 100 },
          { advanceTo: 200 },
          { wire: (x) => x.respond('OPTIONS', 200) },
          { expectTu: 'final 200', at: 200 },
          // Completed: response retransmissions are absorbed (§17.1.2.2), late provisionals too.
          { wire: (x) => x.respond('OPTIONS', 200) },
          { wire: (x) => x.respond('OPTIONS', 180) },
          { expectNothing: true },
          { expectTransactions: 1 },
          // Timer K: T4 unreliable, 0 reliable.
          ...split(reliable, [{ advance: 0 }, { expectTransactions: 0 }], [
            { advanceTo: 200 + T4 - 1 },
            { wire: (x: Harness) => x.respond('OPTIONS', 200) },
            { expectTransactions: 1 },
            { advanceTo: 200 + T4 },
            { expectTransactions: 0 },
          ]),
          { advance: T64 },
          { expectNothing: true },
          { expectStates: ['non-invite-client', 'trying', 'proceeding', 'completed', 'terminated'] },
        ]);
      });

      txIt('Trying → Completed on a final with no provisional (404 is final too)', async () => {
        await run(h, [
          { send: (x) => x.outgoing('MESSAGE', { body: 'hi' }) },
          { expectWire: /^MESSAGE /, at: 0 },
          { advanceTo: 50 },
          { wire: (x) => x.respond('MESSAGE', 404) },
          { expectTu: 'final 404', at: 50 },
          { advance: T64 },
          { expectNothing: true },
          { expectTransactions: 0 },
          { expectStates: ['non-invite-client', 'trying', 'completed', 'terminated'] },
        ]);
      });

      if (!reliable) {
        txIt('Timer E: retransmits at T1, 2T1, 4T1… capped at T2 — exactly 10 times — then Timer F → 408 with Warning 399', async () => {
          const times = backoff(0, T1, T64, T2);
          expect(times).to.deep.equal([500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
          await run(h, [
            { send: (x) => x.outgoing('OPTIONS') },
            { expectWire: /^OPTIONS /, at: 0 },
            { advance: T64 },
            ...times.map((at) => ({ expectWire: sameBytesAs(h, /^(OPTIONS|INVITE) /), at })),
            { expectTu: localFailure(408, () => h.sentRequest('OPTIONS')), at: T64 },
            { expectNothing: true },
            // Timer F goes straight to Terminated.
            { expectTransactions: 0 },
            { advance: T64 },
            { expectNothing: true },
            { expectStates: ['non-invite-client', 'trying', 'terminated'] },
          ]);
        });

        txIt('Timer E and F follow the stack options (T1 = 100, T2 = 400)', async () => {
          const small = await harness({ protocol, t1: 100, t2: 400, t4: 1000 });
          const times = backoff(0, 100, 6400, 400);
          await run(small, [
            { send: (x) => x.outgoing('OPTIONS') },
            { expectWire: /^OPTIONS /, at: 0 },
            { advance: 6400 },
            ...times.map((at) => ({ expectWire: /^OPTIONS /, at })),
            { expectTu: 'final 408', at: 6400 },
            { expectNothing: true },
          ]);
        });

        txIt('Timer E in Proceeding: the pending E fires, then every T2 (§17.1.2.2); Timer F in Proceeding → 408', async () => {
          // E fired at 500 (next due 1500); the 1xx at 600 does not reset it; from then on E is T2.
          const proceeding = [1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500];
          await run(h, [
            { send: (x) => x.outgoing('OPTIONS') },
            { expectWire: /^OPTIONS /, at: 0 },
            { advanceTo: 600 },
            { expectWire: /^OPTIONS /, at: 500 },
            { wire: (x) => x.respond('OPTIONS', 100) },
            { expectTu: 'provisional 100', at: 600 },
            { advanceTo: T64 },
            ...proceeding.map((at) => ({ expectWire: /^OPTIONS /, at })),
            { expectTu: 'final 408', at: T64 },
            { expectNothing: true },
            { expectTransactions: 0 },
            { expectStates: ['non-invite-client', 'trying', 'proceeding', 'terminated'] },
          ]);
        });

        txIt('a transport failure on a retransmission (Timer E) → 503 with Warning 399, no more retransmissions', async () => {
          await run(h, [
            { send: (x) => x.outgoing('OPTIONS') },
            { expectWire: /^OPTIONS /, at: 0 },
            { do: (x) => x.transport.failNext('TRANSPORT_UNREACHABLE') },
            { advanceTo: 500 },
            { expectWire: (w) => expect(w.record.outcome).to.equal('failed'), at: 500 },
            { expectTu: localFailure(503, () => h.sentRequest('OPTIONS')), at: 500 },
            { expectTransactions: 0 },
            { advance: T64 },
            { expectNothing: true },
          ]);
        });
      } else {
        txIt('no retransmissions on a reliable transport; Timer F → 408 with Warning 399', async () => {
          await run(h, [
            { send: (x) => x.outgoing('OPTIONS') },
            { expectWire: /^OPTIONS /, at: 0 },
            { advanceTo: T64 - 1 },
            { expectNothing: true },
            { expectTransactions: 1 },
            { advanceTo: T64 },
            { expectTu: localFailure(408, () => h.sentRequest('OPTIONS')), at: T64 },
            { expectNothing: true },
            { expectTransactions: 0 },
            { expectStates: ['non-invite-client', 'trying', 'terminated'] },
          ]);
        });

        txIt('Timer F in Proceeding → 408', async () => {
          await run(h, [
            { send: (x) => x.outgoing('OPTIONS') },
            { expectWire: /^OPTIONS /, at: 0 },
            { wire: (x) => x.respond('OPTIONS', 100) },
            { expectTu: 'provisional 100' },
            { advanceTo: T64 },
            { expectTu: 'final 408', at: T64 },
            { expectNothing: true },
            { expectStates: ['non-invite-client', 'trying', 'proceeding', 'terminated'] },
          ]);
        });
      }

      txIt('a transport failure on the first send → 503 with Warning 399, the transaction is gone', async () => {
        await run(h, [
          { do: (x) => x.transport.failNext('TRANSPORT_REFUSED') },
          { send: (x) => x.outgoing('OPTIONS') },
          { expectWire: (w) => expect(w.record.outcome).to.equal('failed') },
          { expectTu: localFailure(503, () => h.sentRequest('OPTIONS')), at: 0 },
          { expectTransactions: 0 },
          { advance: T64 },
          { expectNothing: true },
          { expectStates: ['non-invite-client', 'trying', 'terminated'] },
        ]);
      });

      txIt('matching (§17.1.3): the right branch with another CSeq method, or another branch, does not match', async () => {
        await run(h, [
          { send: (x) => x.outgoing('OPTIONS') },
          { expectWire: /^OPTIONS /, at: 0 },
          { wire: (x) => x.respond('OPTIONS', 200, { cseqMethod: 'INFO' }) },
          { wire: (x) => x.respond('OPTIONS', 200, { branch: 'z9hG4bK-someone-else' }) },
          { wire: (x) => x.respond('OPTIONS', 200, { cseqMethod: 'CANCEL' }) },
          { expectNothing: true },
          { expectTransactions: 1 },
          ...(reliable ? [] : [{ advanceTo: 500 }, { expectWire: /^OPTIONS /, at: 500 }]),
          { wire: (x) => x.respond('OPTIONS', 200) },
          { expectTu: 'final 200' },
          { expectNothing: true },
        ]);
      });

      txIt('a malformed response is dropped (validation on receive); the transaction carries on', async () => {
        await run(h, [
          { send: (x) => x.outgoing('OPTIONS') },
          { expectWire: /^OPTIONS /, at: 0 },
          // Broken CSeq, two Vias to a UA (§8.1.3.3), a status out of range.
          { wire: (x) => x.respond('OPTIONS', 200).toString('utf8').replace(/^CSeq: .*$/m, 'CSeq: one OPTIONS') },
          {
            wire: (x) =>
              x
                .respond('OPTIONS', 200)
                .toString('utf8')
                .replace(/^(Via: .*)$/m, '$1\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK-extra'),
          },
          { wire: (x) => x.respond('OPTIONS', 200).toString('utf8').replace(/^SIP\/2\.0 200 OK/, 'SIP/2.0 999 Nine') },
          { expectNothing: true },
          { expectTransactions: 1 },
          { wire: (x) => x.respond('OPTIONS', 200) },
          { expectTu: 'final 200' },
          { expectNothing: true },
        ]);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('INVITE client (§17.1.1, RFC 6026 §7.2)', () => {
      if (!reliable) {
        txIt('Timer A doubles without a cap (6 retransmissions), Timer B → 408 with Warning 399 and no ACK', async () => {
          const times = backoff(0, T1, T64);
          expect(times).to.deep.equal([500, 1500, 3500, 7500, 15500, 31500]);
          await run(h, [
            { send: (x) => x.outgoing('INVITE') },
            { expectWire: /^INVITE /, at: 0 },
            { advanceTo: T64 },
            ...times.map((at) => ({ expectWire: sameBytesAs(h, /^(OPTIONS|INVITE) /), at })),
            { expectTu: localFailure(408, () => h.sentRequest('INVITE')), at: T64 },
            { expectTransactions: 0 },
            { advance: 2 * T64 },
            { expectNothing: true },
            { expectStates: ['invite-client', 'calling', 'terminated'] },
          ]);
        });

        txIt('Timer A is not capped by T2 (T1 = 100, T2 = 200): 100, 300, 700, 1500, 3100, 6300; Timer B at 6400', async () => {
          const small = await harness({ protocol, t1: 100, t2: 200, t4: 1000 });
          await run(small, [
            { send: (x) => x.outgoing('INVITE') },
            { expectWire: /^INVITE /, at: 0 },
            { advanceTo: 6400 },
            ...[100, 300, 700, 1500, 3100, 6300].map((at) => ({ expectWire: /^INVITE /, at })),
            { expectTu: 'final 408', at: 6400 },
            { expectNothing: true },
          ]);
        });

        txIt('a 1xx stops the retransmissions, and Timer B no longer applies in Proceeding', async () => {
          await run(h, [
            { send: (x) => x.outgoing('INVITE') },
            { expectWire: /^INVITE /, at: 0 },
            { advanceTo: 600 },
            { expectWire: /^INVITE /, at: 500 },
            { wire: (x) => x.respond('INVITE', 180) },
            { expectTu: 'provisional 180', at: 600 },
            { advance: 2 * T64 },
            { expectNothing: true },
            { expectTransactions: 1 },
            { wire: (x) => x.respond('INVITE', 183) },
            { expectTu: 'provisional 183' },
            { wire: (x) => x.respond('INVITE', 486) },
            { expectWire: /^ACK / },
            { expectTu: 'final 486' },
            { expectNothing: true },
          ]);
        });

      } else {
        txIt('no Timer A on a reliable transport; Timer B → 408 with Warning 399 and no ACK', async () => {
          await run(h, [
            { send: (x) => x.outgoing('INVITE') },
            { expectWire: /^INVITE /, at: 0 },
            { advanceTo: T64 - 1 },
            { expectNothing: true },
            { advanceTo: T64 },
            { expectTu: localFailure(408, () => h.sentRequest('INVITE')), at: T64 },
            { expectTransactions: 0 },
            { advance: T64 },
            { expectNothing: true },
            { expectStates: ['invite-client', 'calling', 'terminated'] },
          ]);
        });
      }

      txIt('Calling → Completed: a final response before any 1xx is ACKed and ends Timer A (3xx too)', async () => {
        await run(h, [
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: /^INVITE /, at: 0 },
          { advanceTo: 700 },
          ...split(reliable, [], [{ expectWire: /^INVITE /, at: 500 }]),
          { wire: (x) => x.respond('INVITE', 302, { extra: { Contact: '<sip:bob@198.51.100.7>' } }) },
          { expectWire: /^ACK /, at: 700 },
          { expectTu: 'final 302', at: 700 },
          { advance: T64 },
          { expectNothing: true },
          { expectStates: ['invite-client', 'calling', 'completed', 'terminated'] },
        ]);
      });

      txIt('Calling → Accepted: a 2xx before any 1xx ends Timer A; no ACK from the transaction', async () => {
        await run(h, [
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: /^INVITE /, at: 0 },
          { advanceTo: 100 },
          { wire: (x) => x.respond('INVITE', 200) },
          { expectTu: 'final 200', at: 100 },
          { advance: T64 },
          { expectNothing: true },
          { expectStates: ['invite-client', 'calling', 'accepted', 'terminated'] },
        ]);
      });

      txIt('Completed → Terminated when the ACK cannot be sent (Figure 5: transport error), the TU hears the final only', async () => {
        await run(h, [
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: /^INVITE /, at: 0 },
          { do: (x) => x.transport.failNext('TRANSPORT_RESET') },
          { wire: (x) => x.respond('INVITE', 480) },
          { expectWire: (w) => expect([w.message.method, w.record.outcome]).to.deep.equal(['ACK', 'failed']) },
          { expectTu: 'final 480' },
          { expectNothing: true },
          { expectTransactions: 0 },
          { expectStates: ['invite-client', 'calling', 'completed', 'terminated'] },
        ]);
      });

      txIt('3xx–6xx → Completed: the transaction ACKs (§17.1.1.3), a retransmitted final gets the ACK again and stays from the TU; Timer D', async () => {
        const D = reliable ? 0 : 32_000;
        let invite!: Wire;
        let ack!: Wire;
        await run(h, [
          { send: (x) => x.outgoing('INVITE', { headers: { Route: `<sip:${PEER.address}:${PEER.port};lr>` } }) },
          { expectWire: (w) => void (invite = w), at: 0 },
          { advanceTo: 100 },
          { wire: (x) => x.respond('INVITE', 180, { toTag: 'callee-1' }) },
          { expectTu: 'provisional 180' },
          { wire: (x) => x.respond('INVITE', 486, { toTag: 'callee-1' }) },
          {
            expectWire: function ackFor486(w) {
              ack = w;
              const a = w.message;
              const i = invite.message;
              expect(a.method).to.equal('ACK');
              expect(a.requestUriText, 'Request-URI').to.equal(i.requestUriText);
              expect(a.headers('via'), 'one Via, equal to the INVITE top Via').to.deep.equal([i.headers('via')[0]]);
              expect(a.via[0]!.branch).to.equal(i.via[0]!.branch);
              const responseTo = parseMessage(h.respond('INVITE', 486, { toTag: 'callee-1' })).header('to');
              expect(a.header('to'), 'To of the response, with its tag').to.equal(responseTo);
              expect(a.to.tag).to.equal('callee-1');
              expect(a.header('from')).to.equal(i.header('from'));
              expect(a.callId).to.equal(i.callId);
              expect(a.cseq).to.deep.equal({ seq: i.cseq.seq, method: 'ACK' });
              expect(a.headers('route'), 'the INVITE Route header fields').to.deep.equal(i.headers('route'));
              // "The ACK MUST be sent to the same address, port, and transport to which the original request was sent."
              expect(w.record.target).to.deep.equal(invite.record.target);
              if (reliable) expect(w.record.connectionId).to.equal(invite.record.connectionId);
            },
            at: 100,
          },
          { expectTu: 'final 486', at: 100 },
          { expectNothing: true },
          // A retransmitted final (still at 100 ms on TCP, before the 0 s Timer D runs) gets the same ACK.
          ...split(reliable, [], [{ advanceTo: 200 }]),
          { wire: (x) => x.respond('INVITE', 486, { toTag: 'callee-1' }) },
          { expectWire: (w) => expect(w.text).to.equal(ack.text), at: reliable ? 100 : 200 },
          { expectNothing: true },
          { expectTransactions: 1 },
          ...split(reliable, [{ advance: 0 }, { expectTransactions: 0 }], [
            { advanceTo: 100 + D - 1 },
            { wire: (x: Harness) => x.respond('INVITE', 486, { toTag: 'callee-1' }) },
            { expectWire: /^ACK /, at: 100 + D - 1 },
            { expectTransactions: 1 },
            { advanceTo: 100 + D },
            { expectTransactions: 0 },
          ]),
          // After Timer D the final matches nothing: dropped, not ACKed, not passed up.
          { wire: (x) => x.respond('INVITE', 486, { toTag: 'callee-1' }) },
          { expectNothing: true },
          { expectStates: ['invite-client', 'calling', 'proceeding', 'completed', 'terminated'] },
        ]);
      });

      txIt('2xx → Accepted (RFC 6026): to the TU once as final, no ACK from the transaction, retransmissions and forked 2xx to on2xx; Timer M', async () => {
        await run(h, [
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: /^INVITE /, at: 0 },
          { advanceTo: 100 },
          { wire: (x) => x.respond('INVITE', 180, { toTag: 'callee-1' }) },
          { expectTu: 'provisional 180' },
          { advanceTo: 200 },
          { wire: (x) => x.respond('INVITE', 200, { toTag: 'callee-1' }) },
          { expectTu: 'final 200', at: 200 },
          // "The client transaction MUST NOT generate an ACK to any 2xx response on its own."
          { expectNothing: true },
          { advanceTo: 700 },
          { wire: (x) => x.respond('INVITE', 200, { toTag: 'callee-1' }) },
          { expectTu: '2xx 200', at: 700 },
          { wire: (x) => x.respond('INVITE', 200, { toTag: 'callee-fork-2' }) },
          { expectTu: (e) => expect(e.kind === 'final' || e.kind === 'request' ? undefined : e.response.to.tag).to.equal('callee-fork-2') },
          // A provisional after the 2xx is not a new event for the TU's provisional handler.
          { expectNothing: true },
          { expectTransactions: 1 },
          { advanceTo: 200 + T64 - 1 },
          { expectTransactions: 1 },
          { advanceTo: 200 + T64 },
          { expectTransactions: 0 },
          // After Timer M a 2xx matches nothing and is dropped (RFC 6026 §7.2).
          { wire: (x) => x.respond('INVITE', 200, { toTag: 'callee-1' }) },
          { expectNothing: true },
          { expectStates: ['invite-client', 'calling', 'proceeding', 'accepted', 'terminated'] },
        ]);
      });

      txIt('a transport failure on the INVITE → 503 with Warning 399', async () => {
        await run(h, [
          { do: (x) => x.transport.failNext('TRANSPORT_RESET') },
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: (w) => expect(w.record.outcome).to.equal('failed') },
          { expectTu: localFailure(503, () => h.sentRequest('INVITE')), at: 0 },
          { expectTransactions: 0 },
          { advance: T64 },
          { expectNothing: true },
          { expectStates: ['invite-client', 'calling', 'terminated'] },
        ]);
      });

      txIt('CANCEL (§9.1): held until a provisional arrives, then sent as its own transaction; its 200 does not end the INVITE', async () => {
        let invite!: Wire;
        await run(h, [
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: (w) => void (invite = w), at: 0 },
          { do: (x) => x.handles[0]!.cancel() },
          { advanceTo: 400 },
          // "If no provisional response has been received, the CANCEL request MUST NOT be sent"
          { expectNothing: true },
          { wire: (x) => x.respond('INVITE', 180, { toTag: 'callee-1' }) },
          { expectTu: 'provisional 180' },
          {
            expectWire: function cancel(w) {
              const c = w.message;
              const i = invite.message;
              expect(c.method).to.equal('CANCEL');
              expect(c.requestUriText).to.equal(i.requestUriText);
              expect(c.headers('via'), 'a single Via matching the INVITE top Via').to.deep.equal([i.headers('via')[0]]);
              expect(c.callId).to.equal(i.callId);
              expect(c.header('from')).to.equal(i.header('from'));
              expect(c.header('to'), 'To as in the INVITE (no tag)').to.equal(i.header('to'));
              expect(c.cseq).to.deep.equal({ seq: i.cseq.seq, method: 'CANCEL' });
              expect(c.headers('require')).to.deep.equal([]);
              expect(w.record.target, 'same destination as the INVITE').to.deep.equal(invite.record.target);
            },
            at: 400,
          },
          { wire: (x) => x.respond('CANCEL', 200) },
          // The 200 (CANCEL) has the INVITE's branch but CSeq method CANCEL: it is not the INVITE's final.
          { expectNothing: true },
          { advanceTo: 600 },
          { wire: (x) => x.respond('INVITE', 487, { toTag: 'callee-1' }) },
          { expectWire: /^ACK /, at: 600 },
          { expectTu: 'final 487', at: 600 },
          { advance: T64 },
          { expectNothing: true },
        ]);
      });

      txIt('CANCEL after a provisional goes out at once', async () => {
        await run(h, [
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: /^INVITE /, at: 0 },
          { wire: (x) => x.respond('INVITE', 183, { toTag: 'callee-1' }) },
          { expectTu: 'provisional 183' },
          { advanceTo: 50 },
          { do: (x) => x.handles[0]!.cancel() },
          { expectWire: /^CANCEL /, at: 50 },
          { wire: (x) => x.respond('CANCEL', 200) },
          { wire: (x) => x.respond('INVITE', 487, { toTag: 'callee-1' }) },
          { expectWire: /^ACK / },
          { expectTu: 'final 487' },
          { expectNothing: true },
        ]);
      });

      txIt('CANCEL answered but no final for the INVITE: the INVITE transaction is given up after 64·T1 (§9.1)', async () => {
        // "If there is no final response for the original request in 64*T1 seconds … the client SHOULD
        // then consider the original transaction cancelled and SHOULD destroy the client transaction."
        await run(h, [
          { send: (x) => x.outgoing('INVITE') },
          { expectWire: /^INVITE /, at: 0 },
          { wire: (x) => x.respond('INVITE', 180, { toTag: 'callee-1' }) },
          { expectTu: 'provisional 180' },
          { do: (x) => x.handles[0]!.cancel() },
          { expectWire: /^CANCEL /, at: 0 },
          { wire: (x) => x.respond('CANCEL', 200) },
          { expectNothing: true },
          { advanceTo: T64 + 1 },
          { do: (x) => void x.drain() },
          { expectTransactions: 0 },
          { do: async (x) => expect(x.events.some((e) => e.kind === 'final'), 'the TU heard how the INVITE ended').to.equal(true) },
        ]);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('INVITE server (§17.2.1, RFC 6026 §7.1)', () => {
      txIt('sends 100 Trying after 200 ms when the TU is silent (no To tag on it)', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE', at: 0 },
          { advanceTo: 199 },
          { expectNothing: true },
          { advanceTo: 200 },
          {
            expectWire: function trying(w) {
              expect(w.startLine).to.equal('SIP/2.0 100 Trying');
              expect(w.message.to.tag, '§17.2.1: To tag SHOULD NOT be added to the 100').to.equal(undefined);
              expect(w.message.callId).to.equal(invite.callId);
              expect(w.message.cseq).to.deep.equal({ seq: 1, method: 'INVITE' });
              expect(w.message.via[0]!.branch).to.equal(invite.branch);
            },
            at: 200,
          },
          { advance: 5000 },
          { expectNothing: true },
          { tu: (r) => r.respond(486) },
          { expectWire: 'SIP/2.0 486 Busy Here' },
          { wire: (x) => x.ack(invite, x.seen[1]!.message.to.tag) },
          { expectNothing: true },
        ]);
      });

      txIt('sends no 100 Trying when the TU answers within 200 ms', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE', at: 0 },
          { advanceTo: 150 },
          { tu: (r) => r.respond(180) },
          { expectWire: 'SIP/2.0 180 Ringing', at: 150 },
          { advance: 5000 },
          { expectNothing: true },
          { tu: (r) => r.respond(200) },
          { expectWire: 'SIP/2.0 200 OK' },
          { expectNothing: true },
        ]);
      });

      txIt('a retransmitted INVITE gets the most recent provisional again and does not reach the TU', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(180) },
          { expectWire: 'SIP/2.0 180 Ringing', at: 0 },
          { advanceTo: 500 },
          { wire: (x) => x.request(invite) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 180 Ringing'), at: 500 },
          { tu: (r) => r.respond(183, 'Session Progress') },
          { expectWire: 'SIP/2.0 183 Session Progress', at: 500 },
          { advanceTo: 1500 },
          { wire: (x) => x.request(invite) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 183 Session Progress'), at: 1500 },
          { expectNothing: true },
          { tu: (r) => r.respond(480) },
          { expectWire: /^SIP\/2\.0 480 / },
          { wire: (x) => x.ack(invite, x.seen.at(-1)!.message.to.tag) },
          { expectNothing: true },
        ]);
      });

      txIt('3xx–6xx → Completed: Timer G retransmits (T1 doubling, capped at T2) until Timer H (64·T1) terminates it', async () => {
        const invite = spec({ method: 'INVITE' });
        const times = reliable ? [] : backoff(0, T1, T64, T2);
        if (!reliable) expect(times).to.deep.equal([500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(486) },
          { expectWire: 'SIP/2.0 486 Busy Here', at: 0 },
          { advanceTo: T64 - 1 },
          ...times.map((at) => ({ expectWire: sameBytesAs(h, 'SIP/2.0 486 Busy Here'), at })),
          { expectNothing: true },
          { expectTransactions: 1 },
          { advanceTo: T64 },
          { expectTransactions: 0 },
          { advance: T64 },
          { expectNothing: true },
          { expectStates: ['invite-server', 'proceeding', 'completed', 'terminated'] },
        ]);
      });

      txIt('a retransmitted INVITE in Completed gets the final again', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(603) },
          { expectWire: 'SIP/2.0 603 Decline', at: 0 },
          // Completed: nothing more from the TU goes out (§17.2.1 only passes responses in Proceeding).
          { tu: (r) => r.respond(180) },
          { tu: (r) => r.respond(200) },
          { expectNothing: true },
          { advanceTo: 300 },
          { wire: (x) => x.request(invite) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 603 Decline'), at: 300 },
          { expectNothing: true },
          { wire: (x) => x.ack(invite, x.seen[0]!.message.to.tag) },
          { expectNothing: true },
        ]);
      });

      txIt('ACK → Confirmed: the ACK stays from the TU, retransmissions stop, ACK and INVITE retransmissions are absorbed; Timer I', async () => {
        const invite = spec({ method: 'INVITE' });
        const I = reliable ? 0 : T4;
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(486) },
          { expectWire: 'SIP/2.0 486 Busy Here', at: 0 },
          { advanceTo: 2000 },
          ...(reliable ? [] : [{ expectWire: /^SIP\/2\.0 486 /, at: 500 }, { expectWire: /^SIP\/2\.0 486 /, at: 1500 }]),
          { wire: (x) => x.ack(invite, x.seen[0]!.message.to.tag) },
          { expectNothing: true },
          ...split(reliable, [{ advance: 0 }, { expectTransactions: 0 }], [
            { advanceTo: 2000 + I - 1 },
            { wire: (x: Harness) => x.ack(invite, x.seen[0]!.message.to.tag) },
            { wire: (x: Harness) => x.request(invite) },
            { expectNothing: true },
            { expectTransactions: 1 },
            { advanceTo: 2000 + I },
            { expectTransactions: 0 },
          ]),
          { advance: T64 },
          { expectNothing: true },
          { expectStates: ['invite-server', 'proceeding', 'completed', 'confirmed', 'terminated'] },
        ]);
      });

      txIt('2xx → Accepted: not retransmitted by the transaction, INVITE retransmissions absorbed, ACKs go to the TU with no transaction, TU 2xx retransmissions pass; Timer L', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { advanceTo: 100 },
          { tu: (r, x) => void (x.vars.ok = r.respond(200, 'OK', { toTag: 'uas-tag' })) },
          { expectWire: 'SIP/2.0 200 OK', at: 100 },
          { advanceTo: 10_000 },
          // "The server transaction MUST NOT generate 2xx retransmissions on its own."
          { expectNothing: true },
          { wire: (x) => x.request(invite) },
          { expectNothing: true },
          // The TU retransmits its 2xx (§13.3.1.4): passed to the transport in Accepted.
          { do: (x) => x.tuRequest().send(x.vars.ok as SipMessage) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 200 OK'), at: 10_000 },
          // Only 2xx pass in Accepted (RFC 6026 §7.1): a late 486 or 180 from the TU is not sent.
          { tu: (r) => r.respond(486) },
          { tu: (r) => r.respond(180) },
          { expectNothing: true },
          // The ACK for a 2xx is its own transaction (new branch); one with the INVITE's branch also
          // reaches the Accepted machine, which passes it on (RFC 6026 §7.1).
          { wire: (x) => x.request({ ...invite, method: 'ACK', cseqMethod: 'ACK', toTag: 'uas-tag', branch: 'z9hG4bK-ack-2xx' }) },
          {
            expectTu: function ack2xx(e) {
              expect(e.kind).to.equal('request');
              if (e.kind !== 'request') return;
              expect(e.message.method).to.equal('ACK');
              expect(e.request.transaction, 'an ACK for a 2xx belongs to no transaction').to.equal(undefined);
            },
          },
          { wire: (x) => x.ack(invite, 'uas-tag') },
          { expectTu: (e) => expect(e.kind === 'request' && e.message.method === 'ACK' && e.request.transaction === undefined).to.equal(true) },
          { expectNothing: true },
          { expectTransactions: 1 },
          { advanceTo: 100 + T64 - 1 },
          { expectTransactions: 1 },
          { advanceTo: 100 + T64 },
          { expectTransactions: 0 },
          { expectStates: ['invite-server', 'proceeding', 'accepted', 'terminated'] },
        ]);
      });

      txIt('a transport error sending a provisional does not discard the transaction (RFC 6026 §7.1): the retransmitted INVITE is absorbed', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { do: (x) => x.transport.failNext('TRANSPORT_UNREACHABLE') },
          { tu: (r) => r.respond(180) },
          { expectWire: (w) => expect(w.record.outcome).to.equal('failed') },
          { expectTransactions: 1 },
          { advanceTo: 500 },
          { wire: (x) => x.request(invite) },
          { do: (x) => x.drain() },
          { do: (x) => expect(x.events.filter((e) => e.kind === 'request').length, 'the INVITE reached the TU once').to.equal(1) },
          { tu: (r) => r.respond(486) },
          { expectWire: 'SIP/2.0 486 Busy Here' },
          { wire: (x) => x.ack(invite, x.seen.at(-1)!.message.to.tag) },
          { expectNothing: true },
        ]);
      });

      txIt('a transport error sending the final does not discard the transaction (RFC 6026 §7.1): it stays until Timer H', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { do: (x) => x.transport.failNext('TRANSPORT_UNREACHABLE') },
          { tu: (r) => r.respond(486) },
          { expectWire: (w) => expect(w.record.outcome).to.equal('failed'), at: 0 },
          { expectTransactions: 1 },
          { advanceTo: 400 },
          { wire: (x) => x.request(invite) },
          { do: (x) => x.drain() },
          { do: (x) => expect(x.events.filter((e) => e.kind === 'request').length, 'the INVITE reached the TU once').to.equal(1) },
          { expectTransactions: 1 },
          { advanceTo: T64 },
          { do: (x) => x.drain() },
          { expectTransactions: 0 },
        ]);
      });

      txIt('CANCEL (§9.2): the stack answers 200, the TU gets the CANCEL with `cancels` and answers the INVITE 487', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(180) },
          { expectWire: 'SIP/2.0 180 Ringing' },
          { advanceTo: 1000 },
          { wire: (x) => x.cancel(invite) },
          {
            expectWire: function ok(w) {
              expect(w.startLine).to.equal('SIP/2.0 200 OK');
              expect(w.message.cseq).to.deep.equal({ seq: 1, method: 'CANCEL' });
              expect(w.message.via[0]!.branch).to.equal(invite.branch);
            },
            at: 1000,
          },
          {
            expectTu: function cancel(e) {
              expect(e.kind === 'request' && e.message.method).to.equal('CANCEL');
              if (e.kind !== 'request') return;
              expect(e.request.cancels, 'cancels is the INVITE transaction').to.equal(h.tuRequest('INVITE').transaction);
              expect(e.request.cancels).to.not.equal(undefined);
            },
          },
          // A retransmitted CANCEL gets the 200 again and stays from the TU.
          { wire: (x) => x.cancel(invite) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 200 OK') },
          { expectNothing: true },
          { tu: (r) => r.respond(487) },
          { expectWire: (w) => expect(w.startLine).to.equal('SIP/2.0 487 Request Terminated') },
          { wire: (x) => x.ack(invite, x.seen.at(-1)!.message.to.tag) },
          { expectNothing: true },
        ]);
      });

      txIt('CANCEL that matches no INVITE → 481; one from another sent-by does not match either', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.cancel(spec({ method: 'INVITE' })) },
          { expectWire: /^SIP\/2\.0 481 / },
          { expectNothing: true },
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { wire: (x) => x.cancel({ ...invite, sentBy: '198.51.100.99:5060' }), from: { address: '198.51.100.99', port: 5060 } },
          { expectWire: (w) => expect(w.startLine).to.match(/^SIP\/2\.0 481 /) },
          { expectNothing: true },
          { tu: (r) => r.respond(200) },
          { expectWire: 'SIP/2.0 200 OK' },
          { expectNothing: true },
        ]);
      });

      txIt('CANCEL after the final response: answered 200, no effect on the INVITE (§9.2)', async () => {
        const invite = spec({ method: 'INVITE' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(486) },
          { expectWire: 'SIP/2.0 486 Busy Here', at: 0 },
          { advanceTo: 100 },
          { wire: (x) => x.cancel(invite) },
          { expectWire: (w) => expect([w.startLine, w.message.cseq.method]).to.deep.equal(['SIP/2.0 200 OK', 'CANCEL']), at: 100 },
          { do: (x) => x.drain() },
          { wire: (x) => x.ack(invite, x.seen[0]!.message.to.tag) },
          { expectNothing: true },
        ]);
      });

      if (reliable) {
        txIt('responses go back on the connection the INVITE came in on (§18.2.2), not to the Via sent-by', async () => {
          const invite = spec({ method: 'INVITE' });
          const ephemeral = { address: PEER.address, port: 49_999 };
          await run(h, [
            { wire: (x) => x.request(invite), from: ephemeral },
            { expectTu: 'INVITE' },
            { tu: (r) => r.respond(180) },
            {
              expectWire: function onConnection(w) {
                expect(w.startLine).to.equal('SIP/2.0 180 Ringing');
                expect(w.record.how).to.equal('connection');
                expect(w.record.target.port).to.equal(49_999);
              },
            },
            { tu: (r) => r.respond(200) },
            { expectWire: (w) => expect([w.startLine, w.record.how]).to.deep.equal(['SIP/2.0 200 OK', 'connection']) },
            { expectNothing: true },
          ]);
        });
      }
    });

    // -----------------------------------------------------------------------------------------
    describe('non-INVITE server (§17.2.2)', () => {
      txIt('Trying: retransmissions are absorbed with no response and do not reach the TU', async () => {
        const message = spec({ method: 'MESSAGE', body: 'hello' });
        await run(h, [
          { wire: (x) => x.request(message) },
          { expectTu: 'MESSAGE', at: 0 },
          { advanceTo: 500 },
          { wire: (x) => x.request(message) },
          { advanceTo: 1500 },
          { wire: (x) => x.request(message) },
          { expectNothing: true },
          { tu: (r) => r.respond(200) },
          { expectWire: 'SIP/2.0 200 OK', at: 1500 },
          { expectNothing: true },
        ]);
      });

      txIt('Proceeding: a retransmission gets the most recent provisional', async () => {
        const message = spec({ method: 'MESSAGE', body: 'hello' });
        await run(h, [
          { wire: (x) => x.request(message) },
          { expectTu: 'MESSAGE' },
          { tu: (r) => r.respond(100) },
          { expectWire: 'SIP/2.0 100 Trying' },
          { advanceTo: 500 },
          { wire: (x) => x.request(message) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 100 Trying'), at: 500 },
          { tu: (r) => r.respond(182, 'Queued') },
          { expectWire: 'SIP/2.0 182 Queued' },
          { advanceTo: 1500 },
          { wire: (x) => x.request(message) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 182 Queued'), at: 1500 },
          { tu: (r) => r.respond(202) },
          { expectWire: 'SIP/2.0 202 Accepted' },
          { expectNothing: true },
          { expectStates: ['non-invite-server', 'trying', 'proceeding', 'completed'] },
        ]);
      });

      txIt('Completed: a retransmission gets the final again, later finals from the TU are discarded; Timer J', async () => {
        const message = spec({ method: 'OPTIONS' });
        const J = reliable ? 0 : T64;
        await run(h, [
          { wire: (x) => x.request(message) },
          { expectTu: 'OPTIONS' },
          { advanceTo: 100 },
          { tu: (r) => r.respond(200) },
          { expectWire: 'SIP/2.0 200 OK', at: 100 },
          { tu: (r) => r.respond(500) },
          { tu: (r) => r.respond(180) },
          { expectNothing: true },
          ...split(
            reliable,
            [
              { wire: (x: Harness) => x.request(message) },
              { expectWire: sameBytesAs(h, 'SIP/2.0 200 OK') },
              { advance: 0 },
              { expectTransactions: 0 },
            ],
            [
              { advanceTo: 600 },
              { wire: (x: Harness) => x.request(message) },
              { expectWire: sameBytesAs(h, 'SIP/2.0 200 OK'), at: 600 },
              { advanceTo: 100 + J - 1 },
              { wire: (x: Harness) => x.request(message) },
              { expectWire: sameBytesAs(h, 'SIP/2.0 200 OK'), at: 100 + J - 1 },
              { expectTransactions: 1 },
              { advanceTo: 100 + J },
              { expectTransactions: 0 },
            ],
          ),
          { expectNothing: true },
          { expectStates: ['non-invite-server', 'trying', 'completed', 'terminated'] },
        ]);
      });
      txIt('a transport error sending a response terminates the transaction (Figure 8), from Proceeding and from Completed', async () => {
        const one = spec({ method: 'MESSAGE', body: '1' });
        const two = spec({ method: 'MESSAGE', body: '2' });
        await run(h, [
          { wire: (x) => x.request(one) },
          { expectTu: 'MESSAGE' },
          { do: (x) => x.transport.failNext('TRANSPORT_UNREACHABLE') },
          { tu: (r) => r.respond(100) },
          { expectWire: (w) => expect([w.startLine, w.record.outcome]).to.deep.equal(['SIP/2.0 100 Trying', 'failed']) },
          { expectTransactions: 0 },
          { expectStates: ['non-invite-server', 'trying', 'proceeding', 'terminated'] },
          { wire: (x) => x.request(two) },
          { expectTu: 'MESSAGE' },
          { do: (x) => x.transport.failNext('TRANSPORT_UNREACHABLE') },
          { tu: (r) => r.respond(200) },
          { expectWire: (w) => expect([w.startLine, w.record.outcome]).to.deep.equal(['SIP/2.0 200 OK', 'failed']) },
          { expectTransactions: 0 },
          { expectStates: ['non-invite-server', 'trying', 'completed', 'terminated'] },
          { expectNothing: true },
        ]);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('matching requests (§17.2.3)', () => {
      txIt('RFC 2543 requests (branch without z9hG4bK, or none): a retransmission is absorbed and gets the final again', async () => {
        const old = spec({ method: 'MESSAGE', branch: '2543-branch-1', body: 'old' });
        const none = spec({ method: 'OPTIONS', branch: null });
        await run(h, [
          { wire: (x) => x.request(old) },
          { expectTu: 'MESSAGE' },
          { tu: (r) => r.respond(200) },
          { expectWire: 'SIP/2.0 200 OK' },
          // (Timer J is 0 on TCP: the retransmission must come before time moves.)
          ...split(reliable, [], [{ advanceTo: 500 }]),
          { wire: (x) => x.request(old) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 200 OK'), at: reliable ? 0 : 500 },
          { wire: (x) => x.request(none) },
          { expectTu: 'OPTIONS' },
          { wire: (x) => x.request(none) },
          { expectNothing: true },
          { tu: (r) => r.respond(200) },
          { expectWire: 'SIP/2.0 200 OK' },
          { wire: (x) => x.request(none) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 200 OK') },
          { expectNothing: true },
        ]);
      });

      txIt('RFC 2543 INVITE: the retransmission is absorbed and the ACK for a non-2xx matches the INVITE (Confirmed)', async () => {
        const invite = spec({ method: 'INVITE', branch: 'old-style-77' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(404) },
          { expectWire: 'SIP/2.0 404 Not Found', at: 0 },
          { wire: (x) => x.request(invite) },
          { expectWire: sameBytesAs(h, 'SIP/2.0 404 Not Found'), at: 0 },
          { advanceTo: 700 },
          ...(reliable ? [] : [{ expectWire: /^SIP\/2\.0 404 /, at: 500 }]),
          { wire: (x) => x.ack(invite, x.seen[0]!.message.to.tag) },
          // Matched: not passed to the TU, and Timer G stops.
          { expectNothing: true },
          { advance: reliable ? 0 : T4 },
          { expectNothing: true },
          { expectTransactions: 0 },
        ]);
      });

      txIt('RFC 2543 CANCEL matches its INVITE (§9.2 applies §17.2.3): 200, and the TU learns which INVITE', async () => {
        const invite = spec({ method: 'INVITE', branch: 'old-style-cancel' });
        await run(h, [
          { wire: (x) => x.request(invite) },
          { expectTu: 'INVITE' },
          { tu: (r) => r.respond(180) },
          { expectWire: 'SIP/2.0 180 Ringing' },
          { wire: (x) => x.cancel(invite) },
          { expectWire: (w) => expect([w.startLine, w.message.cseq.method]).to.deep.equal(['SIP/2.0 200 OK', 'CANCEL']) },
          {
            expectTu: (e) =>
              expect(e.kind === 'request' && e.message.method === 'CANCEL' && e.request.cancels === h.tuRequest('INVITE').transaction).to.equal(true),
          },
          { tu: (r) => r.respond(487) },
          { expectWire: /^SIP\/2\.0 487 / },
          { wire: (x) => x.ack(invite, x.seen.at(-1)!.message.to.tag) },
          { expectNothing: true },
        ]);
      });

      txIt('the same branch from another sent-by, or with another method, is another transaction', async () => {
        const a = spec({ method: 'MESSAGE', body: 'one' });
        await run(h, [
          { wire: (x) => x.request(a) },
          { expectTu: 'MESSAGE' },
          // Another transaction (§17.2.3) — and, with the same From tag, Call-ID and CSeq, a
          // merged request the UAS core answers 482 through it (§8.2.2.2), never the TU.
          { wire: (x) => x.request({ ...a, sentBy: '198.51.100.20:5060' }), from: { address: '198.51.100.20', port: 5060 } },
          { expectWire: (w) => expect([w.startLine, w.message.via[0]!.host]).to.deep.equal(['SIP/2.0 482 Loop Detected', '198.51.100.20']) },
          { wire: (x) => x.request({ ...a, method: 'OPTIONS', body: '' }) },
          { expectTu: 'OPTIONS' },
          { expectTransactions: 3 },
          { do: (x) => x.events.forEach((e) => e.kind === 'request' && e.request.respond(200)) },
          { do: (x) => x.drain() },
        ]);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('validation on receive', () => {
      txIt('a request with a bad CSeq gets exactly one 400 and reaches no TU', async () => {
        await run(h, [
          { wire: (x) => x.request(spec({ method: 'MESSAGE', cseqRaw: 'abc MESSAGE' })) },
          { expectWire: /^SIP\/2\.0 400 / },
          { expectNothing: true },
          { wire: (x) => x.request(spec({ method: 'MESSAGE', cseqMethod: 'INVITE' })) },
          { expectWire: /^SIP\/2\.0 400 / },
          { advance: 1000 },
          { expectNothing: true },
          { expectTransactions: 0 },
        ]);
      });

      txIt('a bad ACK is dropped, not answered', async () => {
        await run(h, [
          { wire: (x) => x.request(spec({ method: 'ACK', cseqRaw: 'x ACK' })) },
          { advance: 1000 },
          { expectNothing: true },
        ]);
      });
    });
  });

  describe(`no TU registered (${TR})`, () => {
    afterEach(async () => {
      await cleanupHarnesses();
    });

    txIt('an unknown method gets 501, a known one 405 with Allow; an ACK gets nothing', async () => {
      const h = await harness({ protocol, t1: T1, t2: T2, t4: T4, tu: 'none' });
      await run(h, [
        { wire: (x) => x.request(spec({ method: 'FROBNICATE' })) },
        { expectWire: /^SIP\/2\.0 501 / },
        { wire: (x) => x.request(spec({ method: 'MESSAGE', body: 'x' })) },
        {
          expectWire: function notAllowed(w) {
            expect(w.startLine).to.match(/^SIP\/2\.0 405 /);
            expect(w.message.hasHeader('allow'), 'Allow').to.equal(true);
          },
        },
        { wire: (x) => x.request(spec({ method: 'ACK' })) },
        { advance: 1000 },
        { expectNothing: true },
      ]);
    });

    txIt('a TU for INVITE only: a MESSAGE gets 405 with Allow naming INVITE', async () => {
      const h = await harness({ protocol, t1: T1, t2: T2, t4: T4, tu: 'none' });
      h.stack.addTu(h.tu(), { methods: ['INVITE'] });
      await run(h, [
        { wire: (x) => x.request(spec({ method: 'MESSAGE', body: 'x' })) },
        { expectWire: (w) => expect([w.startLine, w.message.allow.includes('INVITE')]).to.deep.equal(['SIP/2.0 405 Method Not Allowed', true]) },
        { expectNothing: true },
      ]);
    });
  });
}

describe('scripted harness sanity', () => {
  afterEach(async () => {
    await cleanupHarnesses();
  });

  txIt('records sends at their virtual time and wireResponse is byte-stable', async () => {
    const h = await harness({ protocol: 'udp' });
    h.send(h.outgoing('OPTIONS'));
    await settle();
    const sent = toWire(h.transport.sent[0]!);
    expect(sent.record.at).to.equal(0);
    expect(wireResponse(sent.message, 200).equals(wireResponse(sent.message, 200))).to.equal(true);
    h.inject(wireResponse(sent.message, 200));
    await settle();
    expect((await h.handles[0]!.final).status).to.equal(200);
  });
});
