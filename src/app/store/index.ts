export { aorOf, displayAor, splitAor, type Aor } from './aor.js';
export { openStore } from './open-store.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
export {
  ACCOUNT_ALGORITHMS,
  type Account,
  type AccountAlgorithm,
  type AccountHashes,
  type AccountStore,
  type AppendResult,
  type DeviceCursor,
  type MailboxUsage,
  type LocationStore as ServerLocationStore,
  type MessageLog,
  type NewMessage,
  type Store,
  type StoredMessage,
} from './store.js';
export { StoreError } from './store-error.js';
