import Database from 'better-sqlite3';
import type { StoredBinding } from '../../tu/dum/location-store.js';
import { systemWallClock, type WallClock } from '../wall-clock.js';
import type { Aor } from './aor.js';
import type { Account, AccountHashes, AppendResult, DeviceCursor, MailboxUsage, NewMessage, Store, StoredMessage } from './store.js';
import { StoreError } from './store-error.js';

export interface SqliteStoreOptions {
  /** Times the store stamps itself (an account's creation, a cursor's first move): the server's clock. */
  clock?: WallClock;
}

interface PendingAppend {
  message: NewMessage;
  key: string;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

interface MessageRow {
  id: number;
  recipient: string;
  sender: string;
  message_id: string;
  content_type: string;
  body: Buffer;
  received_at: number;
  notify: number;
  path: string;
  max_forwards: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS accounts (
  aor TEXT PRIMARY KEY,
  hashes TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bindings (
  aor TEXT PRIMARY KEY,
  list TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient TEXT NOT NULL,
  sender TEXT NOT NULL,
  message_id TEXT NOT NULL,
  content_type TEXT NOT NULL,
  body BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  notify INTEGER NOT NULL,
  delivered_at INTEGER,
  UNIQUE (recipient, sender, message_id)
);
CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages (recipient, id);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (received_at);
CREATE TABLE IF NOT EXISTS devices (
  recipient TEXT NOT NULL,
  device TEXT NOT NULL,
  cursor INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  PRIMARY KEY (recipient, device)
);
`;

/** RFC 3261 §8.1.1.6: "a UAC MUST insert a Max-Forwards header field … SHOULD be 70". */
const DEFAULT_MAX_FORWARDS = 70;

/** How long acknowledgements alone wait to share a commit with other writes. */
const ACK_COMMIT_DELAY_MS = 5;

/**
 * Everything the Parley server must not lose, in one SQLite database (better-sqlite3, WAL):
 * accounts, the location service (a DUM `LocationStore`), each user's message log and each
 * device's cursor in it.
 *
 * Group commit: `append` and `acknowledge` queue their writes; all writes queued before the event
 * loop's next turn go to disk in one transaction (`synchronous=FULL`: the WAL is synced at each
 * commit), and only then do the appends resolve. better-sqlite3 is synchronous, so while one
 * commit syncs, new requests wait in the socket buffers and all join the next commit: under load
 * a disk sync covers many messages, and a message is never acknowledged before it is on disk.
 */
export class SqliteStore implements Store {
  readonly stats = { commits: 0, messages: 0 };
  private readonly db: Database.Database;
  private appends: PendingAppend[] = [];
  private readonly appendKeys = new Map<string, Promise<AppendResult>>();
  /** Cursor moves not yet committed, by recipient\ndevice (`at`: when, for a device's first row). */
  private acks = new Map<string, { recipient: Aor; device: string; id: number; at: number }>();
  /** Messages whose first acknowledgement is not yet committed. */
  private firstDeliveries = new Set<number>();
  /** When each message was first acknowledged, not yet committed. */
  private deliveredAt = new Map<number, number>();
  private immediateCommit: NodeJS.Immediate | undefined;
  private lazyCommit: NodeJS.Timeout | undefined;
  /** Messages kept per recipient, counted once then kept up to date (the mailbox quota). */
  private storedCounts = new Map<string, number>();
  /** Bytes and per-sender counts of each recipient's kept messages, read once then kept up to date. */
  private usage = new Map<string, { bytes: number; bySender: Map<string, number> }>();
  private flushWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private closed = false;
  /** close() has begun: nothing new is taken, what is queued is committed. */
  private closing = false;
  private readonly statements;
  private readonly clock: WallClock;

  private constructor(
    readonly path: string,
    options: SqliteStoreOptions,
  ) {
    this.clock = options.clock ?? systemWallClock;
    this.db = new Database(path);
    if (path !== ':memory:') this.db.pragma('journal_mode = WAL');
    // Durable at each commit, power loss included (the WAL is synced before COMMIT returns).
    this.db.pragma('synchronous = FULL');
    // Another process (`parley user add` while the server runs) may hold the lock briefly.
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.migrate();
    this.statements = {
      insertMessage: this.db.prepare(
        'INSERT OR IGNORE INTO messages (recipient, sender, message_id, content_type, body, received_at, notify, path, max_forwards) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      messageIdOf: this.db.prepare<[string, string, string], { id: number }>('SELECT id FROM messages WHERE recipient = ? AND sender = ? AND message_id = ?'),
      pending: this.db.prepare<[string, number, number], MessageRow>('SELECT * FROM messages WHERE recipient = ? AND id > ? ORDER BY id LIMIT ?'),
      cursor: this.db.prepare<[string, string], { cursor: number }>('SELECT cursor FROM devices WHERE recipient = ? AND device = ?'),
      moveCursor: this.db.prepare(
        'INSERT INTO devices (recipient, device, cursor, last_seen) VALUES (?, ?, ?, ?) ON CONFLICT (recipient, device) DO UPDATE SET cursor = max(cursor, excluded.cursor)',
      ),
      touchDevice: this.db.prepare(
        'INSERT INTO devices (recipient, device, cursor, last_seen) VALUES (?, ?, 0, ?) ON CONFLICT (recipient, device) DO UPDATE SET last_seen = excluded.last_seen',
      ),
      delivered: this.db.prepare('UPDATE messages SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL'),
      isDelivered: this.db.prepare<[number], { delivered_at: number | null }>('SELECT delivered_at FROM messages WHERE id = ?'),
      countAfter: this.db.prepare<[string, number], { n: number }>('SELECT count(*) AS n FROM messages WHERE recipient = ? AND id > ?'),
      getBindings: this.db.prepare<[string], { list: string }>('SELECT list FROM bindings WHERE aor = ?'),
      putBindings: this.db.prepare('INSERT INTO bindings (aor, list) VALUES (?, ?) ON CONFLICT (aor) DO UPDATE SET list = excluded.list'),
      deleteBindings: this.db.prepare('DELETE FROM bindings WHERE aor = ?'),
      account: this.db.prepare<[string], { aor: string; hashes: string; created_at: number }>('SELECT * FROM accounts WHERE aor = ?'),
      recipients: this.db.prepare<[], { recipient: string }>('SELECT DISTINCT recipient FROM messages'),
      countStored: this.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM messages WHERE recipient = ?'),
      usage: this.db.prepare<[string], { sender: string; n: number; bytes: number }>('SELECT sender, count(*) AS n, coalesce(sum(length(body)), 0) AS bytes FROM messages WHERE recipient = ? GROUP BY sender'),
    };
  }

  /** Opens (creating when missing) the database at `path`; `':memory:'` for tests. */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    return new SqliteStore(path, options);
  }

  // ---- accounts --------------------------------------------------------------------------------

  addAccount(aor: Aor, hashes: AccountHashes, now = this.clock.now()): void {
    this.ensureOpen();
    const result = this.db.prepare('INSERT OR IGNORE INTO accounts (aor, hashes, created_at) VALUES (?, ?, ?)').run(aor, JSON.stringify(hashes), now);
    if (result.changes === 0) throw new StoreError('STORE_ACCOUNT_EXISTS', `${aor} already has an account`);
  }

  updateAccount(aor: Aor, hashes: AccountHashes): void {
    this.ensureOpen();
    const result = this.db.prepare('UPDATE accounts SET hashes = ? WHERE aor = ?').run(JSON.stringify(hashes), aor);
    if (result.changes === 0) throw new StoreError('STORE_NO_ACCOUNT', `${aor} has no account`);
  }

  /** Removes the account with its bindings, devices and messages; false when there was none. */
  removeAccount(aor: Aor): boolean {
    this.ensureOpen();
    this.storedCounts.delete(aor);
    this.usage.delete(aor);
    return this.db.transaction(() => {
      const removed = this.db.prepare('DELETE FROM accounts WHERE aor = ?').run(aor).changes > 0;
      this.db.prepare('DELETE FROM bindings WHERE aor = ?').run(aor);
      this.db.prepare('DELETE FROM devices WHERE recipient = ?').run(aor);
      this.db.prepare('DELETE FROM messages WHERE recipient = ?').run(aor);
      return removed;
    })();
  }

  account(aor: Aor): Account | undefined {
    this.ensureOpen();
    const row = this.statements.account.get(aor);
    return row && { aor: row.aor, hashes: JSON.parse(row.hashes) as AccountHashes, createdAt: row.created_at };
  }

  accounts(): Account[] {
    this.ensureOpen();
    const rows = this.db.prepare<[], { aor: string; hashes: string; created_at: number }>('SELECT * FROM accounts ORDER BY aor').all();
    return rows.map((row) => ({ aor: row.aor, hashes: JSON.parse(row.hashes) as AccountHashes, createdAt: row.created_at }));
  }

  // ---- location service (RFC 3261 §10.3; the DUM registrar's LocationStore) --------------------

  get(aor: string): StoredBinding[] {
    this.ensureOpen();
    const row = this.statements.getBindings.get(aor);
    return row ? (JSON.parse(row.list) as StoredBinding[]) : [];
  }

  /** Replaces the AOR's bindings in one commit (the registrar's all-or-nothing rule). */
  put(aor: string, bindings: StoredBinding[]): Promise<void> {
    this.ensureOpen();
    if (bindings.length === 0) this.statements.deleteBindings.run(aor);
    else this.statements.putBindings.run(aor, JSON.stringify(bindings));
    return Promise.resolve();
  }

  boundAors(): Aor[] {
    this.ensureOpen();
    return this.db
      .prepare<[], { aor: string }>('SELECT aor FROM bindings ORDER BY aor')
      .all()
      .map((row) => row.aor);
  }

  // ---- message logs ----------------------------------------------------------------------------

  /**
   * Queues the message for the next group commit; resolves with its id once it is on disk, or with
   * the id it already had when (recipient, sender, messageId) was stored before (a retried send).
   */
  append(message: NewMessage): Promise<AppendResult> {
    this.ensureOpen();
    if (this.closing) return Promise.reject(new StoreError('STORE_CLOSED', 'the store is closing'));
    const key = `${message.recipient}\n${message.sender}\n${message.messageId}`;
    const queued = this.appendKeys.get(key);
    // The same message twice in one batch: the second is the first's duplicate.
    if (queued) return queued.then((result) => ({ id: result.id, duplicate: true }));
    const promise = new Promise<AppendResult>((resolve, reject) => {
      this.appends.push({ message, key, resolve, reject });
    });
    this.appendKeys.set(key, promise);
    this.scheduleFlush();
    return promise;
  }

  /** Appends waiting for the disk (the server's overload signal). */
  get commitBacklog(): number {
    return this.appends.length;
  }

  /** Up to `limit` committed messages of the recipient after the device's cursor, in log order. */
  pending(recipient: Aor, device: string, limit: number): StoredMessage[] {
    return this.after(recipient, this.cursor(recipient, device), limit);
  }

  /** Up to `limit` committed messages of the recipient with ids above `afterId`, in log order. */
  after(recipient: Aor, afterId: number, limit: number): StoredMessage[] {
    this.ensureOpen();
    return this.statements.pending.all(recipient, afterId, limit).map(toStoredMessage);
  }

  /**
   * Messages kept for the recipient (until every device acknowledged them and a purge ran, or
   * retention ended), appends waiting for the disk included: what the mailbox quota counts.
   * Counted once, then kept up to date, so asking costs nothing per MESSAGE.
   */
  stored(recipient: Aor): number {
    this.ensureOpen();
    let count = this.storedCounts.get(recipient);
    if (count === undefined) this.storedCounts.set(recipient, (count = this.statements.countStored.get(recipient)!.n));
    let queued = 0;
    for (const append of this.appends) if (append.message.recipient === recipient) queued++;
    return count + queued;
  }

  /** The highest id the device acknowledged (0 for a device never seen). */
  cursor(recipient: Aor, device: string): number {
    this.ensureOpen();
    const committed = this.statements.cursor.get(recipient, device)?.cursor ?? 0;
    const queued = this.acks.get(`${recipient}\n${device}`)?.id ?? 0;
    return Math.max(committed, queued);
  }

  /** Records that the device is registered now (a new device starts at cursor 0). */
  touchDevice(recipient: Aor, device: string, now = this.clock.now()): void {
    this.ensureOpen();
    this.statements.touchDevice.run(recipient, device, now);
  }

  /** The devices known for a recipient, with their cursors. */
  devices(recipient: Aor): DeviceCursor[] {
    this.ensureOpen();
    return this.db
      .prepare<[string], { device: string; cursor: number; last_seen: number }>('SELECT device, cursor, last_seen FROM devices WHERE recipient = ? ORDER BY device')
      .all(recipient)
      .map((row) => ({ device: row.device, cursor: Math.max(row.cursor, this.acks.get(`${recipient}\n${row.device}`)?.id ?? 0), lastSeen: row.last_seen }));
  }

  /**
   * The device acknowledged message `id` (its 2xx): its cursor moves there with the next group
   * commit. `first` is true when no device had acknowledged that message before (the moment its
   * delivery notification is due, RFC 5438 §7.1).
   */
  acknowledge(recipient: Aor, device: string, id: number, now = this.clock.now()): { first: boolean } {
    this.ensureOpen();
    const key = `${recipient}\n${device}`;
    const previous = this.acks.get(key);
    if (!previous || previous.id < id) this.acks.set(key, { recipient, device, id, at: now });
    let first = false;
    if (!this.firstDeliveries.has(id)) {
      const row = this.statements.isDelivered.get(id);
      first = row !== undefined && row.delivered_at === null;
      if (first) this.firstDeliveries.add(id);
    }
    this.deliveredAt.set(id, now);
    this.scheduleFlush(false);
    return { first };
  }

  /**
   * Messages of the recipient that some known device has not acknowledged (all of them when no
   * device is known yet): what a mailbox quota counts. Appends still waiting for the disk count too.
   */
  unacknowledged(recipient: Aor): number {
    this.ensureOpen();
    const devices = this.devices(recipient);
    const low = devices.length === 0 ? 0 : Math.min(...devices.map((d) => d.cursor));
    let queued = 0;
    for (const append of this.appends) if (append.message.recipient === recipient) queued++;
    return this.statements.countAfter.get(recipient, low)!.n + queued;
  }

  /**
   * The mailbox quotas' view (issue 16): messages kept for the recipient, their body bytes, and
   * those from `sender`, queued appends included. Read once per recipient, then kept up to date.
   */
  mailbox(recipient: Aor, sender: Aor): MailboxUsage {
    this.ensureOpen();
    let usage = this.usage.get(recipient);
    if (usage === undefined) {
      usage = { bytes: 0, bySender: new Map() };
      for (const row of this.statements.usage.all(recipient)) {
        usage.bytes += row.bytes;
        usage.bySender.set(row.sender, row.n);
      }
      this.usage.set(recipient, usage);
    }
    let bytes = usage.bytes;
    let fromSender = usage.bySender.get(sender) ?? 0;
    for (const append of this.appends) {
      if (append.message.recipient !== recipient) continue;
      bytes += append.message.body.length;
      if (append.message.sender === sender) fromSender++;
    }
    return { messages: this.stored(recipient), bytes, fromSender };
  }

  /** Every recipient with a message kept (after a restart: the foreign ones are relayed again). */
  recipients(): Aor[] {
    this.ensureOpen();
    return this.statements.recipients.all().map((r) => r.recipient as Aor);
  }

  /**
   * Deletes messages every known device of their recipient acknowledged, messages stored more than
   * `retentionMs` ago (acknowledged or not), and devices not seen for as long. Returns the number
   * of messages deleted.
   */
  purge(now: number, retentionMs: number): number {
    this.ensureOpen();
    // Acknowledgements queued for the next group commit count: commit them first.
    if (this.acks.size > 0 || this.deliveredAt.size > 0) this.commit();
    const cutoff = now - retentionMs;
    this.storedCounts.clear();
    this.usage.clear();
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM devices WHERE last_seen < ?').run(cutoff);
      return this.db
        .prepare('DELETE FROM messages WHERE received_at < ? OR id <= (SELECT min(cursor) FROM devices d WHERE d.recipient = messages.recipient)')
        .run(cutoff).changes;
    })();
  }

  /** Commits everything queued now (close() and tests; the server relies on the automatic flush). */
  flush(): Promise<void> {
    if (this.appends.length === 0 && this.acks.size === 0 && this.deliveredAt.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Flushes, then closes the database. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.flush().catch(() => undefined);
    this.closed = true;
    this.db.close();
  }

  /**
   * Appends are committed on the next turn of the event loop (a sender waits for its 202);
   * acknowledgements alone wait a few ms more, so they join a commit with other writes.
   */
  private scheduleFlush(urgent = true): void {
    if (this.immediateCommit) return;
    if (urgent) {
      clearTimeout(this.lazyCommit);
      this.lazyCommit = undefined;
      this.immediateCommit = setImmediate(() => this.commit());
    } else {
      this.lazyCommit ??= setTimeout(() => this.commit(), ACK_COMMIT_DELAY_MS);
    }
  }

  /** One group commit: every queued append and acknowledgement in one transaction. */
  private commit(): void {
    clearTimeout(this.lazyCommit);
    this.lazyCommit = undefined;
    if (this.immediateCommit) clearImmediate(this.immediateCommit);
    this.immediateCommit = undefined;
    if (this.closed) return;
    const appends = this.appends;
    const acks = this.acks;
    const delivered = this.deliveredAt;
    const waiters = this.flushWaiters;
    this.appends = [];
    this.acks = new Map();
    this.deliveredAt = new Map();
    this.flushWaiters = [];
    const results: AppendResult[] = [];
    try {
      this.db.transaction(() => {
        for (const { message } of appends) {
          const info = this.statements.insertMessage.run(
            message.recipient,
            message.sender,
            message.messageId,
            message.contentType,
            message.body,
            message.receivedAt,
            message.notify ? 1 : 0,
            (message.path ?? []).join(' '),
            message.maxForwards ?? DEFAULT_MAX_FORWARDS,
          );
          if (info.changes > 0) results.push({ id: Number(info.lastInsertRowid), duplicate: false });
          else results.push({ id: this.statements.messageIdOf.get(message.recipient, message.sender, message.messageId)!.id, duplicate: true });
        }
        for (const ack of acks.values()) this.statements.moveCursor.run(ack.recipient, ack.device, ack.id, ack.at);
        for (const [id, at] of delivered) this.statements.delivered.run(at, id);
      })();
    } catch (cause) {
      const error = new StoreError('STORE_WRITE_FAILED', `a commit of ${appends.length} messages failed: ${String(cause)}`, { cause });
      for (const append of appends) {
        this.appendKeys.delete(append.key);
        append.reject(error);
      }
      // Acknowledgements that did not commit are lost: the device gets those messages again.
      for (const id of delivered.keys()) this.firstDeliveries.delete(id);
      for (const waiter of waiters) waiter.reject(error);
      return;
    }
    this.stats.commits++;
    for (const id of delivered.keys()) this.firstDeliveries.delete(id);
    appends.forEach((append, i) => {
      this.appendKeys.delete(append.key);
      if (!results[i]!.duplicate) {
        this.stats.messages++;
        const count = this.storedCounts.get(append.message.recipient);
        if (count !== undefined) this.storedCounts.set(append.message.recipient, count + 1);
        const usage = this.usage.get(append.message.recipient);
        if (usage !== undefined) {
          usage.bytes += append.message.body.length;
          usage.bySender.set(append.message.sender, (usage.bySender.get(append.message.sender) ?? 0) + 1);
        }
      }
      append.resolve(results[i]!);
    });
    for (const waiter of waiters) waiter.resolve();
  }

  /** Databases made before federation lack the relay columns (docs/federation.md): added in place. */
  private migrate(): void {
    const columns = new Set(this.db.prepare<[], { name: string }>('PRAGMA table_info(messages)').all().map((c) => c.name));
    if (!columns.has('path')) this.db.exec("ALTER TABLE messages ADD COLUMN path TEXT NOT NULL DEFAULT ''");
    if (!columns.has('max_forwards')) this.db.exec(`ALTER TABLE messages ADD COLUMN max_forwards INTEGER NOT NULL DEFAULT ${DEFAULT_MAX_FORWARDS}`);
  }

  private ensureOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed');
  }
}

function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    id: row.id,
    recipient: row.recipient,
    sender: row.sender,
    messageId: row.message_id,
    contentType: row.content_type,
    body: row.body,
    receivedAt: row.received_at,
    notify: row.notify === 1,
    path: row.path === '' ? [] : row.path.split(' '),
    maxForwards: row.max_forwards,
  };
}
