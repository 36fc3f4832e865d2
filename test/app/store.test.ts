// SqliteStore (src/app/store/) against docs/server.md, sections "Storage" and "Delivery": the
// durable state of a Parley server in one SQLite database.
//
// - Accounts: add/look up/list (sorted by AOR)/update/remove, the StoreError codes, and the HA1
//   per digest hash family kept exactly as given.
// - The location store (the Registrar's LocationStore): whole StoredBinding objects round-trip
//   deep-equal, `put([])` removes an AOR, `boundAors` lists the AORs with bindings.
// - The message log: increasing ids, (sender, Message-ID) stored once (also when both appends are
//   issued in one tick), per-device cursors, `pending` after the cursor in log order, `first` on
//   the first acknowledgement of a message by any device, `unacknowledged`, byte-exact bodies.
// - Group commit: many appends issued together share few transactions (`stats.commits`).
// - Durability: a file database (WAL) keeps messages, cursors, accounts and bindings across
//   close and reopen; `close()` and `flush()` commit appends still waiting for the disk.
// - Retention: `purge` deletes what every known device acknowledged and what is older than the
//   retention, and nothing else.
//
// Most tests use ':memory:'; durability tests use a file in a fresh temporary directory, removed
// afterwards. Times given to the store are plain numbers (ms); a time left out is the clock the
// store was opened with (the server's), never the system's when one was given ("its clock").
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SqliteStore,
  StoreError,
  digestHa1,
  type DigestAlgorithm,
  type NewMessage,
  type StoredBinding,
  type StoredMessage,
} from '../../src/index.js';
import { within } from '../support/waiting.js';

const ALICE = 'sip:alice@example.com';
const BOB = 'sip:bob@example.com';
const CAROL = 'sip:carol@example.org';

