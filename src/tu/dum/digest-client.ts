import { generateBranch } from '../../message/builder.js';
import { parseAuthValue, type AuthValue } from '../../message/header-values.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { Via } from '../../message/via.js';
import { randomToken } from '../../util/random.js';
import {
  DigestError,
  digestHa1,
  digestResponse,
  digestStrength,
  formatDigestCredentials,
  formatNonceCount,
  isQuotable,
  isSessionAlgorithm,
  parseDigestAlgorithm,
  parseQopOptions,
  type DigestAlgorithm,
  type DigestQop,
} from './digest.js';

/**
 * A user's credentials; without `realm` they are offered to any realm that challenges.
 * `destinations` binds them further to where a request goes: the host (`host` or `host:port`,
 * lowercase, as in a URI) of its first Route, else of its Request-URI. A bound credential answers
 * only requests to one of those destinations, and is sent pre-emptively only to them (a server
 * that challenges with another's realm gets nothing to crack or replay).
 */
export interface Credential {
  username: string;
  password: string;
  realm?: string;
  destinations?: string[];
}

/** Which header pair a challenge came in: 401-style or proxy (RFC 3261 §22.2, §22.3). */
type Kind = 'www' | 'proxy';

const CHALLENGE_HEADER: Record<Kind, string> = { www: 'WWW-Authenticate', proxy: 'Proxy-Authenticate' };
const CREDENTIALS_HEADER: Record<Kind, string> = { www: 'Authorization', proxy: 'Proxy-Authorization' };

/** A Digest challenge this client can answer. */
interface Offer {
  kind: Kind;
  realm: string;
  nonce: string;
  algorithm: DigestAlgorithm;
  /** The `algorithm` parameter as the server wrote it (RFC 7616 §3.4: echoed), undefined when absent. */
  algorithmToken: string | undefined;
  qop: DigestQop | undefined;
  opaque: string | undefined;
  stale: boolean;
}

/** What the client remembers per challenged realm: enough to answer it again pre-emptively. */
interface RealmState {
  kind: Kind;
  realm: string;
  nonce: string;
  /** Requests sent so far with `nonce` (RFC 7616 §3.4 "nc"). */
  nc: number;
  algorithm: DigestAlgorithm;
  algorithmToken: string | undefined;
  qop: DigestQop | undefined;
  opaque: string | undefined;
  credential: Credential;
  /** `response` values sent in answer to a challenge (not pre-emptively): seeing one challenged
   *  again without stale=true means the credentials were refused (RFC 3261 §22.1). */
  answered: string[];
  /** Stale answers since the last fresh one or pre-emptive use: bounds a server that says stale forever. */
  staleRun: number;
}

/** Answers remembered per realm to recognise our own credentials in a challenged request. */
const MAX_ANSWERED = 16;
/** Consecutive stale=true challenges answered before the client gives up on a realm. */
const MAX_STALE_RUN = 3;

/**
 * The UAC side of digest authentication (RFC 3261 §22.2–22.4, RFC 7616, RFC 8760 §2.4). Used by
 * the DUM to retry challenged requests; usable alone.
 */
export class DigestClient {
  private readonly credentials: Credential[];
  private readonly realms = new Map<string, RealmState>();

  constructor(credentials: Credential[] = []) {
    for (const c of credentials) {
      // Username and realm go into quoted-strings (RFC 7616 §3.4), which cannot hold CR or LF.
      if (!isQuotable(c.username) || (c.realm !== undefined && !isQuotable(c.realm))) {
        throw new DigestError('DIGEST_BAD_CONFIG', 'a credential username or realm cannot contain CR or LF');
      }
    }
    this.credentials = credentials.map((c) => ({ ...c, ...(c.destinations ? { destinations: [...c.destinations] } : {}) }));
  }

