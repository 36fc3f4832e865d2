// The delivery scheduler's targets (src/app/server/delivery.ts): a courier takes a recipient's
// log either to a registered device (a DeviceTarget, with its binding) or, for a recipient of
// another domain, to the next hop (the RelayTarget, docs/federation.md) — the relay is its own
// kind of target, not a binding dressed as a device.
//
// - The sender is handed `{ kind: 'relay', cursor: 'parley:relay' }` for a relayed recipient —
//   no binding, no Contact — and `{ kind: 'device', cursor, binding }` for a device.
// - The window is chosen per kind (the relay's 1, a device's 32 here): with five messages
//   waiting, one is in flight to the relay, five to the device.
// - The relay's 2xx moves its cursor under 'parley:relay' (the name earlier databases use);
//   'delivered' reports the target.
// - 430 Flow Failed (RFC 5626 §5.3: the device's connection is gone) is retried, not skipped.
// - The relay never expires (a device whose binding ended gets nothing), and a registration
//   change of the recipient's devices does not stop it.
//
// Everything in process: an in-memory store, a TimerQueue on a ManualClock, a sender whose
// answers the test gives.
import { expect } from 'chai';
import {
  DeliveryScheduler,
  ManualClock,
  RELAY_CURSOR,
  SqliteStore,
  TimerQueue,
  type CourierTarget,
  type Store,
  type StoredBinding,
  type StoredMessage,
} from '../../src/index.js';
import { until } from '../support/waiting.js';

const CAROL = 'sip:carol@c.example';
const BOB = 'sip:bob@localhost';
const ALICE = 'sip:alice@localhost';
const PHONE = 'urn:uuid:00000000-0000-4000-8000-0000000000b0';
const WALL = Date.parse('2030-01-02T03:04:05.000Z');

interface Sent {
  message: StoredMessage;
  target: CourierTarget;
  answer: (status: number) => void;
}

function binding(expiresAt: number): StoredBinding {
  return { contact: 'sip:bob@127.0.0.1:5999', instance: PHONE, expiresAt, callId: 'reg-1', cseq: 1, params: {} };
}

describe('delivery targets: a device, or the relay (src/app/server/delivery.ts)', () => {
  let store: Store;
  let clock: ManualClock;
  let sent: Sent[];
  let scheduler: DeliveryScheduler;

  beforeEach(() => {
    store = SqliteStore.open(':memory:');
    clock = new ManualClock(1000);
    sent = [];
    scheduler = new DeliveryScheduler(
      store,
      new TimerQueue(clock),
      (message, target) => new Promise<number>((resolve) => sent.push({ message, target, answer: resolve })),
      { window: (target) => (target.kind === 'relay' ? 1 : 32), retryMs: [1000, 8000] },
      () => WALL,
    );
  });

  afterEach(async () => {
    scheduler.stop();
    await store.close();
  });

  async function append(recipient: string, n: number): Promise<number[]> {
    const ids: number[] = [];
    for (let i = 1; i <= n; i++) {
      const { id } = await store.append({ recipient, sender: ALICE, messageId: `${recipient}-${i}`, contentType: 'text/plain', body: Buffer.from(`m${i}`), receivedAt: WALL, notify: false });
      ids.push(id);
    }
    return ids;
  }

  it("hands the relay's messages to the sender as the relay target — no binding — one at a time; its 2xx moves the 'parley:relay' cursor", async () => {
    const ids = await append(CAROL, 5);
    const delivered: Array<[number, CourierTarget, boolean]> = [];
    scheduler.on('delivered', (message, target, first) => void delivered.push([message.id, target, first]));
    scheduler.relay(CAROL);
    expect(sent).to.have.length(1);
    expect(sent[0]!.target).to.deep.equal({ kind: 'relay', cursor: 'parley:relay' });
    expect(RELAY_CURSOR).to.equal('parley:relay');
    expect('binding' in sent[0]!.target).to.equal(false);
    expect(sent[0]!.message.id).to.equal(ids[0]);
    sent[0]!.answer(202);
    await until(() => sent.length === 2, 'the second message to the relay');
    expect(store.cursor(CAROL, 'parley:relay')).to.equal(ids[0]);
    expect(delivered.map(([id, target, first]) => [id, target.kind, target.cursor, first])).to.deep.equal([[ids[0], 'relay', 'parley:relay', true]]);
    // The device cursor row of the relay was seen at the scheduler's wall time.
    expect(store.devices(CAROL).map((d) => [d.device, d.lastSeen])).to.deep.equal([['parley:relay', WALL]]);
  });

  it("hands a device's messages with its binding, up to the device window (5 of 5 at once)", async () => {
    const ids = await append(BOB, 5);
    const phone = binding(1000 + 600_000);
    scheduler.update(BOB, [phone]);
    expect(sent.map((s) => s.message.id)).to.deep.equal(ids);
    for (const s of sent) expect(s.target).to.deep.equal({ kind: 'device', cursor: PHONE, binding: phone });
    for (const s of sent) s.answer(200);
    await until(() => store.cursor(BOB, PHONE) === ids[4], "the phone's cursor at the last message");
  });

  it('430 Flow Failed (the connection the device registered over is gone): retried, never skipped; a new registration sends it again at once', async () => {
    const [id] = await append(BOB, 1);
    const retrying: Array<[string, number]> = [];
    const refused: number[] = [];
    scheduler.on('retrying', (_recipient, target, status) => void retrying.push([target.cursor, status]));
    scheduler.on('refused', (_message, _target, status) => void refused.push(status));
    scheduler.update(BOB, [{ ...binding(1000 + 600_000), regId: 1, flow: { protocol: 'tcp', address: '127.0.0.1', port: 40001, connectionId: 7 } }]);
    expect(sent).to.have.length(1);
    sent[0]!.answer(430);
    await until(() => retrying.length === 1, "the courier's retry");
    expect(retrying).to.deep.equal([[PHONE, 430]]);
    expect(refused).to.deep.equal([]);
    expect(store.cursor(BOB, PHONE), 'the cursor has not moved over it').to.equal(0);
    // The device registers again, on a new connection: the message goes at once, on that flow.
    const again = { ...binding(1000 + 600_000), regId: 1, flow: { protocol: 'tcp' as const, address: '127.0.0.1', port: 40002, connectionId: 8 } };
    scheduler.update(BOB, [again]);
    expect(sent).to.have.length(2);
    expect(sent[1]!.message.id).to.equal(id);
    expect(sent[1]!.target).to.deep.equal({ kind: 'device', cursor: PHONE, binding: again });
  });

  it("the relay never expires: long after any binding would have, it still sends; a device's ended binding gets nothing", async () => {
    await append(CAROL, 1);
    await append(BOB, 1);
    clock.advance(365 * 86_400_000);
    scheduler.update(BOB, [binding(1000 + 600_000)]);
    scheduler.relay(CAROL);
    expect(sent.map((s) => s.target.kind)).to.deep.equal(['relay']);
  });

  it("the recipient's devices changing does not stop its relay courier", async () => {
    await append(CAROL, 2);
    scheduler.relay(CAROL);
    expect(sent).to.have.length(1);
    scheduler.update(CAROL, []);
    sent[0]!.answer(202);
    await until(() => sent.length === 2, 'the relay carrying on after update(recipient, [])');
    expect(sent[1]!.target.kind).to.equal('relay');
  });
});