/** Two devices of one user, as the server names them (an +sip.instance, a Contact URI). */
const PHONE = 'urn:uuid:00000000-0000-4000-8000-000000000001';
const LAPTOP = 'sip:bob@192.0.2.7:5070;transport=tcp';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** HA1s for every algorithm (a `-sess` algorithm shares its base's HA1, RFC 7616 §3.4.2). */
function hashesFor(aor: string, password: string): Record<DigestAlgorithm, string> {
  const at = aor.lastIndexOf('@');
  const user = aor.slice(aor.indexOf(':') + 1, at);
  const realm = aor.slice(at + 1);
  const md5 = digestHa1('MD5', user, realm, password);
  const sha256 = digestHa1('SHA-256', user, realm, password);
  const sha512 = digestHa1('SHA-512-256', user, realm, password);
  return {
    MD5: md5,
    'MD5-sess': md5,
    'SHA-256': sha256,
    'SHA-256-sess': sha256,
    'SHA-512-256': sha512,
    'SHA-512-256-sess': sha512,
  };
}

let counter = 0;

/** A message for `recipient`; each call gets a fresh Message-ID unless one is given. */
function msg(recipient: string, overrides: Partial<NewMessage> = {}): NewMessage {
  counter += 1;
  return {
    recipient,
    sender: ALICE,
    messageId: `m-${counter}-${Math.random().toString(36).slice(2)}`,
    contentType: 'text/plain;charset=utf-8',
    body: Buffer.from(`hello ${counter}`),
    receivedAt: 1_700_000_000_000 + counter,
    notify: false,
    ...overrides,
  };
}

/** What `pending` should answer for a message appended with `id` (a user's: no relay path, Max-Forwards 70 unless given). */
function stored(message: NewMessage, id: number): StoredMessage {
  return { path: [], maxForwards: 70, ...message, id };
}

/** Compares messages with the bodies as exact byte strings (hex), so a diff is readable. */
function view(messages: StoredMessage[]): Array<Omit<StoredMessage, 'body'> & { body: string }> {
  return messages.map((m) => ({ ...m, body: Buffer.from(m.body).toString('hex') }));
}

function expectStoreError(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected a StoreError ${code}`).to.be.instanceOf(StoreError);
  expect((thrown as StoreError).code).to.equal(code);
}

/** Temporary directories made by a suite, removed after it. */
class TempDirs {
  private readonly dirs: string[] = [];

  make(): string {
    const dir = mkdtempSync(join(tmpdir(), 'parley-store-'));
    this.dirs.push(dir);
    return dir;
  }

  removeAll(): void {
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

/** Stores opened by a test, closed after it (a test that closes one itself is fine). */
const open: SqliteStore[] = [];

function openStore(path = ':memory:'): SqliteStore {
  const store = SqliteStore.open(path);
  open.push(store);
  return store;
}

describe('SqliteStore', () => {
  afterEach(async () => {
    for (const store of open.splice(0)) {
      try {
        await store.close();
      } catch {
        // already closed by the test
      }
    }
  });

  // -------------------------------------------------------------------------------------------
  describe('accounts', () => {
    let store: SqliteStore;
    beforeEach(() => {
      store = openStore();
    });

    it('answers an added account by its AOR, with the HA1 of every hash family as given', () => {
      const hashes = hashesFor(ALICE, 'secret');
      store.addAccount(ALICE, hashes);
      const account = store.account(ALICE);
      expect(account).to.not.equal(undefined);
      expect(account!.aor).to.equal(ALICE);
      for (const algorithm of ['MD5', 'SHA-256', 'SHA-512-256'] as const) {
        expect(account!.hashes[algorithm], algorithm).to.equal(hashes[algorithm]);
      }
      expect(account!.hashes.MD5).to.have.length(32);
      expect(account!.hashes['SHA-256']).to.have.length(64);
      expect(account!.hashes['SHA-512-256']).to.have.length(64);
    });

    it('answers undefined for an AOR without an account', () => {
      expect(store.account(BOB)).to.equal(undefined);
      store.addAccount(ALICE, hashesFor(ALICE, 'a'));
      expect(store.account(BOB)).to.equal(undefined);
    });

    it('lists the accounts sorted by AOR, whatever the order they were added in', () => {
      store.addAccount(CAROL, hashesFor(CAROL, 'c'));
      store.addAccount(ALICE, hashesFor(ALICE, 'a'));
      store.addAccount(BOB, hashesFor(BOB, 'b'));
      expect(store.accounts().map((a) => a.aor)).to.deep.equal([ALICE, BOB, CAROL]);
      expect(store.accounts()[1]!.hashes['SHA-256']).to.equal(hashesFor(BOB, 'b')['SHA-256']);
    });

    it('lists nothing when there are no accounts', () => {
      expect(store.accounts()).to.deep.equal([]);
    });

    it('refuses a second account for the same AOR with StoreError STORE_ACCOUNT_EXISTS, keeping the first', () => {
      store.addAccount(ALICE, hashesFor(ALICE, 'first'));
      expectStoreError(() => store.addAccount(ALICE, hashesFor(ALICE, 'second')), 'STORE_ACCOUNT_EXISTS');
      expect(store.account(ALICE)!.hashes.MD5).to.equal(hashesFor(ALICE, 'first').MD5);
      expect(store.accounts()).to.have.length(1);
    });

    it('replaces the hashes of an account on update', () => {
      store.addAccount(ALICE, hashesFor(ALICE, 'old'));
      const fresh = hashesFor(ALICE, 'new');
      store.updateAccount(ALICE, fresh);
      const account = store.account(ALICE)!;
      for (const algorithm of ['MD5', 'SHA-256', 'SHA-512-256'] as const) {
        expect(account.hashes[algorithm], algorithm).to.equal(fresh[algorithm]);
      }
    });

    it('refuses to update an AOR without an account with StoreError STORE_NO_ACCOUNT, creating nothing', () => {
      expectStoreError(() => store.updateAccount(BOB, hashesFor(BOB, 'b')), 'STORE_NO_ACCOUNT');
      expect(store.account(BOB)).to.equal(undefined);
      expect(store.accounts()).to.deep.equal([]);
    });

    it('removes an account (true), and answers false for an AOR without one', () => {
      store.addAccount(ALICE, hashesFor(ALICE, 'a'));
      store.addAccount(BOB, hashesFor(BOB, 'b'));
      expect(store.removeAccount(ALICE)).to.equal(true);
      expect(store.account(ALICE)).to.equal(undefined);
      expect(store.accounts().map((a) => a.aor)).to.deep.equal([BOB]);
      expect(store.removeAccount(ALICE)).to.equal(false);
      expect(store.removeAccount(CAROL)).to.equal(false);
    });

    it('accepts the same AOR again after removal', () => {
      store.addAccount(ALICE, hashesFor(ALICE, 'a'));
      store.removeAccount(ALICE);
      store.addAccount(ALICE, hashesFor(ALICE, 'again'));
      expect(store.account(ALICE)!.hashes['SHA-512-256']).to.equal(hashesFor(ALICE, 'again')['SHA-512-256']);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('location store', () => {
    let store: SqliteStore;
    beforeEach(() => {
      store = openStore();
    });

    /** Every field set: flow with a connection id, Path, fractional q, null-valued parameters. */
    const full: StoredBinding = {
      contact: 'sip:bob@192.0.2.7:5070;transport=tcp;ob',
      expiresAt: 1_700_000_600_000,
      callId: 'a84b4c76e66710@pc33.example.com',
      cseq: 314159,
      q: 0.5,
      instance: 'urn:uuid:00000000-0000-4000-8000-000000000001',
      regId: 1,
      path: ['<sip:edge1.example.com;lr>', '<sip:edge2.example.com;lr;ob>'],
      flow: { protocol: 'tcp', address: '192.0.2.7', port: 50123, connectionId: 17 },
      params: { transport: 'tcp', ob: null, '+sip.instance': '"<urn:uuid:00000000-0000-4000-8000-000000000001>"', 'reg-id': '1' },
    };
    /** Only the required fields. */
    const bare: StoredBinding = {
      contact: 'sip:bob@198.51.100.4',
      expiresAt: 1_700_000_300_000,
      callId: 'call-2',
      cseq: 1,
      params: {},
    };
    /** A UDP flow without a connection id, q of 1. */
    const udp: StoredBinding = {
      contact: 'sip:bob@203.0.113.9:5062',
      expiresAt: 1_700_003_600_000,
      callId: 'call-3',
      cseq: 42,
      q: 1,
      flow: { protocol: 'udp', address: '203.0.113.9', port: 5062 },
      params: { expires: null, 'x-custom': 'Mixed Case value' },
    };

    it('answers [] for an AOR that has no bindings', () => {
      expect(store.get(BOB)).to.deep.equal([]);
      expect(store.boundAors()).to.deep.equal([]);
    });

    it('gives back the bindings put, deep-equal, field for field and in order', async () => {
      await store.put(BOB, [full, bare, udp]);
      expect(store.get(BOB)).to.deep.equal([full, bare, udp]);
    });

    it('replaces an AOR\'s whole set on put', async () => {
      await store.put(BOB, [full, bare]);
      await store.put(BOB, [udp]);
      expect(store.get(BOB)).to.deep.equal([udp]);
    });

    it('removes an AOR on put([])', async () => {
      await store.put(BOB, [full]);
      await store.put(ALICE, [bare]);
      await store.put(BOB, []);
      expect(store.get(BOB)).to.deep.equal([]);
      expect(store.boundAors()).to.deep.equal([ALICE]);
    });

    it('lists in boundAors exactly the AORs that have bindings', async () => {
      await store.put(CAROL, [udp]);
      await store.put(BOB, [full]);
      await store.put(ALICE, [bare]);
      expect([...store.boundAors()].sort()).to.deep.equal([ALICE, BOB, CAROL]);
      await store.put(CAROL, []);
      expect([...store.boundAors()].sort()).to.deep.equal([ALICE, BOB]);
    });

    it('keeps each AOR\'s bindings apart', async () => {
      await store.put(BOB, [full]);
      await store.put(ALICE, [bare, udp]);
      expect(store.get(BOB)).to.deep.equal([full]);
      expect(store.get(ALICE)).to.deep.equal([bare, udp]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('messages', () => {
    let store: SqliteStore;
    beforeEach(() => {
      store = openStore();
    });

    it('gives each appended message an increasing id, not a duplicate', async () => {
      const a = await store.append(msg(BOB));
      const b = await store.append(msg(BOB));
      const c = await store.append(msg(BOB));
      expect([a.duplicate, b.duplicate, c.duplicate]).to.deep.equal([false, false, false]);
      expect(b.id).to.be.greaterThan(a.id);
      expect(c.id).to.be.greaterThan(b.id);
      expect(a.id).to.be.greaterThan(0);
    });

    it('gives the messages of one tick increasing ids in the order they were appended', async () => {
      const messages = [msg(BOB), msg(BOB), msg(BOB), msg(BOB)];
      const results = await Promise.all(messages.map((m) => store.append(m)));
      for (let i = 1; i < results.length; i += 1) expect(results[i]!.id).to.be.greaterThan(results[i - 1]!.id);
      expect(view(store.pending(BOB, PHONE, 10))).to.deep.equal(view(messages.map((m, i) => stored(m, results[i]!.id))));
    });

    it('answers a second append of the same (sender, Message-ID) as a duplicate with the first id, and stores it once', async () => {
      const first = msg(BOB, { messageId: 'dup-1' });
      const a = await store.append(first);
      const b = await store.append({ ...first, body: Buffer.from('a retransmission'), receivedAt: first.receivedAt + 500 });
      expect(a.duplicate).to.equal(false);
      expect(b).to.deep.equal({ id: a.id, duplicate: true });
      expect(view(store.pending(BOB, PHONE, 10))).to.deep.equal(view([stored(first, a.id)]));
      expect(store.unacknowledged(BOB)).to.equal(1);
    });

    it('stores once two appends of the same (sender, Message-ID) issued in the same tick', async () => {
      const first = msg(BOB, { messageId: 'dup-same-tick' });
      const before = store.stats.messages;
      const p1 = store.append(first);
      const p2 = store.append({ ...first });
      const [a, b] = await Promise.all([p1, p2]);
      expect(a.duplicate).to.equal(false);
      expect(b).to.deep.equal({ id: a.id, duplicate: true });
      expect(view(store.pending(BOB, PHONE, 10))).to.deep.equal(view([stored(first, a.id)]));
      expect(store.stats.messages - before).to.equal(1);
    });

    it('does not take the same Message-ID from another sender as a duplicate', async () => {
      const fromAlice = msg(BOB, { messageId: 'shared-id', sender: ALICE });
      const fromCarol = msg(BOB, { messageId: 'shared-id', sender: CAROL });
      const a = await store.append(fromAlice);
      const c = await store.append(fromCarol);
      expect(a.duplicate).to.equal(false);
      expect(c.duplicate).to.equal(false);
      expect(c.id).to.not.equal(a.id);
      expect(store.pending(BOB, PHONE, 10).map((m) => m.sender)).to.deep.equal([ALICE, CAROL]);
    });

    it('keeps every field of a message, the body byte for byte (not UTF-8), and notify', async () => {
      const body = Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x80, 0x0d, 0x0a, 0xed, 0xa0, 0x80, 0x41]);
      const message: NewMessage = {
        recipient: BOB,
        sender: CAROL,
        messageId: 'bytes-1',
        contentType: 'message/cpim',
        body,
        receivedAt: 1_763_719_200_123,
        notify: true,
      };
      const { id } = await store.append(message);
      const [got] = store.pending(BOB, PHONE, 1);
      expect(got).to.not.equal(undefined);
      expect(Buffer.isBuffer(got!.body), 'body is a Buffer').to.equal(true);
      expect(got!.body.toString('hex')).to.equal(body.toString('hex'));
      expect(view([got!])).to.deep.equal(view([stored(message, id)]));
      expect(got!.notify).to.equal(true);
    });

    it('keeps an empty body as an empty Buffer', async () => {
      const message = msg(BOB, { body: Buffer.alloc(0) });
      await store.append(message);
      const [got] = store.pending(BOB, PHONE, 1);
      expect(Buffer.isBuffer(got!.body)).to.equal(true);
      expect(got!.body.length).to.equal(0);
    });

    it('answers pending after the cursor, ascending, at most `limit`', async () => {
      const messages = [msg(BOB), msg(BOB), msg(BOB), msg(BOB), msg(BOB)];
      const ids: number[] = [];
      for (const m of messages) ids.push((await store.append(m)).id);
      store.touchDevice(BOB, PHONE, 1000);
      expect(store.pending(BOB, PHONE, 2).map((m) => m.id)).to.deep.equal(ids.slice(0, 2));
      expect(store.pending(BOB, PHONE, 100).map((m) => m.id)).to.deep.equal(ids);
      store.acknowledge(BOB, PHONE, ids[1]!);
      expect(store.pending(BOB, PHONE, 2).map((m) => m.id)).to.deep.equal(ids.slice(2, 4));
      expect(view(store.pending(BOB, PHONE, 10))).to.deep.equal(view(messages.slice(2).map((m, i) => stored(m, ids[i + 2]!))));
      store.acknowledge(BOB, PHONE, ids[4]!);
      expect(store.pending(BOB, PHONE, 10)).to.deep.equal([]);
    });

    it('answers pending only the recipient\'s own messages', async () => {
      const forBob = msg(BOB);
      const forCarol = msg(CAROL);
      const b = await store.append(forBob);
      const c = await store.append(forCarol);
      expect(store.pending(BOB, PHONE, 10).map((m) => m.id)).to.deep.equal([b.id]);
      expect(store.pending(CAROL, PHONE, 10).map((m) => m.id)).to.deep.equal([c.id]);
      expect(store.pending(ALICE, PHONE, 10)).to.deep.equal([]);
    });

    it('starts a device seen for the first time at cursor 0, so it gets every retained message', async () => {
      const a = await store.append(msg(BOB));
      const b = await store.append(msg(BOB));
      store.touchDevice(BOB, PHONE, 1000);
      expect(store.cursor(BOB, PHONE)).to.equal(0);
      store.acknowledge(BOB, PHONE, b.id);
      store.touchDevice(BOB, LAPTOP, 2000);
      expect(store.cursor(BOB, LAPTOP)).to.equal(0);
      expect(store.pending(BOB, LAPTOP, 10).map((m) => m.id)).to.deep.equal([a.id, b.id]);
    });

    it('does not reset the cursor of a device touched again', async () => {
      const a = await store.append(msg(BOB));
      store.touchDevice(BOB, PHONE, 1000);
      store.acknowledge(BOB, PHONE, a.id);
      store.touchDevice(BOB, PHONE, 2000);
      expect(store.cursor(BOB, PHONE)).to.equal(a.id);
    });

    it('keeps a cursor per (recipient, device)', async () => {
      const forBob = await store.append(msg(BOB));
      const forCarol = await store.append(msg(CAROL));
      store.touchDevice(BOB, PHONE, 1000);
      store.touchDevice(CAROL, PHONE, 1000);
      store.acknowledge(BOB, PHONE, forBob.id);
      expect(store.cursor(BOB, PHONE)).to.equal(forBob.id);
      expect(store.cursor(CAROL, PHONE)).to.equal(0);
      expect(store.pending(CAROL, PHONE, 10).map((m) => m.id)).to.deep.equal([forCarol.id]);
    });

    it('moves the cursor on acknowledge, and never back', async () => {
      const a = await store.append(msg(BOB));
      const b = await store.append(msg(BOB));
      store.touchDevice(BOB, PHONE, 1000);
      store.acknowledge(BOB, PHONE, a.id);
      expect(store.cursor(BOB, PHONE)).to.equal(a.id);
      store.acknowledge(BOB, PHONE, b.id);
      expect(store.cursor(BOB, PHONE)).to.equal(b.id);
      store.acknowledge(BOB, PHONE, a.id);
      expect(store.cursor(BOB, PHONE)).to.equal(b.id);
    });

    it('answers first: true only to the first device that acknowledges a message', async () => {
      const a = await store.append(msg(BOB));
      const b = await store.append(msg(BOB));
      store.touchDevice(BOB, PHONE, 1000);
      store.touchDevice(BOB, LAPTOP, 1000);
      expect(store.acknowledge(BOB, PHONE, a.id)).to.deep.equal({ first: true });
      expect(store.acknowledge(BOB, LAPTOP, a.id)).to.deep.equal({ first: false });
      expect(store.acknowledge(BOB, PHONE, a.id)).to.deep.equal({ first: false });
      expect(store.acknowledge(BOB, LAPTOP, b.id)).to.deep.equal({ first: true });
      expect(store.acknowledge(BOB, PHONE, b.id)).to.deep.equal({ first: false });
    });

    it('counts as unacknowledged every message when the recipient has no known device', async () => {
      expect(store.unacknowledged(BOB)).to.equal(0);
      await store.append(msg(BOB));
      await store.append(msg(BOB));
      await store.append(msg(CAROL));
      expect(store.unacknowledged(BOB)).to.equal(2);
      expect(store.unacknowledged(CAROL)).to.equal(1);
    });

    it('counts as unacknowledged the messages that some known device has not acknowledged', async () => {
      const ids: number[] = [];
      for (let i = 0; i < 4; i += 1) ids.push((await store.append(msg(BOB))).id);
      store.touchDevice(BOB, PHONE, 1000);
      store.touchDevice(BOB, LAPTOP, 1000);
      expect(store.unacknowledged(BOB)).to.equal(4);
      store.acknowledge(BOB, PHONE, ids[2]!);
      await store.flush();
      expect(store.unacknowledged(BOB)).to.equal(4); // the laptop has acknowledged none
      store.acknowledge(BOB, LAPTOP, ids[0]!);
      await store.flush();
      expect(store.unacknowledged(BOB)).to.equal(3);
      store.acknowledge(BOB, LAPTOP, ids[3]!);
      await store.flush();
      expect(store.unacknowledged(BOB)).to.equal(1); // the phone has not acknowledged the last
      store.acknowledge(BOB, PHONE, ids[3]!);
      await store.flush();
      expect(store.unacknowledged(BOB)).to.equal(0);
    });

    it('counts an acknowledgement in unacknowledged as soon as acknowledge() has answered (not only once flushed)', async () => {
      const a = await store.append(msg(BOB));
      await store.append(msg(BOB));
      store.touchDevice(BOB, PHONE, 1000);
      store.acknowledge(BOB, PHONE, a.id);
      expect(store.cursor(BOB, PHONE)).to.equal(a.id);
      expect(store.unacknowledged(BOB)).to.equal(1);
    });

    it('counts appended messages in stats.messages, not duplicates', async () => {
      const before = store.stats.messages;
      const m = msg(BOB);
      await store.append(m);
      await store.append(msg(BOB));
      await store.append({ ...m });
      expect(store.stats.messages - before).to.equal(2);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('group commit', () => {
    it('commits 500 appends issued in one tick in a few transactions, and resolves every one', async () => {
      const store = openStore();
      await store.append(msg(BOB)); // let any setup commit happen first
      const commits = store.stats.commits;
      const messages = store.stats.messages;
      const batch = Array.from({ length: 500 }, () => msg(BOB));
      const results = await within(Promise.all(batch.map((m) => store.append(m))), '500 appends');
      expect(results.every((r) => !r.duplicate)).to.equal(true);
      expect(new Set(results.map((r) => r.id)).size).to.equal(500);
      expect(store.stats.commits - commits).to.be.at.least(1);
      expect(store.stats.commits - commits).to.be.at.most(5);
      expect(store.stats.messages - messages).to.equal(500);
      expect(store.pending(BOB, PHONE, 1000)).to.have.length(501);
    });

    it('does the same on a file database', async () => {
      const dirs = new TempDirs();
      try {
        const store = openStore(join(dirs.make(), 'parley.db'));
        const commits = store.stats.commits;
        const messages = store.stats.messages;
        const batch = Array.from({ length: 500 }, () => msg(BOB));
        const results = await within(Promise.all(batch.map((m) => store.append(m))), '500 appends');
        expect(new Set(results.map((r) => r.id)).size).to.equal(500);
        expect(store.stats.commits - commits).to.be.at.most(5);
        expect(store.stats.messages - messages).to.equal(500);
        await store.close();
      } finally {
        dirs.removeAll();
      }
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('durability (a file database)', () => {
    const dirs = new TempDirs();
    let file: string;
    beforeEach(() => {
      file = join(dirs.make(), 'parley.db');
    });
    after(() => dirs.removeAll());

    it('keeps a relayed message\'s path and Max-Forwards (docs/federation.md)', async () => {
      const before = openStore(file);
      const relayed = msg(CAROL, { path: ['a.example', 'b.example'], maxForwards: 12 });
      const a = await before.append(relayed);
      await before.close();
      const after = openStore(file);
      expect(after.after(CAROL as never, 0, 10)).to.deep.equal([{ ...relayed, id: a.id }]);
      expect(after.recipients()).to.deep.equal([CAROL]);
      await after.close();
    });

    it('opens a database made before federation: the relay columns are added, old rows read as path [] and Max-Forwards 70', async () => {
      const old = new Database(file);
      old.exec(`CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, sender TEXT NOT NULL,
        message_id TEXT NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL, received_at INTEGER NOT NULL, notify INTEGER NOT NULL,
        delivered_at INTEGER, UNIQUE (recipient, sender, message_id))`);
      old.prepare('INSERT INTO messages (recipient, sender, message_id, content_type, body, received_at, notify) VALUES (?, ?, ?, ?, ?, ?, ?)').run(BOB, ALICE, 'old-1', 'text/plain', Buffer.from('from before'), 5, 0);
      old.close();
      const store = openStore(file);
      expect(store.after(BOB as never, 0, 10)).to.deep.equal([
        { id: 1, recipient: BOB, sender: ALICE, messageId: 'old-1', contentType: 'text/plain', body: Buffer.from('from before'), receivedAt: 5, notify: false, path: [], maxForwards: 70 },
      ]);
      const next = await store.append(msg(BOB, { path: ['x.example'], maxForwards: 3 }));
      expect(store.after(BOB as never, 1, 10).map((m) => [m.id, m.path, m.maxForwards])).to.deep.equal([[next.id, ['x.example'], 3]]);
      await store.close();
    });

    it('keeps messages, cursors, accounts and bindings across close and reopen', async () => {
      const binding: StoredBinding = {
        contact: 'sip:bob@192.0.2.7:5070;transport=tcp',
        expiresAt: 1_700_000_600_000,
        callId: 'reg-1',
        cseq: 7,
        instance: PHONE,
        regId: 1,
        flow: { protocol: 'tcp', address: '192.0.2.7', port: 50123, connectionId: 3 },
        params: { transport: 'tcp', ob: null },
      };
      const body = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]);
      const first = msg(BOB, { body, notify: true });
      const second = msg(BOB);

      const before = openStore(file);
      before.addAccount(BOB, hashesFor(BOB, 'pw'));
      await before.put(BOB, [binding]);
      const a = await before.append(first);
      const b = await before.append(second);
      before.touchDevice(BOB, PHONE, 1000);
      before.touchDevice(BOB, LAPTOP, 1000);
      before.acknowledge(BOB, PHONE, a.id);
      await before.close();

      const reopened = openStore(file);
      expect(reopened.account(BOB)!.hashes['SHA-512-256']).to.equal(hashesFor(BOB, 'pw')['SHA-512-256']);
      expect(reopened.accounts().map((x) => x.aor)).to.deep.equal([BOB]);
      expect(reopened.get(BOB)).to.deep.equal([binding]);
      expect(reopened.boundAors()).to.deep.equal([BOB]);
      expect(reopened.cursor(BOB, PHONE)).to.equal(a.id);
      expect(reopened.cursor(BOB, LAPTOP)).to.equal(0);
      expect(view(reopened.pending(BOB, LAPTOP, 10))).to.deep.equal(view([stored(first, a.id), stored(second, b.id)]));
      expect(view(reopened.pending(BOB, PHONE, 10))).to.deep.equal(view([stored(second, b.id)]));
      expect(reopened.unacknowledged(BOB)).to.equal(2);
      // The second acknowledgement of the first message is not the first one.
      expect(reopened.acknowledge(BOB, LAPTOP, a.id)).to.deep.equal({ first: false });
    });

    it('remembers (sender, Message-ID) across a reopen, and goes on with higher ids', async () => {
      const first = msg(BOB, { messageId: 'survives' });
      const before = openStore(file);
      const a = await before.append(first);
      await before.close();

      const reopened = openStore(file);
      expect(await reopened.append({ ...first })).to.deep.equal({ id: a.id, duplicate: true });
      const next = await reopened.append(msg(BOB));
      expect(next.duplicate).to.equal(false);
      expect(next.id).to.be.greaterThan(a.id);
      expect(reopened.pending(BOB, PHONE, 10)).to.have.length(2);
    });

    it('is in WAL mode', async () => {
      const store = openStore(file);
      await store.append(msg(BOB));
      expect(existsSync(`${file}-wal`), `${file}-wal exists while the store is open`).to.equal(true);
      const other = new Database(file, { readonly: true });
      try {
        expect(other.pragma('journal_mode', { simple: true })).to.equal('wal');
      } finally {
        other.close();
      }
    });

    it('commits on close() the appends still waiting for the disk', async () => {
      const message = msg(BOB);
      const before = openStore(file);
      const appended = before.append(message);
      await before.close();
      const { id, duplicate } = await within(appended, 'the append before close');
      expect(duplicate).to.equal(false);

      const reopened = openStore(file);
      expect(view(reopened.pending(BOB, PHONE, 10))).to.deep.equal(view([stored(message, id)]));
    });

    it('commits on close() many appends issued in the same tick', async () => {
      const before = openStore(file);
      const batch = Array.from({ length: 50 }, () => msg(BOB));
      const appended = batch.map((m) => before.append(m));
      await before.close();
      const results = await within(Promise.all(appended), 'the appends before close');

      const reopened = openStore(file);
      expect(reopened.pending(BOB, PHONE, 100).map((m) => m.id)).to.deep.equal(results.map((r) => r.id));
    });

    it('has every append issued before flush() on disk when flush resolves', async () => {
      const store = openStore(file);
      const batch = [msg(BOB), msg(BOB), msg(BOB)];
      const appended = batch.map((m) => store.append(m));
      await within(store.flush(), 'flush');
      const copy = snapshot(file);
      const results = await within(Promise.all(appended), 'the appends');
      const crashed = openStore(copy);
      expect(view(crashed.pending(BOB, PHONE, 10))).to.deep.equal(view(batch.map((m, i) => stored(m, results[i]!.id))));
    });

    it('has a message on disk when its append resolves (the files copied as they are, as after kill -9)', async () => {
      const store = openStore(file);
      store.addAccount(BOB, hashesFor(BOB, 'pw'));
      const message = msg(BOB);
      const { id } = await store.append(message);
      const copy = snapshot(file);
      const crashed = openStore(copy);
      expect(view(crashed.pending(BOB, PHONE, 10))).to.deep.equal(view([stored(message, id)]));
      expect(crashed.account(BOB)).to.not.equal(undefined);
    });

    /** Copies the database and its WAL, as they are on disk now, to a fresh directory. */
    function snapshot(path: string): string {
      const copy = join(dirs.make(), 'copy.db');
      copyFileSync(path, copy);
      if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
      return copy;
    }
  });

  // -------------------------------------------------------------------------------------------
  describe('purge', () => {
    let store: SqliteStore;
    const NOW = 1_800_000_000_000;
    const RETENTION = 30 * DAY;
    beforeEach(() => {
      store = openStore();
    });

    it('deletes the messages every known device has acknowledged, and keeps the others', async () => {
      const ids: number[] = [];
      for (let i = 0; i < 3; i += 1) ids.push((await store.append(msg(BOB, { receivedAt: NOW - HOUR }))).id);
      store.touchDevice(BOB, PHONE, NOW - HOUR);
      store.touchDevice(BOB, LAPTOP, NOW - HOUR);
      store.acknowledge(BOB, PHONE, ids[2]!);
      store.acknowledge(BOB, LAPTOP, ids[0]!);
      await store.flush();
      expect(store.purge(NOW, RETENTION)).to.equal(1);
      expect(store.pending(BOB, PHONE, 10)).to.deep.equal([]);
      expect(store.pending(BOB, LAPTOP, 10).map((m) => m.id)).to.deep.equal([ids[1], ids[2]]);
      // A device seen now for the first time gets only what is left.
      store.touchDevice(BOB, 'sip:bob@198.51.100.1', NOW);
      expect(store.pending(BOB, 'sip:bob@198.51.100.1', 10).map((m) => m.id)).to.deep.equal([ids[1], ids[2]]);
      expect(store.purge(NOW, RETENTION)).to.equal(0);
    });

    it('deletes the messages older than the retention even when unacknowledged', async () => {
      const old = await store.append(msg(BOB, { receivedAt: NOW - RETENTION - HOUR }));
      const recent = await store.append(msg(BOB, { receivedAt: NOW - RETENTION + HOUR }));
      store.touchDevice(BOB, PHONE, NOW - HOUR);
      expect(store.purge(NOW, RETENTION)).to.equal(1);
      expect(store.pending(BOB, PHONE, 10).map((m) => m.id)).to.deep.equal([recent.id]);
      expect(old.id).to.be.lessThan(recent.id);
    });

    it('keeps the messages of a recipient with no known device until the retention has passed', async () => {
      const a = await store.append(msg(CAROL, { receivedAt: NOW - 2 * DAY }));
      const b = await store.append(msg(CAROL, { receivedAt: NOW - HOUR }));
      expect(store.purge(NOW, RETENTION)).to.equal(0);
      expect(store.pending(CAROL, PHONE, 10).map((m) => m.id)).to.deep.equal([a.id, b.id]);
      expect(store.unacknowledged(CAROL)).to.equal(2);
      // One day past the first one's retention: it goes, the other stays.
      expect(store.purge(NOW - 2 * DAY + RETENTION + DAY, RETENTION)).to.equal(1);
      expect(store.pending(CAROL, PHONE, 10).map((m) => m.id)).to.deep.equal([b.id]);
    });

    it('counts what it deleted across recipients, and touches no one else\'s messages', async () => {
      const bob = await store.append(msg(BOB, { receivedAt: NOW - HOUR }));
      const carolOld = await store.append(msg(CAROL, { receivedAt: NOW - RETENTION - DAY }));
      const carolNew = await store.append(msg(CAROL, { receivedAt: NOW - HOUR }));
      const aliceNew = await store.append(msg(ALICE, { receivedAt: NOW - HOUR, sender: BOB }));
      store.touchDevice(BOB, PHONE, NOW - HOUR);
      store.acknowledge(BOB, PHONE, bob.id);
      store.touchDevice(ALICE, PHONE, NOW - HOUR);
      await store.flush();
      expect(store.purge(NOW, RETENTION)).to.equal(2);
      expect(store.pending(BOB, LAPTOP, 10)).to.deep.equal([]);
      expect(store.pending(CAROL, PHONE, 10).map((m) => m.id)).to.deep.equal([carolNew.id]);
      expect(store.pending(ALICE, PHONE, 10).map((m) => m.id)).to.deep.equal([aliceNew.id]);
      expect(carolOld.id).to.not.equal(carolNew.id);
    });

    it('takes into account an acknowledgement made just before (not yet flushed)', async () => {
      const a = await store.append(msg(BOB, { receivedAt: NOW - HOUR }));
      const b = await store.append(msg(BOB, { receivedAt: NOW - HOUR }));
      store.touchDevice(BOB, PHONE, NOW - HOUR);
      store.acknowledge(BOB, PHONE, a.id);
      // acknowledge() has answered and cursor() shows it: purge() must agree.
      expect(store.cursor(BOB, PHONE)).to.equal(a.id);
      expect(store.purge(NOW, RETENTION)).to.equal(1);
      expect(store.pending(BOB, LAPTOP, 10).map((m) => m.id)).to.deep.equal([b.id]);
    });

    it('forgets a device not seen for the retention, so it no longer holds messages back', async () => {
      const a = await store.append(msg(BOB, { receivedAt: NOW - HOUR }));
      const b = await store.append(msg(BOB, { receivedAt: NOW - HOUR }));
      store.touchDevice(BOB, PHONE, NOW - RETENTION - DAY); // stale, acknowledged nothing
      store.touchDevice(BOB, LAPTOP, NOW - RETENTION - DAY);
      store.touchDevice(BOB, LAPTOP, NOW - HOUR); // seen again since
      store.acknowledge(BOB, LAPTOP, b.id);
      await store.flush();
      expect(store.unacknowledged(BOB)).to.equal(2);
      expect(store.purge(NOW, RETENTION)).to.equal(2);
      expect(store.pending(BOB, PHONE, 10)).to.deep.equal([]);
      expect(store.cursor(BOB, LAPTOP)).to.equal(b.id);
      expect(a.id).to.be.lessThan(b.id);
    });

    it('keeps a message no device has acknowledged yet, and an unacknowledged one of a known device', async () => {
      const a = await store.append(msg(BOB, { receivedAt: NOW - HOUR }));
      store.touchDevice(BOB, PHONE, NOW - HOUR);
      expect(store.purge(NOW, RETENTION)).to.equal(0);
      expect(store.pending(BOB, PHONE, 10).map((m) => m.id)).to.deep.equal([a.id]);
      expect(store.unacknowledged(BOB)).to.equal(1);
    });

    it('makes purged messages count no more as unacknowledged', async () => {
      await store.append(msg(BOB, { receivedAt: NOW - RETENTION - DAY }));
      await store.append(msg(BOB, { receivedAt: NOW - RETENTION - DAY }));
      const kept = await store.append(msg(BOB, { receivedAt: NOW - HOUR }));
      expect(store.unacknowledged(BOB)).to.equal(3);
      expect(store.purge(NOW, RETENTION)).to.equal(2);
      expect(store.unacknowledged(BOB)).to.equal(1);
      expect(store.pending(BOB, PHONE, 10).map((m) => m.id)).to.deep.equal([kept.id]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('its clock (SqliteStore.open(path, { clock }))', () => {
    const T = Date.parse('2030-01-02T03:04:05.000Z');

    it('stamps what it is given no time for — an account, a device seen, a cursor first moved by an acknowledgement — from its clock', async () => {
      let now = T;
      const store = SqliteStore.open(':memory:', { clock: { now: () => now } });
      open.push(store);
      store.addAccount(ALICE, hashesFor(ALICE, 'a'));
      expect(store.account(ALICE)?.createdAt).to.equal(T);
      now = T + 1000;
      store.touchDevice(BOB, PHONE);
      const { id } = await store.append(msg(BOB));
      now = T + 2000;
      // LAPTOP was never touched: its row is made by the acknowledgement's commit.
      store.acknowledge(BOB, LAPTOP, id);
      await store.flush();
      expect(store.devices(BOB)).to.deep.equal([
        { device: LAPTOP, cursor: id, lastSeen: T + 2000 },
        { device: PHONE, cursor: 0, lastSeen: T + 1000 },
      ]);
    });
  });
});