  /** Adds (or, for the same username and realm, replaces) a credential: a link configured at run time. */
  setCredential(credential: Credential): void {
    if (!isQuotable(credential.username) || (credential.realm !== undefined && !isQuotable(credential.realm))) {
      throw new DigestError('DIGEST_BAD_CONFIG', 'a credential username or realm cannot contain CR or LF');
    }
    const index = this.credentials.findIndex((c) => c.realm === credential.realm && c.username === credential.username);
    const old = this.credentials[index];
    if (old && old.password === credential.password && (old.destinations ?? []).join(' ') === (credential.destinations ?? []).join(' ') && (old.destinations === undefined) === (credential.destinations === undefined)) return;
    if (index >= 0) this.credentials.splice(index, 1);
    this.credentials.push({ ...credential, ...(credential.destinations ? { destinations: [...credential.destinations] } : {}) });
  }

  /**
   * The request to send after `challenge` (a 401 or 407, or any response carrying challenges):
   * a clone of `request` with CSeq + 1 (RFC 3261 §22.2), a new top Via branch (a new transaction,
   * §8.1.1.7) and one Authorization / Proxy-Authorization per challenged realm replacing any for
   * that realm. Undefined when a challenged realm has no credential here, when a realm refuses the
   * credentials this client answered it with (challenged again without stale=true: §22.1 "A UAC
   * MUST NOT re-attempt requests with the credentials that have just been rejected"), or when the
   * response holds no challenge this client understands.
   */
  authorize(request: SipMessage, challenge: SipMessage): SipMessage | undefined {
    const chosen = chooseOffers(challenge);
    if (chosen.length === 0) return undefined;

    const answers: RealmState[] = [];
    const destination = destinationOf(request);
    for (const offer of chosen) {
      const credential = this.credentialFor(offer.realm, destination);
      if (!credential) return undefined;
      const key = realmKey(offer.kind, offer.realm);
      const previous = this.realms.get(key);
      const sent = previous ? sentCredentials(request, previous) : [];
      if (previous && sent.length > 0) {
        // Our own answer came back challenged. Not stale: the credentials are wrong (RFC 7616
        // §3.3 "stale … If stale is false … new values MUST be obtained"). Stale with the very
        // nonce we used, or stale too often in a row: the server will not take them either.
        if (!offer.stale) return undefined;
        if (sent.some((c) => c.params.nonce === offer.nonce)) return undefined;
        if (previous.staleRun >= MAX_STALE_RUN) return undefined;
      }
      const sameNonce = previous !== undefined && previous.nonce === offer.nonce && previous.credential === credential;
      const state: RealmState = {
        kind: offer.kind,
        realm: offer.realm,
        nonce: offer.nonce,
        // nc counts requests per nonce (RFC 7616 §3.4): it continues only for the same nonce.
        nc: sameNonce ? previous.nc : 0,
        algorithm: offer.algorithm,
        algorithmToken: offer.algorithmToken,
        qop: offer.qop,
        opaque: offer.opaque,
        credential,
        answered: previous?.answered ?? [],
        staleRun: offer.stale ? (previous?.staleRun ?? 0) + 1 : 0,
      };
      answers.push(state);
    }

    const next = request.clone();
    const cseq = request.cseq;
    next.setHeader('CSeq', `${cseq.seq + 1} ${cseq.method}`);
    if (next.via.length > 0) next.update<Via>('via', 0, (via) => (via.branch = generateBranch()));
    for (const state of answers) {
      this.realms.delete(realmKey(state.kind, state.realm));
      this.realms.set(realmKey(state.kind, state.realm), state);
      const response = this.apply(next, state);
      state.answered.push(response);
      if (state.answered.length > MAX_ANSWERED) state.answered.shift();
    }
    return next;
  }

