import { systemWallClock } from '../../util/wall-clock.js';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { formatHostPort } from '../../transport/address.js';
import type { Tuple } from '../../transport/types.js';
import { createResponse } from '../../message/builder.js';
import { parseAuthValue, type AuthValue } from '../../message/header-values.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { Clock } from '../../util/clock.js';

import type { CredentialStore } from './credential-store.js';
import {
  DIGEST_ALGORITHMS,
  DIGEST_HEX_LENGTH,
  DigestError,
  digestHashAlgorithm,
  digestResponse,
  formatDigestChallenge,
  isQuotable,
  parseDigestAlgorithm,
  type DigestAlgorithm,
  type DigestQop,
} from './digest.js';

export interface DigestAuthenticatorOptions {
  realm: string;
  credentials: CredentialStore;
  /** Challenge order = preference (RFC 8760 §2.3); default ['SHA-512-256', 'SHA-256', 'MD5']. */
  algorithms?: DigestAlgorithm[];
  /** Default ['auth']. */
  qop?: DigestQop[];
  /** Default 300. */
  nonceLifetimeSec?: number;
  /** The HMAC key nonces are signed with; default 32 random bytes per instance. */
  secret?: Uint8Array;
  /**
   * Live nonces whose state (highest nc, failures) is remembered; default 100,000. A live nonce's
   * state is never evicted (RFC 7616 §5.5: forgetting its nc would re-open replay): it goes when
   * the nonce expires, and while the table is full of live nonces a new one is refused (503).
   */
  maxTrackedNonces?: number;
  /** Wrong responses with one nonce after which it is retired (a new challenge); default 3. */
  nonceFailureLimit?: number;
  /** Counts failures per account and source and refuses them for a while (403); none by default. */
  limiter?: AuthFailureLimiter;
  /** Told of every wrong response (a guess): user, realm, source and why, for logs. */
  onFailure?: (failure: AuthFailure) => void;
  /** Gives nonces their issued-at time; default wall-clock time, so that servers sharing a
   *  `secret` (or one restarted with it) agree on a nonce's age. */
  clock?: Pick<Clock, 'now'>;
}

export type AuthOutcome =
  | { ok: true; username: string; realm: string; algorithm: DigestAlgorithm }
  | { ok: false; status: 401 | 407 | 400 | 403 | 503; response: SipMessage; reason: string };

export interface AuthenticateOptions {
  /** Proxy authentication: 407, Proxy-Authenticate, Proxy-Authorization (RFC 3261 §22.3). */
  proxy?: boolean;
  /** Where the request came from: failures are counted per source address too. */
  source?: Tuple;
}

/** A wrong response to a challenge: someone guessed. `reason` is 'wrong password' or 'unknown user'. */
export interface AuthFailure {
  username: string;
  realm: string;
  source: Tuple | undefined;
  reason: string;
}

/** `PROTO:HOST:PORT` of a source, `unknown` without one (the form log lines use). */
export function formatSource(source: Tuple | undefined): string {
  return source === undefined ? 'unknown' : `${source.protocol}:${formatHostPort(source.address, source.port)}`;
}

export interface AuthLimits {
  /** Failures of one account (user@realm) within `windowMs` that block it; default 5. */
  accountFailures: number;
  /** Failures from one source address (any port, any account) within `windowMs` that block it; default 20. */
  sourceFailures: number;
  /** Default 60,000 ms. */
  windowMs: number;
  /** How long a block lasts; default 60,000 ms. */
  backoffMs: number;
  /** Accounts and sources counted at once (LRU); default 100,000. */
  maxTracked: number;
}

export const DEFAULT_AUTH_LIMITS: Readonly<AuthLimits> = Object.freeze({ accountFailures: 5, sourceFailures: 20, windowMs: 60_000, backoffMs: 60_000, maxTracked: 100_000 });

interface FailureCount {
  count: number;
  since: number;
  blockedUntil: number;
}

