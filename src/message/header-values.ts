import { isDigit } from './char-class.js';
import { emptyParams, formatParams, readHeaderParams, type Params } from './params.js';
import { ValueReader } from './value-reader.js';

/** CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16); the number is below 2^31 when sent by us and
 *  at most 2^32 - 1 when received (§8.1.1.5). */
export interface CSeq {
  seq: number;
  method: string;
}

export const MAX_UINT32 = 4294967295;

export function parseCSeq(text: string): CSeq {
  const reader = new ValueReader(text, 'cseq');
  reader.skipLws();
  const seq = readUInt(reader, MAX_UINT32, 'a CSeq number');
  const before = reader.pos;
  reader.skipLws();
  if (reader.pos === before) reader.fail('expected white space after the CSeq number');
  const method = reader.token('a method');
  reader.skipLws();
  if (!reader.done) reader.fail('unexpected text after the method');
  return { seq, method };
}

/**
 * A whole value that must be `1*DIGIT` not above `max`: Max-Forwards (0–255, §20.22), Expires and
 * Min-Expires (delta-seconds, up to 2^32 - 1, §20.19), Content-Length (§20.14).
 */
export function parseBoundedUInt(text: string, header: string, max: number): number {
  const reader = new ValueReader(text, header);
  reader.skipLws();
  const value = readUInt(reader, max, 'a number');
  reader.skipLws();
  if (!reader.done) reader.fail('expected only digits');
  return value;
}

function readUInt(reader: ValueReader, max: number, what: string): number {
  const s = reader.text;
  const start = reader.pos;
  let value = 0;
  let p = start;
  while (p < s.length && isDigit(s.charCodeAt(p))) {
    value = value * 10 + (s.charCodeAt(p) - 0x30);
    p++;
    // Stop early on absurd lengths: leading zeros are legal, so count the value, not the digits.
    if (value > max) {
      reader.pos = p;
      reader.fail(`${what} above ${max}`);
    }
  }
  if (p === start) reader.fail(`expected ${what}`);
  reader.pos = p;
  return value;
}

/** Allow, Supported, Require, Proxy-Require, Unsupported: comma-separated tokens (§25.1). */
export function parseTokenList(values: readonly string[], header: string): string[] {
  const out: string[] = [];
  for (const value of values) {
    if (value.length === 0) continue;
    const reader = new ValueReader(value, header);
    reader.skipLws();
    out.push(reader.token());
    reader.skipLws();
    if (!reader.done) reader.fail('expected one token per list element');
  }
  return out;
}

/** media-type = m-type SLASH m-subtype *(SEMI m-parameter) (§20.15). */
export interface MediaType {
  /** Lowercased. */
  type: string;
  /** Lowercased. */
  subtype: string;
  params: Params;
}

export function parseMediaType(text: string, header = 'content-type'): MediaType {
  const reader = new ValueReader(text, header);
  reader.skipLws();
  const type = reader.token('a media type').toLowerCase();
  reader.expect(0x2f, '"/"');
  const subtype = reader.token('a media subtype').toLowerCase();
  const params = emptyParams();
  readHeaderParams(reader, params);
  return { type, subtype, params };
}

export function formatMediaType(media: MediaType): string {
  return `${media.type}/${media.subtype}${formatParams(media.params)}`;
}

/** Event = event-type *( SEMI event-param ) (RFC 6665 §8.2.1); `id` separates subscriptions. */
export interface EventHeader {
  type: string;
  id: string | undefined;
  params: Params;
}

export function parseEvent(text: string): EventHeader {
  const reader = new ValueReader(text, 'event');
  reader.skipLws();
  // event-type = event-package *( "." event-template ), all token characters.
  const type = reader.token('an event package');
  const params = emptyParams();
  readHeaderParams(reader, params);
  return { type, id: params.id ?? undefined, params };
}

/** Subscription-State = substate-value *( SEMI subexp-params ) (RFC 6665 §8.2.3). */
export interface SubscriptionState {
  /** Lowercased: active, pending, terminated, or an extension value. */
  state: string;
  expires: number | undefined;
  reason: string | undefined;
  retryAfter: number | undefined;
  params: Params;
}

export function parseSubscriptionState(text: string): SubscriptionState {
  const reader = new ValueReader(text, 'subscription-state');
  reader.skipLws();
  const state = reader.token('a subscription state').toLowerCase();
  const params = emptyParams();
  readHeaderParams(reader, params);
  const number = (name: string): number | undefined => {
    const v = params[name];
    if (v === undefined || v === null) return undefined;
    return parseBoundedUInt(v, 'subscription-state', MAX_UINT32);
  };
  return {
    state,
    expires: number('expires'),
    reason: params.reason?.toLowerCase() ?? undefined,
    retryAfter: number('retry-after'),
    params,
  };
}

/**
 * WWW-Authenticate / Proxy-Authenticate / Authorization / Proxy-Authorization (RFC 3261 §25.1,
 * RFC 7616 §3.3–3.4): `scheme` followed by comma-separated `name=value` parameters, or (for other
 * schemes, e.g. Basic) a token68. Parameter values are unquoted; names lowercased.
 */
export interface AuthValue {
  scheme: string;
  params: Record<string, string>;
  token68: string | undefined;
}

export function parseAuthValue(text: string, header: string): AuthValue {
  const reader = new ValueReader(text, header);
  reader.skipLws();
  const scheme = reader.token('an auth scheme');
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  reader.skipLws();
  if (reader.done) return { scheme, params, token68: undefined };
  const start = reader.pos;
  // token68 (RFC 7235 §2.1): base64-ish characters, then optional "=" padding, then the end.
  const t68 = /^[A-Za-z0-9\-._~+/]+=*\s*$/.exec(text.slice(start));
  if (t68 && !/^[A-Za-z0-9\-._~+/]+\s*=\s*[^=\s]/.test(text.slice(start))) {
    return { scheme, params, token68: text.slice(start).trim() };
  }
  for (;;) {
    const name = reader.token('a parameter name').toLowerCase();
    reader.expect(0x3d, '"="');
    const value = reader.peek() === 0x22 ? unquoteAuth(reader.quotedRaw()) : reader.token('a parameter value');
    if (name in params) reader.fail(`parameter ${name} repeated`);
    params[name] = value;
    reader.skipLws();
    if (reader.done) break;
    reader.expect(0x2c, '","');
  }
  return { scheme, params, token68: undefined };
}

function unquoteAuth(quoted: string): string {
  const inner = quoted.slice(1, -1);
  return inner.indexOf('\\') === -1 ? inner : inner.replace(/\\(.)/g, '$1');
}

/** The seconds of a Retry-After value (RFC 3261 §20.33), undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+)/.exec(value);
  return m ? Number(m[1]) : undefined;
}
