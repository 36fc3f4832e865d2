import { createHash } from 'node:crypto';
import { ParleyError } from '../../util/errors.js';

/**
 * The digest primitives shared by `DigestClient` and `DigestAuthenticator`: the hash algorithms of
 * the IANA "Hash Algorithms for HTTP Digest Authentication" registry that SIP uses (RFC 7616 §6.1,
 * RFC 8760 §2.1), the response computation (RFC 7616 §3.4.1–3.4.3, RFC 2069 for challenges without
 * qop), and the header-value formatting of challenges and credentials (RFC 7616 §3.3, §3.4).
 */

export type DigestAlgorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess' | 'SHA-512-256' | 'SHA-512-256-sess';

/** The hash behind an algorithm: `<algorithm>` and `<algorithm>-sess` share it (RFC 7616 §3.3). */
export type DigestHashAlgorithm = 'MD5' | 'SHA-256' | 'SHA-512-256';

/** The quality-of-protection values this stack computes (RFC 7616 §3.3 "qop"). */
export type DigestQop = 'auth' | 'auth-int';

/**
 * Every algorithm, strongest first. A session variant is as strong as its base and follows it;
 * a client choosing among offers of equal strength keeps the server's order (RFC 8760 §2.4).
 */
export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = [
  'SHA-512-256',
  'SHA-512-256-sess',
  'SHA-256',
  'SHA-256-sess',
  'MD5',
  'MD5-sess',
];

/** The hash families, strongest first (what a credential store keeps one HA1 for). */
export const DIGEST_HASH_ALGORITHMS: readonly DigestHashAlgorithm[] = ['SHA-512-256', 'SHA-256', 'MD5'];

export type DigestErrorCode =
  /** A value cannot be put into a header (CR/LF in a quoted-string) or hashed as asked. */
  | 'DIGEST_BAD_VALUE'
  /** Options, credentials or stored hashes that cannot work (checked when they are given). */
  | 'DIGEST_BAD_CONFIG';

/** A digest input the module cannot use; thrown when it is given, never for what a peer sends. */
export class DigestError extends ParleyError {
  override readonly code: DigestErrorCode;

  constructor(code: DigestErrorCode, message: string) {
    super(code, message);
    this.code = code;
  }
}

// Node's names for the hashes; 'sha512-256' is FIPS 180-4 SHA-512/256 (its own initial values,
// not a truncated SHA-512), which is what RFC 7616 §6.1's "SHA-512-256" names.
const NODE_HASH: Record<DigestHashAlgorithm, string> = {
  MD5: 'md5',
  'SHA-256': 'sha256',
  'SHA-512-256': 'sha512-256',
};

/** Hex digits in an HA1 or response of each family (RFC 8760 §2.2: 64 for the SHA-2 ones). */
export const DIGEST_HEX_LENGTH: Record<DigestHashAlgorithm, number> = {
  MD5: 32,
  'SHA-256': 64,
  'SHA-512-256': 64,
};

const BY_UPPER = new Map<string, DigestAlgorithm>(DIGEST_ALGORITHMS.map((a) => [a.toUpperCase(), a]));

/**
 * The algorithm an `algorithm` parameter names; absent means MD5 (RFC 7616 §3.3 "If this is not
 * present, it is assumed to be MD5"). Tokens are matched without regard to case, as the registry's
 * names are tokens and deployed peers write `md5-sess` and `MD5-sess` alike. Undefined for an
 * algorithm this module does not know: the caller ignores that challenge (RFC 7616 §3.3,
 * RFC 8760 §2.4).
 */
export function parseDigestAlgorithm(token: string | undefined): DigestAlgorithm | undefined {
  if (token === undefined) return 'MD5';
  return BY_UPPER.get(token.trim().toUpperCase());
}

/** The hash an algorithm uses: `SHA-256-sess` → `SHA-256` (RFC 7616 §3.3 "For <algorithm> and <algorithm>-sess"). */
export function digestHashAlgorithm(algorithm: DigestAlgorithm): DigestHashAlgorithm {
  return (algorithm.endsWith('-sess') ? algorithm.slice(0, -'-sess'.length) : algorithm) as DigestHashAlgorithm;
}

