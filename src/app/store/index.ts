export { aorOf, displayAor, splitAor, type Aor } from './aor.js';
export { ACCOUNT_ALGORITHMS, SqliteStore, type Account, type AccountHashes, type AppendResult, type NewMessage, type StoredMessage } from './sqlite-store.js';
export { StoreError } from './store-error.js';