  /**
   * Adds credentials pre-emptively to a new request, in place, for every realm challenged before
   * (or only `realmHint`): the last nonce with the next nc and a fresh cnonce (RFC 7616 §3.4;
   * RFC 3261 §22.2 "UAs SHOULD cache the credentials … and attempt to re-use these values on the
   * next request"), so a refresh needs no extra round trip. Replaces credentials already in the
   * request for those realms. Returns how many were added.
   */
  preauthorize(request: SipMessage, realmHint?: string): number {
    let added = 0;
    const destination = destinationOf(request);
    for (const state of this.realms.values()) {
      if (realmHint !== undefined && state.realm !== realmHint) continue;
      // A credential bound to destinations goes only where it belongs (never to every realm seen).
      if (!bindsTo(state.credential, destination)) continue;
      // It may have been replaced or removed since (a link reconfigured).
      if (!this.credentials.includes(state.credential)) continue;
      state.staleRun = 0;
      this.apply(request, state);
      added++;
    }
    return added;
  }

  /** Forgets what was learnt about a realm (or all realms): the next request is answered afresh. */
  forget(realm?: string): void {
    if (realm === undefined) this.realms.clear();
    else for (const [key, state] of this.realms) if (state.realm === realm) this.realms.delete(key);
  }

  /** Removes the credential for `username` in `realm` (and what was learnt for that realm). */
  removeCredential(username: string, realm: string): void {
    const index = this.credentials.findIndex((c) => c.realm === realm && c.username === username);
    if (index >= 0) this.credentials.splice(index, 1);
    this.forget(realm);
  }

  /**
   * A realm's own credential first, then one for any realm (RFC 3261 §22.1: the realm names the
   * protection domain); either only when bound to the request's destination, if bound at all.
   */
  private credentialFor(realm: string, destination: string | undefined): Credential | undefined {
    const usable = this.credentials.filter((c) => bindsTo(c, destination));
    return usable.find((c) => c.realm === realm) ?? usable.find((c) => c.realm === undefined);
  }

  /** Puts fresh credentials for `state` into `message`, replacing any for its realm; returns the response value. */
  private apply(message: SipMessage, state: RealmState): string {
    state.nc++;
    const nc = state.qop === undefined ? undefined : formatNonceCount(state.nc);
    // A fresh cnonce per request (RFC 7616 §3.4 "cnonce"); 144 random bits of token characters,
    // so it needs no escaping. RFC 3261 §22.4 item 8: no cnonce without qop.
    const cnonce = state.qop === undefined ? undefined : randomToken(24);
    const { credential } = state;
    const uri = message.requestUriText;
    const response = digestResponse({
      algorithm: state.algorithm,
      ha1: digestHa1(state.algorithm, credential.username, state.realm, credential.password),
      nonce: state.nonce,
      method: message.method,
      uri,
      qop: state.qop,
      nc,
      cnonce,
      body: message.body,
    });
    const value = formatDigestCredentials({
      username: credential.username,
      realm: state.realm,
      nonce: state.nonce,
      uri,
      response,
      algorithm: state.algorithmToken,
      cnonce,
      opaque: state.opaque,
      qop: state.qop,
      nc,
    });
    const header = CREDENTIALS_HEADER[state.kind];
    removeCredentialsFor(message, header, state.realm);
    message.addHeader(header, value);
    return response;
  }
}

/** Where a request goes: the host[:port] of its first Route (loose routing), else of its Request-URI. */
export function destinationOf(request: SipMessage): string | undefined {
  try {
    const uri = request.route[0]?.uri ?? request.requestUri;
    return uri.port === undefined ? uri.host.toLowerCase() : `${uri.host.toLowerCase()}:${uri.port}`;
  } catch {
    return undefined;
  }
}

function bindsTo(credential: Credential, destination: string | undefined): boolean {
  if (credential.destinations === undefined) return true;
  return destination !== undefined && credential.destinations.includes(destination);
}

function realmKey(kind: Kind, realm: string): string {
  return `${kind} ${realm}`;
}