/**
 * Online guessing's brake (issue 16): wrong responses are counted per account and per source
 * address in a window; at the limit the account (or the source) is refused for `backoffMs`, with
 * 403 and Retry-After, whether its next guess is right or not. A success resets the account.
 * Shared by the authenticators of several realms, so a source's count spans all of them.
 */
export class AuthFailureLimiter {
  readonly limits: Readonly<AuthLimits>;
  private readonly accounts: LRUCache<string, FailureCount>;
  private readonly sources: LRUCache<string, FailureCount>;

  constructor(
    limits: Partial<AuthLimits>,
    private readonly clock: Pick<Clock, 'now'>,
    /** Told when an account or a source becomes blocked (once per block). */
    private readonly onBlocked?: (kind: 'account' | 'source', key: string, failures: number, forMs: number) => void,
  ) {
    this.limits = { ...DEFAULT_AUTH_LIMITS, ...limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isInteger(value) || value < 1) throw new DigestError('DIGEST_BAD_CONFIG', `${name} must be a positive integer`);
    }
    this.accounts = new LRUCache({ max: this.limits.maxTracked });
    this.sources = new LRUCache({ max: this.limits.maxTracked });
  }

  /** Milliseconds the account or the source is still refused, 0 when neither is. */
  blockedFor(account: string, source: string | undefined): number {
    const now = this.clock.now();
    const a = this.accounts.get(account)?.blockedUntil ?? 0;
    const s = source === undefined ? 0 : (this.sources.get(source)?.blockedUntil ?? 0);
    return Math.max(0, a - now, s - now);
  }

  failed(account: string, source: string | undefined): void {
    this.count(this.accounts, 'account', account, this.limits.accountFailures);
    if (source !== undefined) this.count(this.sources, 'source', source, this.limits.sourceFailures);
  }

  succeeded(account: string): void {
    this.accounts.delete(account);
  }

  private count(table: LRUCache<string, FailureCount>, kind: 'account' | 'source', key: string, limit: number): void {
    const now = this.clock.now();
    let entry = table.get(key);
    if (!entry || now - entry.since > this.limits.windowMs) entry = { count: 0, since: now, blockedUntil: entry?.blockedUntil ?? 0 };
    entry.count++;
    if (entry.count >= limit) {
      entry.blockedUntil = now + this.limits.backoffMs;
      this.onBlocked?.(kind, key, entry.count, this.limits.backoffMs);
      entry.count = 0;
      entry.since = now;
    }
    table.set(key, entry);
  }
}

interface NonceState {
  /** Highest nc accepted, 0 before the first. */
  highest: number;
  /** The user it authenticated (its first accepted request). */
  username: string | undefined;
  failures: number;
  /** When the nonce stops being accepted (then its state may go). */
  expiresAt: number;
}

/** What checks a request's credentials: a `DigestAuthenticator`, or several behind one (a realm per domain). */
export interface RequestAuthenticator {
  authenticate(request: SipMessage, options?: AuthenticateOptions): Promise<AuthOutcome>;
}

export interface ChallengeOptions extends AuthenticateOptions {
  /** The credentials were right but the nonce too old (RFC 7616 §3.3 "stale"). */
  stale?: boolean;
}

const DEFAULT_ALGORITHMS: DigestAlgorithm[] = ['SHA-512-256', 'SHA-256', 'MD5'];
const DEFAULT_QOP: DigestQop[] = ['auth'];

// Nonce layout (docs/dum.md): issued-at seconds (8 bytes, big-endian) ‖ 12 random bytes ‖ the
// first 16 bytes of HMAC-SHA-256(secret, those 20 bytes ‖ realm); base64url without padding.
const STAMP_BYTES = 8;
const RANDOM_BYTES = 12;
const SIGNED_BYTES = STAMP_BYTES + RANDOM_BYTES;
const MAC_BYTES = 16;
const NONCE_BYTES = SIGNED_BYTES + MAC_BYTES;
const NONCE_CHARS = Math.ceil((NONCE_BYTES * 8) / 6);
const NONCE_PATTERN = new RegExp(`^[A-Za-z0-9_-]{${NONCE_CHARS}}$`);