/** True for the `-sess` variants, whose A1 mixes in the nonce and cnonce (RFC 7616 §3.4.2). */
export function isSessionAlgorithm(algorithm: DigestAlgorithm): boolean {
  return algorithm.endsWith('-sess');
}

/** Rank for choosing among offers: lower is stronger; a session variant ranks with its base. */
export function digestStrength(algorithm: DigestAlgorithm): number {
  return DIGEST_HASH_ALGORITHMS.indexOf(digestHashAlgorithm(algorithm));
}

/**
 * H(data) of RFC 7616 §3.3 as lowercase hex (RFC 7616 §3.2, RFC 8760 §2.2). Strings are hashed as
 * UTF-8 (RFC 7616 §4); bytes (an entity body for auth-int) as they are.
 */
export function digestHash(algorithm: DigestAlgorithm, data: string | Uint8Array): string {
  const hash = createHash(NODE_HASH[digestHashAlgorithm(algorithm)]);
  hash.update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  return hash.digest('hex');
}

/**
 * The stored secret: H(unq(username) ":" unq(realm) ":" passwd), A1 of the non-session variant
 * (RFC 7616 §3.4.2). For a `-sess` algorithm this is the same value — the session key
 * H(HA1 ":" nonce ":" cnonce) is derived from it per request by `digestResponse`, so one stored
 * HA1 per hash family serves both variants.
 */
export function digestHa1(algorithm: DigestAlgorithm, username: string, realm: string, password: string): string {
  return digestHash(algorithm, `${username}:${realm}:${password}`);
}

export interface DigestResponseInput {
  algorithm: DigestAlgorithm;
  /** The base HA1 (`digestHa1`), lowercase hex; for `-sess` the session key is derived here. */
  ha1: string;
  /** The server's nonce, unquoted. */
  nonce: string;
  /** The request method (A2's "Method", RFC 7616 §3.4.6; SIP: the Request-Line method). */
  method: string;
  /** The digest-uri: the Request-URI as written (RFC 3261 §22.4 item 3, RFC 8760 §2.6 item 3). */
  uri: string;
  /** Undefined only for a challenge that carried no qop (RFC 2069 compatibility, RFC 3261 §22.4). */
  qop?: DigestQop;
  /** Nonce count, 8 hex digits (required with qop). */
  nc?: string;
  /** Client nonce (required with qop and with every `-sess` algorithm). */
  cnonce?: string;
  /** The message body, for auth-int; absent means empty. */
  body?: string | Uint8Array;
}

