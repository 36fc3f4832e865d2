import { TOKEN } from './char-class.js';
import { copyParams, emptyParams, formatParams, readHeaderParams, type Params } from './params.js';
import { parseUri, SipUri } from './uri.js';
import { quote, unquote, ValueReader } from './value-reader.js';

/**
 * The value of From, To, Contact, Route, Record-Route, Reply-To, Path…: an optional display name,
 * a URI, and header parameters (RFC 3261 §20.10, §25.1):
 *   ( name-addr / addr-spec ) *( SEMI param )
 *   name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
 *   display-name = *(token LWS) / quoted-string
 */
export class NameAddr {
  /** Without quotes, quoted-pairs resolved; `undefined` when there is none. */
  displayName: string | undefined;
  params: Params;
  /** The URI, parsed on first access: a transaction layer reads the tag, not the URI. */
  private uri_: SipUri | undefined;
  private uriText: string;
  private readonly header: string | undefined;

  /** `params` is used as given (not copied). `uri` may be URI text, parsed when first read. */
  constructor(uri: SipUri | string, init: { displayName?: string | undefined; params?: Params; header?: string } = {}) {
    if (typeof uri === 'string') {
      this.uri_ = undefined;
      this.uriText = uri;
    } else {
      this.uri_ = uri;
      this.uriText = '';
    }
    this.header = init.header;
    this.displayName = init.displayName;
    this.params = init.params ?? emptyParams();
  }

  /** The URI; throws `SipParseError` (SIP_BAD_URI) when the text is not a URI. */
  get uri(): SipUri {
    return (this.uri_ ??= parseUri(this.uriText, this.header));
  }

  set uri(uri: SipUri) {
    this.uri_ = uri;
  }

  get tag(): string | undefined {
    return this.params.tag ?? undefined;
  }

  set tag(value: string | undefined) {
    if (value === undefined) delete this.params.tag;
    else this.params.tag = value;
  }

  clone(): NameAddr {
    return new NameAddr(this.uri.clone(), { displayName: this.displayName, params: copyParams(this.params) });
  }

  /** Always writes the `<...>` form: safe for any URI (§20.10: a URI with `,;?` must be enclosed). */
  toString(): string {
    const name = this.displayName;
    const shown = name === undefined ? '' : isTokenList(name) ? `${name} ` : `${quote(name)} `;
    return `${shown}<${this.uri.toString()}>${formatParams(this.params)}`;
  }
}

function isTokenList(text: string): boolean {
  if (text.length === 0) return false;
  for (const word of text.split(' ')) {
    if (word.length === 0) return false;
    for (let i = 0; i < word.length; i++) {
      const c = word.charCodeAt(i);
      if (c > 0x7f || TOKEN[c] !== 1) return false;
    }
  }
  return true;
}

/** Parses one name-addr / addr-spec value with its parameters. */
export function parseNameAddr(text: string, header?: string): NameAddr {
  const reader = new ValueReader(text, header);
  reader.skipLws();
  let displayName: string | undefined;
  let uriText: string;
  const c = reader.peek();
  if (c === 0x22) {
    displayName = unquote(reader.quotedRaw());
    reader.skipLws();
    if (reader.peek() !== 0x3c) reader.fail('a quoted display name must be followed by <URI>');
    uriText = readBracketed(reader);
  } else if (c === 0x3c) {
    uriText = readBracketed(reader);
  } else if (startsWithScheme(text, reader.pos)) {
    // addr-spec (a display name cannot contain ":"): the URI ends at the first ";" — its own
    // parameters cannot be told from the header's, so by §20.10 they belong to the header.
    uriText = reader.until(0x3b);
    let end = uriText.length;
    while (end > 0 && (uriText.charCodeAt(end - 1) === 0x20 || uriText.charCodeAt(end - 1) === 0x09)) end--;
    if (end !== uriText.length) uriText = uriText.slice(0, end);
    // §20.10: a URI containing a comma, question mark or semicolon must be in <> (RFC 4475 §3.1.2.13).
    for (let i = 0; i < uriText.length; i++) {
      const ch = uriText.charCodeAt(i);
      if (ch <= 0x20 || ch === 0x3c || ch === 0x3e || ch === 0x22 || ch === 0x3f || ch === 0x2c) {
        reader.fail('white space, <>"?, in an addr-spec (enclose the URI in <>)');
      }
    }
  } else {
    // display-name = *(token LWS): single spaces between the words, then <URI>.
    const words: string[] = [];
    for (;;) {
      reader.skipLws();
      const ch = reader.peek();
      if (ch === 0x3c || ch === -1) break;
      if (ch > 0x7f || TOKEN[ch] !== 1) reader.fail('a display name with characters that need quotes');
      words.push(reader.token());
    }
    if (words.length === 0 || reader.peek() !== 0x3c) reader.fail('expected <URI> after the display name');
    displayName = words.join(' ');
    uriText = readBracketed(reader);
  }
  const params = emptyParams();
  readHeaderParams(reader, params);
  return new NameAddr(uriText, { displayName, params, header });
}

/** True when `text` continues at `from` with `scheme ":"` (scheme = ALPHA *(ALPHA / DIGIT / + - .)). */
function startsWithScheme(text: string, from: number): boolean {
  let i = from;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x3a) return i > from;
    const alpha = (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
    if (!(alpha || (i > from && ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e)))) return false;
    i++;
  }
  return false;
}

function readBracketed(reader: ValueReader): string {
  const s = reader.text;
  const close = s.indexOf('>', reader.pos + 1);
  if (close === -1) reader.fail('no closing ">"');
  const uri = s.slice(reader.pos + 1, close);
  reader.pos = close + 1;
  return uri;
}