/** Reasons in outcomes: stable strings for logs, never telling an unknown user from a wrong password. */
const REFUSED = 'credentials refused';

/**
 * The UAS / proxy side of digest authentication (RFC 3261 §22, RFC 7616, RFC 8760). Nonces are
 * self-verifying (an HMAC over their issue time), so challenges keep no state; the only state is
 * per nonce used: the highest nonce count accepted, for replay detection (RFC 7616 §5.5), and its
 * wrong responses (retired after `nonceFailureLimit`). It lives as long as the nonce and no
 * longer; it is never evicted by other nonces (a full table refuses new nonces with 503).
 * ACK and CANCEL must not be challenged (RFC 3261 §22.1): callers do not pass them here.
 */
export class DigestAuthenticator {
  readonly realm: string;
  private readonly credentials: CredentialStore;
  private readonly algorithms: readonly DigestAlgorithm[];
  private readonly qop: readonly DigestQop[];
  private readonly lifetimeMs: number;
  private readonly secret: Buffer;
  private readonly clock: Pick<Clock, 'now'>;
  /** Live nonces' state: never evicted while the nonce is live (see maxTrackedNonces). */
  private readonly nonces = new Map<string, NonceState>();
  private readonly maxTracked: number;
  private readonly nonceFailureLimit: number;
  private readonly limiter: AuthFailureLimiter | undefined;
  private readonly onFailure: ((failure: AuthFailure) => void) | undefined;
  private lastSweep = -Infinity;
  private readonly opaque: string;

  constructor(options: DigestAuthenticatorOptions) {
    if (options.realm.length === 0 || !isQuotable(options.realm)) {
      throw new DigestError('DIGEST_BAD_CONFIG', 'the realm must be non-empty without CR or LF');
    }
    const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
    if (algorithms.length === 0 || new Set(algorithms).size !== algorithms.length || algorithms.some((a) => !DIGEST_ALGORITHMS.includes(a))) {
      // RFC 8760 §2.3: several challenges for one realm must each use a different algorithm.
      throw new DigestError('DIGEST_BAD_CONFIG', 'algorithms must be a non-empty list of distinct digest algorithms');
    }
    const qop = options.qop ?? DEFAULT_QOP;
    if (qop.length === 0 || new Set(qop).size !== qop.length || qop.some((q) => q !== 'auth' && q !== 'auth-int')) {
      // RFC 8760 §2.6 item 8: a UAS MUST always send a qop.
      throw new DigestError('DIGEST_BAD_CONFIG', "qop must be a non-empty list of distinct 'auth' / 'auth-int'");
    }
    const lifetime = options.nonceLifetimeSec ?? 300;
    if (!(lifetime > 0) || !Number.isFinite(lifetime)) throw new DigestError('DIGEST_BAD_CONFIG', 'nonceLifetimeSec must be positive');
    const tracked = options.maxTrackedNonces ?? 100_000;
    if (!Number.isInteger(tracked) || tracked < 1) throw new DigestError('DIGEST_BAD_CONFIG', 'maxTrackedNonces must be a positive integer');
    if (options.secret !== undefined && options.secret.length < 16) {
      throw new DigestError('DIGEST_BAD_CONFIG', 'the secret must be at least 16 bytes');
    }
    this.realm = options.realm;
    this.credentials = options.credentials;
    this.algorithms = [...algorithms];
    this.qop = [...qop];
    this.lifetimeMs = lifetime * 1000;
    this.secret = Buffer.from(options.secret ?? randomBytes(32));
    // Milliseconds since the epoch: nonce ages must mean the same in every process.
    this.clock = options.clock ?? systemWallClock;
    this.maxTracked = tracked;
    const nonceFailures = options.nonceFailureLimit ?? 3;
    if (!Number.isInteger(nonceFailures) || nonceFailures < 1) throw new DigestError('DIGEST_BAD_CONFIG', 'nonceFailureLimit must be a positive integer');
    this.nonceFailureLimit = nonceFailures;
    this.limiter = options.limiter;
    this.onFailure = options.onFailure;
    // The opaque is echoed by clients (RFC 7616 §3.3) but proves nothing here — the nonce carries
    // the MAC — so one value per instance and realm will do.
    this.opaque = this.mac(Buffer.from('opaque', 'utf8')).subarray(0, 12).toString('base64url');
  }

