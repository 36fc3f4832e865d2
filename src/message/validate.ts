import { MAX_UINT32, parseBoundedUInt } from './header-values.js';
import { SipParseError } from './parse-error.js';
import type { SipMessage } from './sip-message.js';

/**
 * What a receiver must do with a message it could frame:
 * - `accept`: hand it on;
 * - `reply`: a request to refuse with `status` (statelessly, before any transaction exists);
 * - `drop`: a response (or an ACK, which is never answered) to discard silently.
 */
export type Verdict =
  | { readonly action: 'accept' }
  | {
      readonly action: 'reply';
      readonly status: number;
      readonly reason: string;
      readonly detail: string;
      /** Headers the response must carry, e.g. `Unsupported` on a 420. */
      readonly headers: ReadonlyArray<readonly [string, string]>;
    }
  | { readonly action: 'drop'; readonly detail: string };

export interface ValidationOptions {
  /** An endpoint (UA) or a proxy: RFC 4475 §3.3.5, §3.3.10, §3.3.11 differ by role. Default endpoint. */
  role?: 'endpoint' | 'proxy';
  /** Option tags this element implements (RFC 3261 §8.2.2.3). Default none. */
  supportedExtensions?: readonly string[];
  /** Methods whose Require the TU checks itself, at its own step (a registrar: §10.3 step 2 comes
   *  after the domain check of step 1). */
  tuChecksRequire?: readonly string[];
  /** Request-URI schemes this element handles (§8.2.2.1). Default sip, sips, tel. */
  supportedSchemes?: readonly string[];
  /** Body types an endpoint understands (§8.2.3); `type/*` wildcards allowed. */
  acceptedBodyTypes?: readonly string[];
  /** Methods an endpoint implements (§8.2.1: others get 501 with Allow). Default: RFC 3261 and
   *  the common extensions (PRACK, SUBSCRIBE, NOTIFY, PUBLISH, INFO, REFER, MESSAGE, UPDATE). */
  methods?: readonly string[];
}

const ACCEPT: Verdict = Object.freeze({ action: 'accept' });

const DEFAULT_SCHEMES = ['sip', 'sips', 'tel'];
export const DEFAULT_BODY_TYPES = [
  'application/sdp',
  'text/*',
  'message/cpim',
  'message/sipfrag',
  'multipart/*',
  'application/pidf+xml',
  'application/im-iscomposing+xml',
  'application/simple-message-summary',
];

/** Methods of RFC 3261 and the extensions in common use; others are "unknown" (§8.2.1). */
export const KNOWN_METHODS: readonly string[] = [
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY',
  'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE',
];

/** Headers that must occur once (RFC 4475 §3.3.8: several values → 400). */
const SINGLE_VALUED = ['from', 'to', 'call-id', 'cseq', 'max-forwards', 'content-length', 'content-type'];

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  501: 'Not Implemented',
  505: 'Version Not Supported',
};

/** Thrown inside the checks to stop at the first problem; never escapes `validateMessage`. */
export class Refusal {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly headers: ReadonlyArray<readonly [string, string]> = [],
  ) {}
}

/**
 * The checks RFC 3261 puts at the receiver of a message (§8.1.3.3, §8.2.1–8.2.3, §16.3, §18.3) and
 * RFC 4475 spells out, in the order a server applies them. The parser stays liberal; this decides.
 */
export function validateMessage(message: SipMessage, options: ValidationOptions = {}): Verdict {
  const received = validateReceived(message, options);
  if (received.action !== 'accept' || !message.isRequest || (options.role ?? 'endpoint') === 'proxy') return received;
  return uasVerdict(message, options);
}

/**
 * The checks below the UAS core (§17/§18 and the 400 for broken mandatory headers): what the
 * transaction layer applies before a request becomes a transaction, and all of a response's.
 */
export function validateReceived(message: SipMessage, options: ValidationOptions = {}): Verdict {
  try {
    if (message.isRequest) checkReceivedRequest(message, options);
    else checkResponse(message, options);
    return ACCEPT;
  } catch (error) {
    return verdictOf(message, toRefusal(error));
  }
}

function verdictOf(message: SipMessage, refusal: Refusal): Verdict {
  // An ACK is never answered (RFC 3261 §17.2.1, §8.2): a bad one is dropped.
  if (!message.isRequest || message.method === 'ACK') return { action: 'drop', detail: refusal.detail };
  return {
    action: 'reply',
    status: refusal.status,
    reason: REASONS[refusal.status] ?? 'Bad Request',
    detail: refusal.detail,
    headers: refusal.headers,
  };
}

/** The verdict as `parley parse` prints it: null, the status to answer, or "drop". */
export function verdictCode(verdict: Verdict): number | 'drop' | null {
  if (verdict.action === 'accept') return null;
  return verdict.action === 'drop' ? 'drop' : verdict.status;
}

