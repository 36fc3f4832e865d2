import { randomFillSync } from 'node:crypto';

/**
 * Cryptographically random identifiers (tags, branches, Call-IDs). Bytes are drawn from the
 * CSPRNG in 4 KiB batches: one `randomFillSync` per identifier would cost more than the rest of
 * building a request.
 */
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

// 64 symbols: every one is a token character (RFC 3261 §25.1), so the output needs no quoting
// anywhere a tag, branch or Call-ID goes.
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.';

/** A random token of `length` characters, 6 bits of entropy each. */
export function randomToken(length: number): string {
  if (poolOffset + length > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[pool[poolOffset + i]! & 63];
  poolOffset += length;
  return out;
}
