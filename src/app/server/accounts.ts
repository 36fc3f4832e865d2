import type { SipMessage } from '../../message/sip-message.js';
import type { CredentialStore } from '../../tu/dum/credential-store.js';
import type { DigestAlgorithm } from '../../tu/dum/digest.js';
import { digestHa1 } from '../../tu/dum/digest.js';
import { DigestAuthenticator, type AuthenticateOptions, type AuthOutcome, type RequestAuthenticator } from '../../tu/dum/digest-authenticator.js';
import { splitAor, type Aor } from '../store/aor.js';
import { ACCOUNT_ALGORITHMS, type AccountAlgorithm, type AccountHashes, type AccountStore } from '../store/store.js';
import type { WallClock } from '../wall-clock.js';

/**
 * HA1 per algorithm for an account; the realm is the AOR's domain. The password is not kept.
 * Every algorithm a server may be configured to offer (`digestAlgorithms`) gets one, so an
 * account answers whatever order a server is given.
 */
export function accountHashes(aor: Aor, password: string): AccountHashes {
  const { user, domain } = splitAor(aor);
  const hashes = {} as AccountHashes;
  for (const algorithm of ACCOUNT_ALGORITHMS) hashes[algorithm] = digestHa1(algorithm, user, domain, password);
  return hashes;
}

/** The digest credential store over the accounts table: `user@realm` is the account. */
export class AccountCredentials implements CredentialStore {
  constructor(private readonly store: Pick<AccountStore, 'account'>) {}

  lookup(username: string, realm: string, algorithm: DigestAlgorithm): string | undefined {
    const account = this.store.account(`sip:${username}@${realm.toLowerCase()}`);
    // RFC 7616 §3.4.2: a -sess HA1 is derived from the plain one, which is what is stored.
    const base = algorithm.replace(/-sess$/i, '') as keyof AccountHashes;
    return account?.hashes[base];
  }
}

export interface DomainAuthenticatorOptions {
  /** Challenge order = preference (RFC 8760 §2.3); default the DUM's (SHA-512-256, SHA-256, MD5). */
  algorithms?: readonly AccountAlgorithm[];
  /** Nonce times (RFC 7616 §3.3 stale); default the DUM's wall clock. */
  clock?: WallClock;
  /** The nonce key; default random per authenticator. */
  secret?: Uint8Array;
}

/**
 * One digest realm per served domain (an account's realm is its domain): the realm of a request
 * is the domain of its Request-URI for REGISTER (§10.3 step 1), of its From for anything else.
 */
export class DomainAuthenticators implements RequestAuthenticator {
  private readonly byDomain = new Map<string, DigestAuthenticator>();

  constructor(domains: readonly string[], credentials: CredentialStore, options: DomainAuthenticatorOptions = {}) {
    const { secret, clock } = options;
    const algorithms = options.algorithms === undefined ? undefined : [...options.algorithms];
    for (const domain of domains) this.byDomain.set(domain.toLowerCase(), new DigestAuthenticator({ realm: domain, credentials, secret, algorithms, clock }));
  }

  forDomain(domain: string): DigestAuthenticator | undefined {
    return this.byDomain.get(domain.toLowerCase());
  }

  authenticate(request: SipMessage, options?: AuthenticateOptions): Promise<AuthOutcome> {
    const domain = request.method === 'REGISTER' ? request.requestUri.host : request.from.uri.host;
    const authenticator = this.forDomain(domain) ?? this.byDomain.values().next().value!;
    return authenticator.authenticate(request, options);
  }
}