function toRefusal(error: unknown): Refusal {
  if (error instanceof Refusal) return error;
  if (error instanceof SipParseError) return new Refusal(400, error.message);
  throw error;
}

/**
 * What every receiver checks before a request can become a transaction (§7, §8.1.1, §18.3,
 * RFC 4475): a readable start line, SIP/2.0, honest framing, the mandatory headers once each, and
 * the headers that steer routing readable. A failure here is answered statelessly (there is no
 * trustworthy Via, CSeq or Call-ID to build a transaction on).
 */
function checkReceivedRequest(m: SipMessage, options: ValidationOptions): void {
  const role = options.role ?? 'endpoint';
  // §7.1: Method SP Request-URI SP SIP-Version, single SPs (RFC 4475 §3.1.2.9, §3.1.2.10).
  if (m.startLineProblem) throw new Refusal(400, `malformed request line: ${m.startLineProblem}`);
  // §8.2.1 / §21.5.7: only SIP/2.0 is spoken here.
  if (m.version.toUpperCase() !== 'SIP/2.0') throw new Refusal(505, `SIP version ${m.version} is not supported`);
  checkFraming(m);
  checkMandatory(m);
  if (m.maxForwards === undefined && m.hasHeader('max-forwards')) throw new Refusal(400, 'empty Max-Forwards');
  if (m.hasHeader('expires')) parseBoundedUInt(m.header('expires') ?? '', 'expires', MAX_UINT32);
  // Contact, Route and Record-Route steer dialogs and registrations: a malformed one is a 400
  // (RFC 4475 §3.1.2.13) rather than a surprise deep in the TU.
  for (const value of m.contact) void value.uri;
  for (const value of m.route) void value.uri;
  for (const value of m.recordRoute) void value.uri;
  // §8.1.1.5, RFC 4475 §3.1.2.17–18: the CSeq method matches the request method; a mismatch on
  // a method we do not know is better answered 501.
  const cseq = m.cseq;
  if (cseq.method !== m.method) {
    const status = KNOWN_METHODS.includes(m.method) ? 400 : 501;
    throw new Refusal(status, `CSeq method ${cseq.method} does not match ${m.method}`);
  }
  // The Request-URI must be readable at all (its scheme is the UAS core's question, §8.2.2.1).
  const uri = m.requestUri;
  // §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
  if (Object.keys(uri.headers).length > 0) throw new Refusal(400, 'headers in the Request-URI');
  // §8.1.1.7: a branch that is only the magic cookie identifies nothing (RFC 4475 §3.2.1).
  if (m.via[0]!.branch === 'z9hG4bK') throw new Refusal(400, 'the top Via branch is only the magic cookie');

  if (role === 'proxy') {
    // §16.3 step 3: Max-Forwards 0 is not forwarded; RFC 4475 §3.3.11 names 483.
    if (m.maxForwards === 0) throw new Refusal(483, 'Max-Forwards reached 0');
    // §16.3 step 5: Proxy-Require is the proxy's Require.
    checkExtensions(m.proxyRequire, options);
  }
}

/**
 * RFC 3261 §8.2, in the RFC's order, for a request the transaction layer took: method inspection
 * (§8.2.1: 405, or 501 for a method nobody knows), the Request-URI's scheme (§8.2.2.1: 416),
 * Require (§8.2.2.3: 420), then content (§8.2.3: 415). Merged requests (§8.2.2.2) need the
 * transaction table, so the UAS core checks them between 416 and 420 itself.
 */
export function uasVerdict(m: SipMessage, options: ValidationOptions = {}, between?: (m: SipMessage) => Refusal | undefined): Verdict {
  try {
    checkUas(m, options, between);
    return ACCEPT;
  } catch (error) {
    return verdictOf(m, toRefusal(error));
  }
}

