import { parseAuthValue } from '../../message/header-values.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { CredentialStore } from '../../tu/dum/credential-store.js';
import type { DigestAlgorithm } from '../../tu/dum/digest.js';
import { digestHa1 } from '../../tu/dum/digest.js';
import {
  AuthFailureLimiter,
  DigestAuthenticator,
  formatSource,
  type AuthenticateOptions,
  type AuthFailure,
  type AuthLimits,
  type AuthOutcome,
  type RequestAuthenticator,
} from '../../tu/dum/digest-authenticator.js';
import { systemWallClock } from '../../util/wall-clock.js';
import type { Logger } from '../logger.js';
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
  /** Guessing limits per account and per source, shared by every domain; default DEFAULT_AUTH_LIMITS. */
  limits?: Partial<AuthLimits>;
  /** Wrong responses with one nonce before it is retired; default 3. */
  nonceFailureLimit?: number;
  /** Live nonces tracked per domain (503 beyond); default 100,000. */
  maxTrackedNonces?: number;
  /** Where failures and blocks are written (warn), one stable line each (docs/server.md). */
  logger?: Pick<Logger, 'warn'>;
}

/**
 * One digest realm per served domain (an account's realm is its domain): the realm of a request
 * is the domain of its Request-URI for REGISTER (§10.3 step 1), of its From for anything else —
 * unless its credentials are for another of our realms only: then they are judged there, and the
 * outcome names the account that authenticated (user and realm), which the registrar and the
 * intake compare with the AOR acted on (a right password for the wrong account: 403, not 401).
 */
export class DomainAuthenticators implements RequestAuthenticator {
  private readonly byDomain = new Map<string, DigestAuthenticator>();

  constructor(domains: readonly string[], credentials: CredentialStore, options: DomainAuthenticatorOptions = {}) {
    const { secret, clock, nonceFailureLimit, maxTrackedNonces, logger } = options;
    const algorithms = options.algorithms === undefined ? undefined : [...options.algorithms];
    // Lines fail2ban-style tools match (docs/server.md, ServerConfig); never the password.
    const limiter = new AuthFailureLimiter(options.limits ?? {}, clock ?? systemWallClock, (kind, key, failures, forMs) =>
      logger?.warn(`auth blocked ${kind} ${key} for ${Math.ceil(forMs / 1000)} s after ${failures} failures`),
    );
    const onFailure = logger === undefined ? undefined : (f: AuthFailure): void =>
      logger.warn(`auth failure for ${f.username}@${f.realm} from ${formatSource(f.source)} (${f.reason})`);
    for (const domain of domains) {
      this.byDomain.set(domain.toLowerCase(), new DigestAuthenticator({ realm: domain, credentials, secret, algorithms, clock, limiter, onFailure, nonceFailureLimit, maxTrackedNonces }));
    }
  }

  forDomain(domain: string): DigestAuthenticator | undefined {
    return this.byDomain.get(domain.toLowerCase());
  }

  authenticate(request: SipMessage, options?: AuthenticateOptions): Promise<AuthOutcome> {
    const domain = request.method === 'REGISTER' ? request.requestUri.host : request.from.uri.host;
    let authenticator = this.forDomain(domain);
    const realms = credentialRealms(request, options?.proxy === true ? 'proxy-authorization' : 'authorization');
    if (authenticator === undefined || !realms.includes(authenticator.realm)) {
      // The realm must be ours exactly as challenged: the authenticator compares it as text.
      authenticator = realms.map((r) => this.byDomain.get(r.toLowerCase())).find((a, i) => a !== undefined && a.realm === realms[i]) ?? authenticator;
    }
    authenticator ??= this.byDomain.values().next().value!;
    return authenticator.authenticate(request, options);
  }
}

/** The realms a request's digest credentials name (unreadable ones skipped). */
function credentialRealms(request: SipMessage, header: 'authorization' | 'proxy-authorization'): string[] {
  const realms: string[] = [];
  for (const text of request.headers(header)) {
    try {
      const value = parseAuthValue(text, header);
      if (value.scheme.toLowerCase() === 'digest' && value.params.realm !== undefined) realms.push(value.params.realm);
    } catch {
      // unreadable: the authenticator judges it
    }
  }
  return realms;
}
