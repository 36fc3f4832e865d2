import { IPV6_CHAR } from './char-class.js';
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
  while (reader.eat(SEMI)) {
    const name = reader.token('a parameter name').toLowerCase();
    let value: string | null = null;
    if (reader.eat(EQUAL)) value = readGenValue(reader);
    if (!(name in params)) params[name] = value;
  }
  reader.skipLws();
  if (!reader.done) reader.fail(`unexpected "${reader.text[reader.pos]}"`);
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
