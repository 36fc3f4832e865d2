import {
  HOST_CHAR,
  IPV6_CHAR,
  PASSWORD_CHAR,
  SCHEME_CHAR,
  URIC,
  URI_HEADER_CHAR,
  URI_PARAM_CHAR,
  USER_CHAR,
  isDigit,
  isHex,
} from './char-class.js';
import { copyParams, emptyParams, type Params } from './params.js';
import { SipParseError } from './parse-error.js';

/**
 * A URI as SIP uses it (RFC 3261 §19.1): `sip:`/`sips:` fully parsed; `tel:` (RFC 3966) as a
 * number in `user` with its parameters; any other absolute URI keeps everything after the scheme
 * in `opaque`. `user` and `password` hold the decoded characters (escapes resolved); `toString()`
 * escapes whatever the grammar requires again.
 */
export class SipUri {
  /** Lowercase: `sip`, `sips`, `tel`, or any other scheme. */
  scheme: string;
  user: string | undefined;
  password: string | undefined;
  /** As in the grammar: a host name, an IPv4 address, or an IPv6 reference with its brackets. */
  host: string;
  port: number | undefined;
  params: Params;
  /** URI headers (`?name=value&...`), names and values as written. */
  headers: Record<string, string>;
  /** For schemes other than sip, sips and tel: the part after `scheme:`. */
  opaque: string | undefined;

  /** `params` and `headers` are used as given (not copied). */
  constructor(init: {
    scheme?: string;
    user?: string | undefined;
    password?: string | undefined;
    host?: string;
    port?: number | undefined;
    params?: Params;
    headers?: Record<string, string>;
    opaque?: string | undefined;
  } = {}) {
    this.scheme = (init.scheme ?? 'sip').toLowerCase();
    this.user = init.user;
    this.password = init.password;
    this.host = init.host ?? '';
    this.port = init.port;
    this.params = init.params ?? emptyParams();
    this.headers = init.headers ?? {};
    this.opaque = init.opaque;
  }

  /** True for sip: and sips: URIs. */
  get isSip(): boolean {
    return this.scheme === 'sip' || this.scheme === 'sips';
  }

  /** The host without IPv6 brackets, as a socket API wants it. */
  get address(): string {
    return unbracket(this.host);
  }

  /** The `transport` URI parameter, lowercased, when present. */
  get transport(): string | undefined {
    return this.params.transport?.toLowerCase() ?? undefined;
  }

  clone(): SipUri {
    return new SipUri({ ...this, params: copyParams(this.params), headers: { ...this.headers } });
  }

  toString(): string {
    if (this.isSip) {
      let out = `${this.scheme}:`;
      if (this.user !== undefined) {
        out += escape(this.user, USER_CHAR);
        if (this.password !== undefined) out += `:${escape(this.password, PASSWORD_CHAR)}`;
        out += '@';
      }
      out += this.host;
      if (this.port !== undefined) out += `:${this.port}`;
      out += formatUriParams(this.params);
      const names = Object.keys(this.headers);
      if (names.length > 0) {
        out += `?${names.map((n) => `${escape(n, URI_HEADER_CHAR)}=${escape(this.headers[n]!, URI_HEADER_CHAR)}`).join('&')}`;
      }
      return out;
    }
    if (this.scheme === 'tel') return `tel:${this.user ?? ''}${formatUriParams(this.params)}`;
    return `${this.scheme}:${this.opaque ?? ''}`;
  }
}

/** Parses any absolute URI SIP may carry. Throws `SipParseError` (`SIP_BAD_URI`). */
/** A host as the grammar writes it (`[::1]`) to what a socket API wants (`::1`). */
export function unbracket(host: string): string {
  return host.charCodeAt(0) === 0x5b ? host.slice(1, -1) : host;
}

export function parseUri(text: string, header?: string): SipUri {
  const colon = text.indexOf(':');
  if (colon <= 0) fail(text, header, 'no scheme');
  const first = text.charCodeAt(0) | 0x20;
  if (first < 0x61 || first > 0x7a) fail(text, header, 'scheme does not start with a letter');
  for (let i = 1; i < colon; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || SCHEME_CHAR[c] !== 1) fail(text, header, 'bad scheme character');
  }
  const scheme = text.slice(0, colon).toLowerCase();
  const rest = text.slice(colon + 1);
  if (scheme === 'sip' || scheme === 'sips') return parseSipUri(scheme, rest, text, header);
  if (scheme === 'tel') return parseTelUri(rest, text, header);
  if (rest.length === 0) fail(text, header, 'empty URI');
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    // Bytes above 0x7f are accepted as-is: IRIs in unknown schemes are not ours to judge.
    if (c < 0x80 && URIC[c] !== 1) fail(text, header, `"${rest[i]}" not allowed in a URI`);
  }
  return new SipUri({ scheme, opaque: rest });
}

// SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]   (RFC 3261 §25.1)
function parseSipUri(scheme: string, s: string, text: string, header: string | undefined): SipUri {
  const uri = new SipUri({ scheme });
  let p = 0;
  const at = s.indexOf('@');
  if (at !== -1) {
    // userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
    const colon = s.indexOf(':');
    const userEnd = colon !== -1 && colon < at ? colon : at;
    if (userEnd === 0) fail(text, header, 'empty user part');
    uri.user = decode(s, 0, userEnd, USER_CHAR, text, header);
    if (userEnd < at) uri.password = decode(s, userEnd + 1, at, PASSWORD_CHAR, text, header);
    p = at + 1;
  }
  // hostport = host [ ":" port ]; host = hostname / IPv4address / IPv6reference
  const hostStart = p;
  if (s.charCodeAt(p) === 0x5b) {
    p++;
    while (p < s.length && IPV6_CHAR[s.charCodeAt(p)] === 1) p++;
    if (s.charCodeAt(p) !== 0x5d || p === hostStart + 1) fail(text, header, 'bad IPv6 reference');
    p++;
  } else {
    while (p < s.length) {
      const c = s.charCodeAt(p);
      if (c > 0x7f || HOST_CHAR[c] !== 1) break;
      p++;
    }
    if (p === hostStart) fail(text, header, 'no host');
  }
  uri.host = s.slice(hostStart, p);
  if (s.charCodeAt(p) === 0x3a) {
    const portStart = ++p;
    let port = 0;
    while (p < s.length && isDigit(s.charCodeAt(p))) {
      port = port * 10 + s.charCodeAt(p) - 0x30;
      p++;
      if (p - portStart > 5) break;
    }
    if (p === portStart || p - portStart > 5 || port > 65535) fail(text, header, 'bad port');
    uri.port = port;
  }
  // uri-parameters = *( ";" uri-parameter ); uri-parameter = pname [ "=" pvalue ]
  // Escapes are resolved in names and values: "%6c%72" is the parameter "lr" (RFC 4475 §3.1.1.3).
  while (s.charCodeAt(p) === 0x3b) {
    const nameStart = ++p;
    p = skipChars(s, p, URI_PARAM_CHAR, text, header);
    if (p === nameStart) fail(text, header, 'empty URI parameter name');
    const name = unescapeRange(s, nameStart, p).toLowerCase();
    let value: string | null = null;
    if (s.charCodeAt(p) === 0x3d) {
      const valueStart = ++p;
      p = skipChars(s, p, URI_PARAM_CHAR, text, header);
      if (p === valueStart) fail(text, header, 'empty URI parameter value');
      value = unescapeRange(s, valueStart, p);
    }
    if (!(name in uri.params)) uri.params[name] = value;
  }
  // headers = "?" header *( "&" header ); header = hname "=" hvalue
  if (s.charCodeAt(p) === 0x3f) {
    do {
      const nameStart = ++p;
      p = skipChars(s, p, URI_HEADER_CHAR, text, header);
      if (p === nameStart || s.charCodeAt(p) !== 0x3d) fail(text, header, 'bad URI header');
      const name = unescapeRange(s, nameStart, p);
      const valueStart = ++p;
      p = skipChars(s, p, URI_HEADER_CHAR, text, header);
      uri.headers[name] = unescapeRange(s, valueStart, p);
    } while (s.charCodeAt(p) === 0x26);
  }
  if (p !== s.length) fail(text, header, `"${s[p]}" not allowed here`);
  return uri;
}

// telephone-uri = "tel:" telephone-subscriber (RFC 3966 §3): the number, then ;parameters.
function parseTelUri(s: string, text: string, header: string | undefined): SipUri {
  const semi = s.indexOf(';');
  const number = semi === -1 ? s : s.slice(0, semi);
  if (number.length === 0) fail(text, header, 'empty telephone number');
  const uri = new SipUri({ scheme: 'tel', user: decode(number, 0, number.length, USER_CHAR, text, header) });
  if (semi !== -1) {
    for (const part of s.slice(semi + 1).split(';')) {
      const eq = part.indexOf('=');
      const name = (eq === -1 ? part : part.slice(0, eq)).toLowerCase();
      if (name.length === 0) fail(text, header, 'empty parameter name');
      if (skipChars(part, 0, URI_PARAM_CHAR, text, header, true) !== part.length) fail(text, header, 'bad parameter');
      if (!(name in uri.params)) uri.params[name] = eq === -1 ? null : part.slice(eq + 1);
    }
  }
  return uri;
}

/** Advances over characters of `allowed` and %HH escapes; returns the first position past them. */
function skipChars(
  s: string,
  p: number,
  allowed: Uint8Array,
  text: string,
  header: string | undefined,
  wholeString = false,
): number {
  while (p < s.length) {
    const c = s.charCodeAt(p);
    if (c === 0x25) {
      if (!isHex(s.charCodeAt(p + 1)) || !isHex(s.charCodeAt(p + 2))) fail(text, header, 'bad %-escape');
      p += 3;
    } else if (c < 0x80 && allowed[c] === 1) p++;
    else if (wholeString && c === 0x3d) p++;
    else break;
  }
  return p;
}

/** Checks `s[start, end)` against `allowed` plus escapes and returns it with escapes decoded. */
function decode(s: string, start: number, end: number, allowed: Uint8Array, text: string, header: string | undefined): string {
  const stop = skipChars(s, start, allowed, text, header);
  if (stop !== end) fail(text, header, `"${s[stop]}" not allowed in the user part`);
  return unescapeRange(s, start, end);
}

/** `s[start, end)` with %HH escapes (already checked) decoded as UTF-8. */
function unescapeRange(s: string, start: number, end: number): string {
  const raw = s.slice(start, end);
  if (raw.indexOf('%') === -1) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c);
  }
  return Buffer.from(bytes).toString('utf8');
}

function formatUriParams(params: Params): string {
  let out = '';
  for (const name in params) {
    const value = params[name];
    out += `;${escape(name, URI_PARAM_CHAR)}`;
    if (value !== null && value !== undefined) out += `=${escape(value, URI_PARAM_CHAR)}`;
  }
  return out;
}

/** Escapes every character outside `allowed` as %HH of its UTF-8 bytes. */
function escape(text: string, allowed: Uint8Array): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || allowed[c] !== 1) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte < 0x80 && allowed[byte] === 1 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function fail(text: string, header: string | undefined, why: string): never {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  throw new SipParseError('SIP_BAD_URI', `${why} in URI ${JSON.stringify(shown)}`, header);
}