  /**
   * Checks the request's credentials for our realm (RFC 7616 §3.4, RFC 3261 §22.2–22.4). When
   * several are for our realm (a forked request, RFC 3261 §22.3), the first accepted wins;
   * otherwise the outcome of the most telling refusal is returned: a stale challenge, else a
   * 400, else a plain challenge.
   */
  async authenticate(request: SipMessage, options: AuthenticateOptions = {}): Promise<AuthOutcome> {
    const header = options.proxy ? 'proxy-authorization' : 'authorization';
    const ours: AuthValue[] = [];
    for (const text of request.headers(header)) {
      let value: AuthValue;
      try {
        value = parseAuthValue(text, header);
      } catch {
        continue; // unreadable: its realm cannot be known, so it cannot be ours to judge
      }
      // RFC 3261 §22.3: credentials for another realm are not ours to consume.
      if (value.scheme.toLowerCase() === 'digest' && value.params.realm === this.realm) ours.push(value);
    }
    if (ours.length === 0) return this.refuse(request, options, 'no credentials', false);

    let best: Refusal | undefined;
    for (const value of ours) {
      const verdict = await this.check(request, value, options.source);
      if (verdict.kind === 'ok') {
        return { ok: true, username: verdict.username, realm: this.realm, algorithm: verdict.algorithm };
      }
      if (!best || RANK[verdict.kind] < RANK[best.kind]) best = verdict;
    }
    const verdict = best!;
    if (verdict.kind === 'bad') {
      return { ok: false, status: 400, response: createResponse(request, 400), reason: verdict.reason };
    }
    if (verdict.kind === 'blocked' || verdict.kind === 'busy') {
      const status = verdict.kind === 'blocked' ? 403 : 503;
      const phrase = verdict.kind === 'blocked' ? 'Too Many Failed Attempts' : 'Too Many Live Nonces';
      const response = createResponse(request, status, phrase, { headers: { 'Retry-After': String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000))) } });
      return { ok: false, status, response, reason: verdict.reason };
    }
    return this.refuse(request, options, verdict.reason, verdict.kind === 'stale');
  }

  /**
   * A 401 (or 407 with `proxy`) carrying one challenge per algorithm, most preferred first
   * (RFC 8760 §2.3), each with realm, a fresh nonce, opaque, algorithm and qop (RFC 7616 §3.3),
   * and stale=true when asked.
   */
  challenge(request: SipMessage, options: ChallengeOptions = {}): SipMessage {
    const response = createResponse(request, options.proxy ? 407 : 401);
    const nonce = this.issueNonce();
    const header = options.proxy ? 'Proxy-Authenticate' : 'WWW-Authenticate';
    for (const algorithm of this.algorithms) {
      response.addHeader(
        header,
        formatDigestChallenge({
          realm: this.realm,
          nonce,
          opaque: this.opaque,
          algorithm,
          qop: this.qop,
          stale: options.stale === true,
        }),
      );
    }
    return response;
  }

  private refuse(request: SipMessage, options: AuthenticateOptions, reason: string, stale: boolean): AuthOutcome {
    return {
      ok: false,
      status: options.proxy ? 407 : 401,
      response: this.challenge(request, { proxy: options.proxy === true, stale }),
      reason,
    };
  }

  /** One credential, judged in an order that tells an attacker nothing before the response is checked. */
  private async check(request: SipMessage, credential: AuthValue, source: Tuple | undefined): Promise<Verdict> {
    const p = credential.params;
    const { username, nonce, uri, response } = p;
    // RFC 7616 §3.4: "If a parameter or its value is improper, or required parameters are
    // missing, the proper response is a 4xx error code" — 400 here.
    if (username === undefined || nonce === undefined || uri === undefined || response === undefined) {
      return bad('missing digest parameter');
    }
    if (p['userhash']?.toLowerCase() === 'true') return bad('userhash was not offered'); // RFC 7616 §3.4.4
    const algorithm = parseDigestAlgorithm(p.algorithm);
    if (!algorithm || !this.algorithms.includes(algorithm)) return bad('algorithm not offered');
    // Every challenge asks for a qop (RFC 8760 §2.6 item 8), so credentials without one answer
    // something we never sent (RFC 2069 style): a new challenge, not a 400.
    if (p.qop === undefined) return { kind: 'refused', reason: 'credentials without qop' };
    const qop = p.qop.toLowerCase();
    // RFC 7616 §3.4 "qop": "MUST be one of the alternatives the server indicated".
    if (!this.qop.includes(qop as DigestQop)) return bad('qop not offered');
    const { nc, cnonce } = p;
    if (nc === undefined || cnonce === undefined) return bad('qop without nc or cnonce');
    if (!/^[0-9a-fA-F]{8}$/.test(nc)) return bad('nc is not 8 hex digits');
    const count = parseInt(nc, 16);
    if (count === 0) return bad('nc is zero');
    // RFC 7616 §3.4.6: the uri must designate the Request-URI, else "400 Bad Request". Compared
    // as text: the response was computed over these exact characters.
    if (uri !== request.requestUriText) return bad('uri does not match the Request-URI');

    const issuedMs = this.verifyNonce(nonce);
    if (issuedMs === undefined) return { kind: 'refused', reason: 'invalid nonce' };

    // Guessing: a retired nonce gets a new challenge; a blocked account or source is refused
    // before its response is looked at, so a right guess then tells nothing. A nonce that already
    // authenticated this very user (a device's refresh) is not held back by a block.
    const state = this.nonces.get(nonce);
    if (state && state.failures >= this.nonceFailureLimit) return { kind: 'refused', reason: 'nonce retired' };
    const account = `${username}@${this.realm}`;
    const from = source?.address;
    if (this.limiter && state?.username !== username) {
      const left = this.limiter.blockedFor(account, from);
      if (left > 0) return { kind: 'blocked', reason: 'too many failed attempts', retryAfterMs: left };
    }

    const stored = await this.credentials.lookup(username, this.realm, algorithm);
    const family = digestHashAlgorithm(algorithm);
    // An unknown user gets the same work and the same answer as a wrong password, so neither the
    // response nor its timing tells valid usernames apart; the stand-in HA1 matches nothing.
    const ha1 = stored?.toLowerCase() ?? '0'.repeat(DIGEST_HEX_LENGTH[family]);
    const expected = digestResponse({
      algorithm,
      ha1,
      nonce,
      method: request.method,
      uri,
      qop: qop as DigestQop,
      nc,
      cnonce,
      body: request.body,
    });
    if (!sameText(expected, response.toLowerCase()) || stored === undefined) {
      this.failed(nonce, issuedMs, state, account, source, { username, realm: this.realm, source, reason: stored === undefined ? 'unknown user' : 'wrong password' });
      return { kind: 'refused', reason: REFUSED };
    }

    // RFC 7616 §3.3 "stale": the response was right, only the nonce has aged. A stamp ahead of
    // our clock (another process sharing the secret) is treated the same: a new nonce fixes both.
    const age = this.clock.now() - issuedMs;
    if (age > this.lifetimeMs || age < -1000) return { kind: 'stale', reason: 'stale nonce' };

    // RFC 7616 §5.5 / §3.4 "nc": a count seen before (or lower) is a replay. Only accepted
    // requests move the count, so a forged one cannot burn counts of the real client.
    if (state && count <= state.highest) return { kind: 'refused', reason: 'nonce count replayed' };
    if (state) {
      state.highest = count;
      state.username ??= username;
    } else {
      if (!this.room()) return { kind: 'busy', reason: 'nonce table full', retryAfterMs: 1000 };
      this.nonces.set(nonce, { highest: count, username, failures: 0, expiresAt: issuedMs + this.lifetimeMs });
    }
    this.limiter?.succeeded(account);
    return { kind: 'ok', username, algorithm };
  }

  /** Live nonces tracked now (their nc and failures). */
  get trackedNonces(): number {
    return this.nonces.size;
  }

  /** A wrong response: counted for the nonce (retired at the limit), the account and the source. */
  private failed(nonce: string, issuedMs: number, state: NonceState | undefined, account: string, source: Tuple | undefined, failure: AuthFailure): void {
    if (state) state.failures++;
    else if (this.room()) this.nonces.set(nonce, { highest: 0, username: undefined, failures: 1, expiresAt: issuedMs + this.lifetimeMs });
    this.limiter?.failed(account, source?.address);
    this.onFailure?.(failure);
  }

  /** Whether a new nonce's state fits: expired ones are swept (at most once a second) when full. */
  private room(): boolean {
    if (this.nonces.size < this.maxTracked) return true;
    const now = this.clock.now();
    if (now - this.lastSweep >= 1000) {
      this.lastSweep = now;
      for (const [nonce, state] of this.nonces) if (state.expiresAt < now) this.nonces.delete(nonce);
    }
    return this.nonces.size < this.maxTracked;
  }

  private issueNonce(): string {
    const nonce = Buffer.alloc(NONCE_BYTES);
    const seconds = Math.max(0, Math.floor(this.clock.now() / 1000));
    nonce.writeBigUInt64BE(BigInt(seconds), 0);
    randomBytes(RANDOM_BYTES).copy(nonce, STAMP_BYTES);
    this.mac(nonce.subarray(0, SIGNED_BYTES)).copy(nonce, SIGNED_BYTES, 0, MAC_BYTES);
    return nonce.toString('base64url');
  }

  /** The issue time (clock milliseconds) of a nonce we made, undefined for anything else. */
  private verifyNonce(nonce: string): number | undefined {
    if (!NONCE_PATTERN.test(nonce)) return undefined;
    const bytes = Buffer.from(nonce, 'base64url');
    if (bytes.length !== NONCE_BYTES) return undefined;
    const mac = this.mac(bytes.subarray(0, SIGNED_BYTES)).subarray(0, MAC_BYTES);
    if (!timingSafeEqual(mac, bytes.subarray(SIGNED_BYTES))) return undefined;
    return Number(bytes.readBigUInt64BE(0)) * 1000;
  }

  /** HMAC-SHA-256(secret, data ‖ realm): binding the realm keeps one realm's nonces out of another's. */
  private mac(data: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(data).update(this.realm, 'utf8').digest();
  }
}

type Refusal = { kind: 'stale' | 'bad' | 'refused'; reason: string } | { kind: 'blocked' | 'busy'; reason: string; retryAfterMs: number };
type Verdict = { kind: 'ok'; username: string; algorithm: DigestAlgorithm } | Refusal;

/** Which refusal to report when several credentials for our realm all fail. */
const RANK: Record<Refusal['kind'], number> = { blocked: 0, busy: 1, stale: 2, bad: 3, refused: 4 };

function bad(reason: string): Refusal {
  return { kind: 'bad', reason };
}

/** Constant-time comparison of two ASCII strings (RFC 7616 §5: no timing oracle on the response). */
function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