/** The `response` parameter value (lowercase hex) for the given inputs. */
export function digestResponse(input: DigestResponseInput): string {
  const { algorithm, nonce, qop, nc, cnonce } = input;
  const H = (data: string | Uint8Array): string => digestHash(algorithm, data);
  let ha1 = input.ha1.toLowerCase();
  if (isSessionAlgorithm(algorithm)) {
    // RFC 7616 §3.4.2: A1 = H(username:realm:passwd) ":" nonce-prime ":" cnonce-prime, so
    // H(A1) = H(HA1:nonce:cnonce). RFC 3261 §22.4 item 8: no cnonce without qop, hence no -sess.
    if (cnonce === undefined || qop === undefined) {
      throw new DigestError('DIGEST_BAD_VALUE', `${algorithm} needs a qop and a cnonce (RFC 3261 §22.4 item 8)`);
    }
    ha1 = H(`${ha1}:${nonce}:${cnonce}`);
  }
  if (qop === undefined) {
    // RFC 2069 §2.1.2 (kept by RFC 2617 §3.2.2.1 for compatibility): request-digest =
    // KD(H(A1), nonce ":" H(A2)) with A2 = Method ":" digest-uri.
    return H(`${ha1}:${nonce}:${H(`${input.method}:${input.uri}`)}`);
  }
  if (nc === undefined || cnonce === undefined) {
    throw new DigestError('DIGEST_BAD_VALUE', 'qop needs a nonce count and a cnonce (RFC 7616 §3.4)');
  }
  // RFC 7616 §3.4.3: auth → A2 = Method ":" request-uri; auth-int → A2 also carries
  // H(entity-body), which for an empty SIP body is H("") (RFC 8760 §2.6 item 7).
  const a2 =
    qop === 'auth-int'
      ? `${input.method}:${input.uri}:${H(input.body ?? '')}`
      : `${input.method}:${input.uri}`;
  // RFC 7616 §3.4.1: KD(H(A1), unq(nonce) ":" nc ":" unq(cnonce) ":" unq(qop) ":" H(A2)).
  return H(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${H(a2)}`);
}

/** `nc`: the count as exactly 8 lowercase hex digits (RFC 7616 §3.4 "nc", 8LHEX). */
export function formatNonceCount(count: number): string {
  if (!Number.isInteger(count) || count < 1 || count > 0xffffffff) {
    throw new DigestError('DIGEST_BAD_VALUE', `nonce count ${count} is not 1..ffffffff`);
  }
  return count.toString(16).padStart(8, '0');
}

/**
 * A quoted-string (RFC 3261 §25.1): `"` and `\` escaped as quoted-pairs. CR and LF cannot be
 * written at all — not even as quoted-pairs — so a value holding one is refused rather than
 * letting it end the header line.
 */
export function quoteString(value: string): string {
  if (/[\r\n]/.test(value)) throw new DigestError('DIGEST_BAD_VALUE', 'a quoted-string cannot hold CR or LF');
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** True when `value` can be written as a quoted-string by `quoteString`. */
export function isQuotable(value: string): boolean {
  return !/[\r\n]/.test(value);
}

export interface DigestChallengeParams {
  realm: string;
  nonce: string;
  opaque?: string;
  /** Written as given; omitted means MD5 to the client. */
  algorithm?: string;
  qop?: readonly string[];
  stale?: boolean;
}

/**
 * A `WWW-Authenticate` / `Proxy-Authenticate` value. RFC 7616 §3.3: realm, domain, nonce, opaque
 * and qop are always quoted-strings; stale and algorithm never are.
 */
export function formatDigestChallenge(params: DigestChallengeParams): string {
  const parts = [`realm=${quoteString(params.realm)}`, `nonce=${quoteString(params.nonce)}`];
  if (params.opaque !== undefined) parts.push(`opaque=${quoteString(params.opaque)}`);
  if (params.algorithm !== undefined) parts.push(`algorithm=${params.algorithm}`);
  if (params.qop !== undefined && params.qop.length > 0) parts.push(`qop=${quoteString(params.qop.join(','))}`);
  if (params.stale) parts.push('stale=true');
  return `Digest ${parts.join(', ')}`;
}

export interface DigestCredentialsParams {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm?: string;
  cnonce?: string;
  opaque?: string;
  qop?: DigestQop;
  nc?: string;
}

/**
 * An `Authorization` / `Proxy-Authorization` value. RFC 7616 §3.4: username, realm, nonce, uri,
 * response, cnonce and opaque are quoted-strings (RFC 3261 §22.4 item 2: uri always quoted);
 * algorithm, qop and nc never are.
 */
export function formatDigestCredentials(params: DigestCredentialsParams): string {
  const parts = [
    `username=${quoteString(params.username)}`,
    `realm=${quoteString(params.realm)}`,
    `nonce=${quoteString(params.nonce)}`,
    `uri=${quoteString(params.uri)}`,
    `response=${quoteString(params.response)}`,
  ];
  if (params.algorithm !== undefined) parts.push(`algorithm=${params.algorithm}`);
  if (params.cnonce !== undefined) parts.push(`cnonce=${quoteString(params.cnonce)}`);
  if (params.opaque !== undefined) parts.push(`opaque=${quoteString(params.opaque)}`);
  if (params.qop !== undefined) parts.push(`qop=${params.qop}`);
  if (params.nc !== undefined) parts.push(`nc=${params.nc}`);
  return `Digest ${parts.join(', ')}`;
}

/**
 * The qop values of a challenge's `qop` parameter, lowercased, unknown ones dropped (RFC 7616
 * §3.3: "Unrecognized options MUST be ignored"). Undefined when the parameter is absent.
 */
export function parseQopOptions(value: string | undefined): DigestQop[] | undefined {
  if (value === undefined) return undefined;
  const out: DigestQop[] = [];
  for (const raw of value.split(',')) {
    const token = raw.trim().toLowerCase();
    if ((token === 'auth' || token === 'auth-int') && !out.includes(token)) out.push(token);
  }
  return out;
}
