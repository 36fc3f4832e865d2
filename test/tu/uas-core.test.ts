// The UAS core (src/tu/uas-core.ts): RFC 3261 §8.2's checks in the RFC's order, merged requests
// (§8.2.2.2), and every answer of its own sent through the request's server transaction — on a
// scripted stack over a loopback transport and a stepping clock (test/support/transaction-script.ts).
import { expect } from 'chai';
import { LocalContact } from '../../src/index.js';
import { cleanupHarnesses, harness, run, spec, txIt, type Harness } from '../support/transaction-script.js';

const T1 = 500;

describe('UAS core (RFC 3261 §8.2)', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness({ protocol: 'udp', t1: T1 });
  });
  afterEach(async () => {
    await cleanupHarnesses();
  });

  describe('the order of the checks', () => {
    txIt('an unknown method with an unsupported scheme gets 501 with Allow (§8.2.1 comes before §8.2.2.1), a known one 416', async () => {
      await run(h, [
        { wire: (x) => x.request(spec({ method: 'FROBNICATE', uri: 'xmpp:bob@example.test' })) },
        { expectWire: (w) => expect([w.startLine, w.message.allow.includes('MESSAGE')]).to.deep.equal(['SIP/2.0 501 Not Implemented', true]) },
        { wire: (x) => x.request(spec({ method: 'MESSAGE', uri: 'xmpp:bob@example.test', body: 'hi' })) },
        { expectWire: 'SIP/2.0 416 Unsupported URI Scheme' },
        { expectNothing: true },
      ]);
    });

    txIt('a TU that implements only MESSAGE: an OPTIONS with an unsupported scheme gets 405 with Allow: MESSAGE, not 416', async () => {
      const only = await harness({ protocol: 'udp', t1: T1, tu: 'none' });
      only.stack.setDefaultTu({ ...only.tu(), profile: { methods: ['MESSAGE'] } });
      await run(only, [
        { wire: (x) => x.request(spec({ method: 'OPTIONS', uri: 'xmpp:bob@example.test' })) },
        { expectWire: (w) => expect([w.startLine, w.message.header('allow')]).to.deep.equal(['SIP/2.0 405 Method Not Allowed', 'MESSAGE']) },
        { expectNothing: true },
      ]);
    });

    txIt('an unsupported scheme comes before an unsupported extension (416, not 420), and an extension before the body type (420, not 415)', async () => {
      await run(h, [
        { wire: (x) => x.request(spec({ method: 'MESSAGE', uri: 'xmpp:bob@example.test', extra: ['Require: x-frob', 'Content-Type: application/x-unknown'], body: 'x' })) },
        { expectWire: 'SIP/2.0 416 Unsupported URI Scheme' },
        { wire: (x) => x.request(spec({ method: 'MESSAGE', extra: ['Require: x-frob', 'Content-Type: application/x-unknown'], body: 'x' })) },
        { expectWire: (w) => expect([w.startLine, w.message.header('unsupported')]).to.deep.equal(['SIP/2.0 420 Bad Extension', 'x-frob']) },
        { wire: (x) => x.request(spec({ method: 'MESSAGE', extra: ['Content-Type: application/x-unknown'], body: 'x' })) },
        { expectWire: (w) => expect(w.startLine).to.equal('SIP/2.0 415 Unsupported Media Type') },
        { expectNothing: true },
      ]);
    });
  });

  describe('answers go through a server transaction', () => {
    txIt('a 415 to an INVITE over UDP is retransmitted on Timer G (T1, 2·T1, 4·T1) and its ACK is absorbed, never passed up as a 2xx ACK', async () => {
      const invite = spec({ method: 'INVITE', extra: ['Content-Type: application/x-unknown'], body: 'v=0' });
      await run(h, [
        { wire: (x) => x.request(invite) },
        { expectWire: 'SIP/2.0 415 Unsupported Media Type', at: 0 },
        { advance: T1 },
        { expectWire: (w) => expect(w.text).to.equal(h.seen[0]!.text), at: T1 },
        { advance: 2 * T1 },
        { expectWire: (w) => expect(w.text).to.equal(h.seen[0]!.text), at: 3 * T1 },
        { advance: 4 * T1 },
        { expectWire: (w) => expect(w.text).to.equal(h.seen[0]!.text), at: 7 * T1 },
        { wire: (x) => x.ack(invite, x.seen[0]!.message.to.tag) },
        { advance: 64 * T1 },
        { expectNothing: true },
        { expectStates: ['invite-server', 'proceeding', 'completed', 'confirmed', 'terminated'] },
      ]);
    });

    txIt('a 420 to a MESSAGE is the same response, byte for byte, when the MESSAGE is retransmitted (§17.2.2)', async () => {
      const message = spec({ method: 'MESSAGE', extra: ['Require: x-frob'], body: 'hi' });
      await run(h, [
        { wire: (x) => x.request(message) },
        { expectWire: 'SIP/2.0 420 Bad Extension' },
        { wire: (x) => x.request(message) },
        { expectWire: (w) => expect(w.text).to.equal(h.seen[0]!.text) },
        { expectTransactions: 1 },
        { expectNothing: true },
      ]);
    });

    txIt('a non-INVITE 200 whose Contact the transport selector filled in is sent again for a retransmitted SUBSCRIBE', async () => {
      const subscribe = spec({ method: 'SUBSCRIBE', extra: ['Event: presence', 'Expires: 600', 'Contact: <sip:alice@192.0.2.10>'] });
      await run(h, [
        { wire: (x) => x.request(subscribe) },
        { expectTu: 'SUBSCRIBE' },
        { tu: (r) => r.respond(200, undefined, { headers: { Expires: '600', Contact: new LocalContact('bob') } }) },
        { expectWire: (w) => expect([w.startLine, w.message.header('contact')]).to.deep.equal(['SIP/2.0 200 OK', '<sip:bob@127.0.0.1:5070>']) },
        { wire: (x) => x.request(subscribe) },
        { expectWire: (w) => expect(w.text).to.equal(h.seen[0]!.text) },
        { advance: 100 },
        { wire: (x) => x.request(subscribe) },
        { expectWire: (w) => expect(w.text).to.equal(h.seen[0]!.text) },
        { expectNothing: true },
      ]);
    });
  });

  describe('merged requests (§8.2.2.2)', () => {
    txIt('a second copy with the same From tag, Call-ID and CSeq on another branch gets 482; once the first transaction ended, a new copy is taken', async () => {
      const first = spec({ method: 'MESSAGE', body: 'one' });
      const forked = { ...first, branch: 'z9hG4bK-forked-copy' };
      await run(h, [
        { wire: (x) => x.request(first) },
        { expectTu: 'MESSAGE' },
        { wire: (x) => x.request(forked) },
        { expectWire: (w) => expect([w.startLine, w.message.via[0]!.branch]).to.deep.equal(['SIP/2.0 482 Loop Detected', 'z9hG4bK-forked-copy']) },
        { expectNothing: true },
        // The 482 went through a transaction of its own: the copy retransmitted gets it again.
        { wire: (x) => x.request(forked) },
        { expectWire: (w) => expect(w.text).to.equal(h.seen[0]!.text) },
        { tu: (r) => r.respond(200) },
        { expectWire: 'SIP/2.0 200 OK' },
        // Timer J (64·T1 over UDP) ends both transactions; the same request again is a new one.
        { advance: 64 * T1 },
        { expectTransactions: 0 },
        { wire: (x) => x.request({ ...first, branch: 'z9hG4bK-later-copy' }) },
        { expectTu: 'MESSAGE' },
        { tu: (r) => r.respond(200) },
        { expectWire: 'SIP/2.0 200 OK' },
      ]);
    });

    txIt('requests inside a dialog (a To tag) and CANCELs are never merged', async () => {
      const bye = spec({ method: 'BYE', toTag: 'in-dialog' });
      const invite = spec({ method: 'INVITE', body: '' });
      await run(h, [
        { wire: (x) => x.request(bye) },
        { expectTu: 'BYE' },
        { wire: (x) => x.request({ ...bye, branch: 'z9hG4bK-other-path' }) },
        { expectTu: 'BYE' },
        { do: (x) => x.events.forEach((e) => e.kind === 'request' && e.request.respond(200)) },
        { expectWire: 'SIP/2.0 200 OK' },
        { expectWire: 'SIP/2.0 200 OK' },
        { wire: (x) => x.request(invite) },
        { expectTu: 'INVITE' },
        { wire: (x) => x.cancel(invite) },
        { expectWire: (w) => expect([w.startLine, w.message.cseq.method]).to.deep.equal(['SIP/2.0 200 OK', 'CANCEL']) },
        { expectTu: 'CANCEL' },
        { tu: (r) => r.respond(487), method: 'INVITE' },
        { expectWire: 'SIP/2.0 487 Request Terminated' },
        { wire: (x) => x.ack(invite, x.seen.at(-1)!.message.to.tag) },
        { advance: 64 * T1 },
        { expectNothing: true },
      ]);
    });
  });
});