function checkUas(m: SipMessage, options: ValidationOptions, between?: (m: SipMessage) => Refusal | undefined): void {
  // §8.2.1: "If a UAS recognizes but does not support the method of a request, it MUST generate
  // a 405 (Method Not Allowed) response… The UAS MUST also add an Allow header field"; a method
  // it does not recognise at all is 501 (§21.5.2). Before the scheme: a request with an unknown
  // method and an unknown scheme is answered 501, not 416.
  const methods = options.methods ?? KNOWN_METHODS;
  if (!methods.includes(m.method)) {
    const status = KNOWN_METHODS.includes(m.method) ? 405 : 501;
    const verb = status === 405 ? 'not allowed here' : 'not implemented';
    throw new Refusal(status, `method ${m.method} is ${verb}`, [['Allow', methods.join(', ')]]);
  }
  // §8.2.2.1: "If the Request-URI uses a scheme not supported by the UAS, it SHOULD reject the
  // request with a 416 (Unsupported URI Scheme) response."
  const schemes = options.supportedSchemes ?? DEFAULT_SCHEMES;
  if (!schemes.includes(m.requestUri.scheme)) throw new Refusal(416, `URI scheme ${m.requestUri.scheme} is not supported`);
  // §8.2.2.2: merged requests (482), when the caller can tell.
  const merged = between?.(m);
  if (merged) throw merged;
  // §10.3 step 5 (RFC 4475 §3.3.4): a registration's To must be a SIP or SIPS address of record.
  if (m.method === 'REGISTER' && !m.to.uri.isSip) throw new Refusal(400, 'the To of a REGISTER is not a SIP or SIPS URI');
  // §8.2.2.3: an endpoint answers 420 for option tags it does not implement (never to ACK or CANCEL).
  if (m.method !== 'ACK' && m.method !== 'CANCEL' && !options.tuChecksRequire?.includes(m.method)) checkExtensions(m.require, options);
  // §8.2.3: a body the endpoint cannot process gets 415, listing what it accepts.
  if (m.body.length > 0 || m.hasHeader('content-type')) checkBodyType(m, options);
  // RFC 4475 §3.3.15: an INVITE whose Accept rules out SDP cannot be answered with a session.
  if (m.method === 'INVITE' && m.hasHeader('accept')) {
    const accepted = m.headers('accept').map((v) => v.split(';')[0]!.trim().toLowerCase());
    if (!accepted.some((t) => t === 'application/sdp' || t === 'application/*' || t === '*/*')) {
      throw new Refusal(406, 'Accept does not include application/sdp', [['Accept', 'application/sdp']]);
    }
  }
}

function checkResponse(m: SipMessage, options: ValidationOptions): void {
  // §7.2: a three-digit code from 100 to 699 (RFC 4475 §3.1.2.19).
  if (m.startLineProblem) throw new Refusal(400, `malformed status line: ${m.startLineProblem}`);
  if (m.status < 100 || m.status > 699) throw new Refusal(400, `status code ${m.status} out of range`);
  if (m.version.toUpperCase() !== 'SIP/2.0') throw new Refusal(505, `SIP version ${m.version}`);
  checkFraming(m);
  checkMandatory(m);
  void m.maxForwards;
  const vias = m.via;
  if ((options.role ?? 'endpoint') === 'endpoint') {
    // §8.1.3.3: a UAC discards a response with more than one Via (RFC 4475 §3.3.10).
    if (vias.length > 1) throw new Refusal(400, 'more than one Via in a response to an endpoint');
  } else if (vias.length > 1) {
    // RFC 4475 §3.3.10: never forward a response toward a broadcast address.
    const next = vias[1]!;
    const target = next.received ?? next.host;
    if (target === '255.255.255.255' || /^2(2[4-9]|3\d)\./.test(target)) {
      throw new Refusal(400, `next Via ${target} is a broadcast or multicast address`);
    }
  }
}

/** §18.3 and RFC 4475 §3.1.2.2, §3.1.2.3, §3.3.9: one valid Content-Length that the data honours. */
function checkFraming(m: SipMessage): void {
  const lines = m.headerLineCount('content-length');
  if (lines > 1) throw new Refusal(400, 'more than one Content-Length');
  if (lines === 1) void m.contentLength;
  if (m.bodyTruncated) throw new Refusal(400, 'Content-Length is larger than the message body');
}

/** §8.1.1: Via, From, To, Call-ID and CSeq are mandatory and single (Via excepted). */
function checkMandatory(m: SipMessage): void {
  for (const name of ['via', 'from', 'to', 'call-id', 'cseq']) {
    if (!m.hasHeader(name)) throw new Refusal(400, `missing ${name} header`);
  }
  for (const name of SINGLE_VALUED) {
    if (m.headers(name).length > 1) throw new Refusal(400, `more than one ${name} value`);
  }
  if (m.via.length === 0) throw new Refusal(400, 'empty Via');
  void m.from.uri;
  void m.to.uri;
  void m.callId;
  void m.cseq;
}

function checkExtensions(required: string[], options: ValidationOptions): void {
  const supported = options.supportedExtensions ?? [];
  const unknown = required.filter((tag) => !supported.includes(tag));
  if (unknown.length > 0) {
    throw new Refusal(420, `unsupported extensions: ${unknown.join(', ')}`, [['Unsupported', unknown.join(', ')]]);
  }
}

function checkBodyType(m: SipMessage, options: ValidationOptions): void {
  const media = m.mediaType;
  if (!media) return; // §7.4.1: a body without Content-Type — nothing to check it against.
  const disposition = m.header('content-disposition');
  // §20.11: handling=optional means the receiver may ignore a body it does not understand.
  if (disposition && /;\s*handling\s*=\s*optional/i.test(disposition)) return;
  const accepted = options.acceptedBodyTypes ?? DEFAULT_BODY_TYPES;
  const type = `${media.type}/${media.subtype}`;
  const ok = accepted.some((a) => a === type || a === '*/*' || (a.endsWith('/*') && a.slice(0, -1) === `${media.type}/`));
  if (!ok) throw new Refusal(415, `body type ${type} is not supported`, [['Accept', accepted.join(', ')]]);
}
