import { IPV6_CHAR, TOKEN, isLws } from './char-class.js';
import type { ValueReader } from './value-reader.js';

/**
 * Parameters of a header or URI: a null-prototype object (so a parameter named `__proto__` is
 * just a parameter), names lowercased (RFC 3261 §7.3.1, §19.1.4: parameter names compare
 * case-insensitively), values exactly as written — quoted strings keep their quotes — and `null`
 * for a parameter written without `=`.
 */
export type Params = Record<string, string | null>;

// Objects made with Object.create(null) start in V8's slow dictionary mode; one made from a
// frozen prototype that itself has a null prototype stays fast, and still inherits nothing
// (`'toString' in params` is false, and `__proto__` is an ordinary key).
const NO_INHERITANCE = Object.freeze(Object.create(null) as object);

export function emptyParams(): Params {
  return Object.create(NO_INHERITANCE) as Params;
}

export function copyParams(params: Params): Params {
  return Object.assign(emptyParams(), params);
}

/** Serializes parameters as `;name=value;flag`. */
export function formatParams(params: Params): string {
  let out = '';
  for (const name in params) {
    const value = params[name];
    out += value === null || value === undefined ? `;${name}` : `;${name}=${value}`;
  }
  return out;
}

const SEMI = 0x3b;
const EQUAL = 0x3d;

/**
 * Reads `*( SEMI generic-param )` to the end of the value (RFC 3261 §25.1):
 * generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string.
 * The first occurrence of a repeated parameter wins.
 */
export function readHeaderParams(reader: ValueReader, params: Params): void {
  // Hot on every Via, From and To: a direct index loop rather than the reader's general helpers.
  const s = reader.text;
  const n = s.length;
  let p = reader.pos;
  for (;;) {
    while (p < n && isLws(s.charCodeAt(p))) p++;
    if (p >= n) break;
    if (s.charCodeAt(p) !== SEMI) {
      reader.pos = p;
      reader.fail(`unexpected "${s[p]}"`);
    }
    p++;
    while (p < n && isLws(s.charCodeAt(p))) p++;
    const nameStart = p;
    while (p < n && TOKEN[s.charCodeAt(p)] === 1) p++;
    if (p === nameStart) {
      reader.pos = p;
      reader.fail('expected a parameter name');
    }
    const name = paramName(s, nameStart, p);
    let q = p;
    while (q < n && isLws(s.charCodeAt(q))) q++;
    let value: string | null = null;
    if (s.charCodeAt(q) === EQUAL) {
      q++;
      while (q < n && isLws(s.charCodeAt(q))) q++;
      reader.pos = q;
      value = readGenValue(reader);
      p = reader.pos;
    }
    if (!(name in params)) params[name] = value;
  }
  reader.pos = p;
}

// Parameter names seen on nearly every message. Returning these constants (instead of a fresh
// slice) lets V8 store the property with an already-internalized key: a large share of a Via's
// parse time otherwise goes to hashing new key strings.
const COMMON_NAMES = [
  'branch', 'rport', 'received', 'maddr', 'ttl', 'tag', 'lr', 'transport', 'user', 'method',
  'expires', 'q', 'reg-id', '+sip.instance', 'ob', 'id', 'reason', 'retry-after', 'alias',
  'comp', 'sigcomp-id', 'handling', 'charset', 'boundary', 'duration', 'purpose',
];
const NAMES_BY_LENGTH: string[][] = [];
for (const name of COMMON_NAMES) (NAMES_BY_LENGTH[name.length] ??= []).push(name);

/** The lowercase parameter name in `s[start, end)`: an interned constant when it is a common one. */
export function paramName(s: string, start: number, end: number): string {
  const candidates = NAMES_BY_LENGTH[end - start];
  let upper = false;
  if (candidates) {
    next: for (const name of candidates) {
      for (let i = 0; i < name.length; i++) {
        let c = s.charCodeAt(start + i);
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        if (c !== name.charCodeAt(i)) continue next;
      }
      return name;
    }
  }
  for (let i = start; i < end && !upper; i++) {
    const c = s.charCodeAt(i);
    upper = c >= 0x41 && c <= 0x5a;
  }
  const raw = s.slice(start, end);
  return upper ? raw.toLowerCase() : raw;
}

function readGenValue(reader: ValueReader): string {
  const c = reader.peek();
  if (c === 0x22) return reader.quotedRaw();
  if (c === 0x5b) {
    // An IPv6 reference (e.g. received=[2001:db8::9:255], RFC 5118 §4.5).
    const s = reader.text;
    const start = reader.pos;
    let i = start + 1;
    while (i < s.length && IPV6_CHAR[s.charCodeAt(i)] === 1) i++;
    if (s.charCodeAt(i) !== 0x5d) reader.fail('unterminated IPv6 reference');
    reader.pos = i + 1;
    return s.slice(start, i + 1);
  }
  const value = reader.token('a parameter value');
  if (reader.peek() !== 0x3a) return value;
  // A bare IPv6 address: via-received = "received" EQUAL (IPv4address / IPv6address) has no
  // brackets (RFC 3261 §25.1; RFC 5118 §4.5 asks receivers to take it with or without them).
  const s = reader.text;
  const start = reader.pos - value.length;
  let i = reader.pos;
  while (i < s.length && IPV6_CHAR[s.charCodeAt(i)] === 1) i++;
  for (let j = start; j < i; j++) if (IPV6_CHAR[s.charCodeAt(j)] !== 1) reader.fail('":" in a parameter value');
  reader.pos = i;
  return s.slice(start, i);
}