/**
 * The challenge to answer for each (header kind, realm) in the response, in the order realms
 * first appear. Per realm: the strongest algorithm supported, the server's order among equals
 * (RFC 8760 §2.4 leaves the pick to local policy; doc/dum.md makes it strength). Challenges not
 * understood are ignored (RFC 8760 §2.4 "MUST ignore any challenge it does not understand").
 */
function chooseOffers(response: SipMessage): Offer[] {
  const best = new Map<string, Offer>();
  for (const kind of ['www', 'proxy'] as const) {
    for (const text of response.headers(CHALLENGE_HEADER[kind])) {
      const offer = readOffer(kind, text);
      if (!offer) continue;
      const key = realmKey(kind, offer.realm);
      const current = best.get(key);
      if (!current || digestStrength(offer.algorithm) < digestStrength(current.algorithm)) best.set(key, offer);
    }
  }
  return [...best.values()];
}

function readOffer(kind: Kind, text: string): Offer | undefined {
  let value: AuthValue;
  try {
    value = parseAuthValue(text, CHALLENGE_HEADER[kind].toLowerCase());
  } catch {
    return undefined; // a malformed challenge is one not understood (RFC 8760 §2.4)
  }
  if (value.scheme.toLowerCase() !== 'digest') return undefined; // RFC 3261 §22: Digest only, never Basic
  const { realm, nonce, opaque } = value.params;
  if (realm === undefined || nonce === undefined) return undefined;
  // Echoed in quoted-strings; one holding CR/LF (through a quoted-pair) cannot be answered.
  if (!isQuotable(realm) || !isQuotable(nonce) || (opaque !== undefined && !isQuotable(opaque))) return undefined;
  // Known names only get past parseDigestAlgorithm, so the trimmed token is safe to echo unquoted.
  const algorithmToken = value.params.algorithm?.trim();
  const algorithm = parseDigestAlgorithm(algorithmToken);
  if (!algorithm) return undefined; // RFC 7616 §3.3: an algorithm not understood → ignore the challenge
  const options = parseQopOptions(value.params.qop);
  let qop: DigestQop | undefined;
  if (options !== undefined) {
    // RFC 3261 §22.4 item 8: a qop in the challenge must be answered with one. Prefer auth (the
    // body may change on the way, e.g. SDP rewritten); auth-int only when it is all that is offered.
    if (options.includes('auth')) qop = 'auth';
    else if (options.includes('auth-int')) qop = 'auth-int';
    else return undefined;
  } else if (isSessionAlgorithm(algorithm)) {
    return undefined; // RFC 3261 §22.4 item 8: -sess needs a cnonce, which needs a qop
  }
  return {
    kind,
    realm,
    nonce,
    algorithm,
    algorithmToken,
    qop,
    opaque,
    // RFC 7616 §3.3: "A case-insensitive flag"; anything but true is false.
    stale: value.params.stale?.toLowerCase() === 'true',
  };
}

/** The Digest credentials in `request` for the state's realm that this client sent in answer to a challenge. */
function sentCredentials(request: SipMessage, state: RealmState): AuthValue[] {
  const out: AuthValue[] = [];
  for (const { value } of credentialsIn(request, CREDENTIALS_HEADER[state.kind])) {
    const response = value?.params.response;
    if (value && value.params.realm === state.realm && response !== undefined && state.answered.includes(response)) out.push(value);
  }
  return out;
}

function credentialsIn(message: SipMessage, header: string): Array<{ text: string; value: AuthValue | undefined }> {
  return message.headers(header).map((text) => {
    try {
      return { text, value: parseAuthValue(text, header.toLowerCase()) };
    } catch {
      return { text, value: undefined };
    }
  });
}

/** Removes the `header` values for `realm`, keeping the others (and any it cannot read) in order. */
function removeCredentialsFor(message: SipMessage, header: string, realm: string): void {
  const all = credentialsIn(message, header);
  const keep = all.filter((c) => c.value?.params.realm !== realm);
  if (keep.length === all.length) return;
  message.removeHeader(header);
  for (const c of keep) message.addHeader(header, c.text);
}
