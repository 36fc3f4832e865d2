/**
 * Byte classes of the RFC 3261 §25.1 grammar as 256-entry lookup tables, so the scanners test a
 * character with one array load instead of a chain of comparisons or a regex.
 */
function table(chars: string, ranges: Array<[number, number]> = []): Uint8Array {
  const t = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  for (const [lo, hi] of ranges) for (let c = lo; c <= hi; c++) t[c] = 1;
  return t;
}

const ALNUM: Array<[number, number]> = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x61, 0x7a],
];

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
export const TOKEN = table("-.!%*_+`'~", ALNUM);

/** unreserved = alphanum / mark */
const MARK = "-_.!~*'()";

/** Characters allowed unescaped in a SIP URI user part: unreserved / user-unreserved. */
export const USER_CHAR = table(MARK + '&=+$,;?/', ALNUM);

/** Characters allowed unescaped in a password: unreserved / "&" / "=" / "+" / "$" / ",". */
export const PASSWORD_CHAR = table(MARK + '&=+$,', ALNUM);

/** paramchar = param-unreserved / unreserved (escapes handled separately). */
export const URI_PARAM_CHAR = table(MARK + '[]/:&+$', ALNUM);

/** hname / hvalue characters: hnv-unreserved / unreserved (escapes handled separately). */
export const URI_HEADER_CHAR = table(MARK + '[]/?:+$', ALNUM);

/** Host names: alphanumerics, "-" and "." (RFC 3261 hostname; IPv4 is a subset). */
export const HOST_CHAR = table('-.', ALNUM);

/** Hex digits inside an IPv6 reference, plus ":" and "." for an embedded IPv4 tail. */
export const IPV6_CHAR = table(':.', [
  [0x30, 0x39],
  [0x41, 0x46],
  [0x61, 0x66],
]);

/** Characters of the scheme of an absolute URI: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
export const SCHEME_CHAR = table('+-.', ALNUM);

/**
 * Characters allowed in the opaque part of an absolute URI other than sip/sips (uric, RFC 2396):
 * reserved / unreserved / escaped.
 */
export const URIC = table(MARK + ';/?:@&=+$,%[]#', ALNUM);

export function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

export function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/** SP or HTAB. */
export function isWsp(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** Linear white space inside an already unfolded value: SP, HTAB, and a stray CR or LF. */
export function isLws(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}
