import {
  DIGEST_HASH_ALGORITHMS,
  DIGEST_HEX_LENGTH,
  DigestError,
  digestHa1,
  digestHashAlgorithm,
  type DigestAlgorithm,
  type DigestHashAlgorithm,
} from './digest.js';

/**
 * Where a `DigestAuthenticator` finds a user's secret. `lookup` answers the base HA1 —
 * H(username ":" realm ":" password) in the hash of `algorithm` (RFC 7616 §3.4.2) — as hex, or
 * undefined for an unknown user. For a `-sess` algorithm it answers the same base HA1 as for the
 * algorithm's hash: the session key is derived from it per request. May return a promise (a
 * database); the authenticator awaits it.
 */
export interface CredentialStore {
  lookup(username: string, realm: string, algorithm: DigestAlgorithm): string | undefined | Promise<string | undefined>;
}

type Ha1Set = Partial<Record<DigestHashAlgorithm, string>>;

/**
 * Credentials in memory, keyed by realm then username (both compared exactly: RFC 7235 §2.2 makes
 * realms case-sensitive, and digest usernames are hashed as written). Only HA1s are kept — one per
 * hash family — so a dump of the store yields nothing that logs in elsewhere without cracking a
 * hash (RFC 7616 §5.2: store the hashed A1, not the password).
 */
export class MemoryCredentialStore implements CredentialStore {
  private readonly realms = new Map<string, Map<string, Ha1Set>>();

  /** Adds or replaces a user: HA1s for MD5, SHA-256 and SHA-512-256 are computed; the password is dropped. */
  add(username: string, realm: string, password: string): void {
    const set: Ha1Set = {};
    for (const family of DIGEST_HASH_ALGORITHMS) set[family] = digestHa1(family, username, realm, password);
    this.users(realm).set(username, set);
  }

  /**
   * Adds HA1s computed elsewhere (provisioning that never sees passwords), merged into the user's
   * existing ones. A `-sess` key stands for its hash family (the same HA1, RFC 7616 §3.4.2); two
   * keys of one family must agree. Each value must be hex of the family's length.
   */
  addHashes(username: string, realm: string, ha1s: Partial<Record<DigestAlgorithm, string>>): void {
    const incoming: Ha1Set = {};
    for (const key of Object.keys(ha1s) as DigestAlgorithm[]) {
      const value = ha1s[key];
      if (value === undefined) continue;
      const family = digestHashAlgorithm(key);
      if (!DIGEST_HASH_ALGORITHMS.includes(family)) {
        throw new DigestError('DIGEST_BAD_CONFIG', `unknown digest algorithm ${String(key)}`);
      }
      const hex = value.toLowerCase();
      if (hex.length !== DIGEST_HEX_LENGTH[family] || !/^[0-9a-f]+$/.test(hex)) {
        throw new DigestError('DIGEST_BAD_CONFIG', `the ${key} HA1 must be ${DIGEST_HEX_LENGTH[family]} hex digits`);
      }
      const earlier = incoming[family];
      if (earlier !== undefined && earlier !== hex) {
        throw new DigestError('DIGEST_BAD_CONFIG', `two different ${family} HA1s given for one user`);
      }
      incoming[family] = hex;
    }
    const users = this.users(realm);
    users.set(username, { ...users.get(username), ...incoming });
  }

  /** Forgets a user in a realm. */
  remove(username: string, realm: string): void {
    const users = this.realms.get(realm);
    if (!users) return;
    users.delete(username);
    if (users.size === 0) this.realms.delete(realm);
  }

  /** The base HA1 of the algorithm's hash family; a `-sess` algorithm gets its base's HA1. */
  lookup(username: string, realm: string, algorithm: DigestAlgorithm): string | undefined {
    return this.realms.get(realm)?.get(username)?.[digestHashAlgorithm(algorithm)];
  }

  private users(realm: string): Map<string, Ha1Set> {
    let users = this.realms.get(realm);
    if (!users) this.realms.set(realm, (users = new Map()));
    return users;
  }
}
