import type { DigestAlgorithm } from '../../tu/dum/digest.js';
import type { LocationStore as RegistrarLocationStore, StoredBinding } from '../../tu/dum/location-store.js';
import type { Aor } from './aor.js';

// What the Parley server keeps, as interfaces (docs/server.md "Storage"): the server, the
// registrar, the delivery scheduler and the federation are typed on these, never on a database
// class, so another store (PostgreSQL) can sit beside `SqliteStore`. Only the code that opens
// the database (`openStore`) names the class.
//
// Reads are synchronous: the server asks them on every MESSAGE and every delivery round, and
// SQLite answers from the same process. A store over the network would keep what these read
// in memory (it is small: accounts, bindings, cursors, counts) and write through; the writes
// that must be durable before an answer (`append`, `put`) already return promises.

/** The digest algorithms an account keeps an HA1 for (RFC 7616 / RFC 8760), and the only ones a server may offer. */
export const ACCOUNT_ALGORITHMS = ['MD5', 'SHA-256', 'SHA-512-256'] as const satisfies readonly DigestAlgorithm[];
export type AccountAlgorithm = (typeof ACCOUNT_ALGORITHMS)[number];
export type AccountHashes = Record<AccountAlgorithm, string>;

export interface Account {
  aor: Aor;
  /** HA1 = H(user:realm:password) per algorithm, hex; the realm is the AOR's domain. */
  hashes: AccountHashes;
  /** Wall-clock ms (epoch). */
  createdAt: number;
}

/** A message as it is handed to the store: for one recipient, from one sender. */
export interface NewMessage {
  recipient: Aor;
  sender: Aor;
  /** Stable across retries (CPIM imdn.Message-ID, RFC 5438 §6.3): (recipient, sender, messageId) is stored once. */
  messageId: string;
  contentType: string;
  body: Buffer;
  /** Wall-clock ms (epoch) when the server took it, from the server's clock. */
  receivedAt: number;
  /** The sender asked for a positive delivery notification (RFC 5438 §6.3 Disposition-Notification). */
  notify: boolean;
  /** Servers that stored it before us, first to last (federation: docs/federation.md); empty when it came from a user. */
  path?: string[];
  /** Max-Forwards it arrived with (RFC 3261 §16.6 item 3: decremented when forwarded); 70 when absent. */
  maxForwards?: number;
}

export interface StoredMessage extends NewMessage {
  /** Increasing in the recipient's log. */
  id: number;
}

export interface AppendResult {
  id: number;
  duplicate: boolean;
}

/** A device of a recipient as the log knows it: how far it acknowledged, when it was last registered. */
export interface DeviceCursor {
  device: string;
  cursor: number;
  /** Wall-clock ms (epoch). */
  lastSeen: number;
}

/** Users and their digest secrets; the password itself is never kept (RFC 7616 §5.2). */
export interface AccountStore {
  /** `now` (wall-clock ms) defaults to the store's clock. StoreError STORE_ACCOUNT_EXISTS. */
  addAccount(aor: Aor, hashes: AccountHashes, now?: number): void;
  /** StoreError STORE_NO_ACCOUNT. */
  updateAccount(aor: Aor, hashes: AccountHashes): void;
  /** Removes the account with its bindings, devices and messages; false when there was none. */
  removeAccount(aor: Aor): boolean;
  account(aor: Aor): Account | undefined;
  /** Sorted by AOR. */
  accounts(): Account[];
}

/**
 * The location service (RFC 3261 §10.3): what the DUM registrar needs (`get`, and `put` that
 * replaces an AOR's set in one commit), plus what the server needs after a restart.
 */
export interface LocationStore extends RegistrarLocationStore {
  get(aor: string): StoredBinding[];
  put(aor: string, bindings: StoredBinding[]): Promise<void>;
  /** Every AOR with bindings kept, sorted. */
  boundAors(): Aor[];
}

/**
 * Each recipient's message log and each device's cursor in it (docs/server.md "Delivery").
 * `append` resolves only once the message is durable: the 202 waits for it.
 */
export interface MessageLog {
  /** Resolves after the commit, or with the first copy's id (`duplicate`) for a (recipient, sender, messageId) seen before. */
  append(message: NewMessage): Promise<AppendResult>;
  /** Appends waiting for the disk (the server's overload signal). */
  readonly commitBacklog: number;
  /** Up to `limit` messages after the device's cursor, in log order. */
  pending(recipient: Aor, device: string, limit: number): StoredMessage[];
  /** Up to `limit` messages with ids above `afterId`, in log order. */
  after(recipient: Aor, afterId: number, limit: number): StoredMessage[];
  /** Messages kept for the recipient, appends waiting for the disk included (the mailbox quota). */
  stored(recipient: Aor): number;
  /**
   * The recipient's mailbox as the quotas see it, appends waiting for the disk included: messages
   * kept, their body bytes, and how many of them came from `sender` (issue 16: one sender's share).
   * Optional: a store without it is held to the message count only.
   */
  mailbox?(recipient: Aor, sender: Aor): MailboxUsage;
  /** The highest id the device acknowledged (0 for a device never seen). */
  cursor(recipient: Aor, device: string): number;
  /** The device is registered now (a new one starts at cursor 0); `now` defaults to the store's clock. */
  touchDevice(recipient: Aor, device: string, now?: number): void;
  devices(recipient: Aor): DeviceCursor[];
  /** The device acknowledged `id`; `first` when no device had (RFC 5438 §7.1: a notification is due). */
  acknowledge(recipient: Aor, device: string, id: number, now?: number): { first: boolean };
  /** Messages some known device has not acknowledged (all when no device is known). */
  unacknowledged(recipient: Aor): number;
  /** Every recipient with a message kept. */
  recipients(): Aor[];
  /** Deletes what every device acknowledged, and what is older than `retentionMs` before `now` (wall-clock ms); returns how many messages. */
  purge(now: number, retentionMs: number): number;
}

export interface MailboxUsage {
  messages: number;
  bytes: number;
  fromSender: number;
}

/** Everything the Parley server must not lose, behind one object. */
export interface Store extends AccountStore, LocationStore, MessageLog {
  readonly stats: { commits: number; messages: number };
  /** Commits everything queued now. */
  flush(): Promise<void>;
  /** Flushes, then closes; nothing is taken after. */
  close(): Promise<void>;
}
