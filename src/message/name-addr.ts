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
  uri: SipUri;
  params: Params;

  /** `params` is used as given (not copied). */
  constructor(uri: SipUri, init: { displayName?: string | undefined; params?: Params } = {}) {
    this.uri = uri;
    this.displayName = init.displayName;
    this.params = init.params ?? emptyParams();
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
  } else {
    // Either `token *(LWS token) <URI>` or a bare addr-spec: look for "<" after the tokens.
    const start = reader.pos;
    const words: string[] = [];
    for (;;) {
      reader.skipLws();
      const w = reader.pos;
      const ch = reader.peek();
      if (ch === -1 || ch === 0x3c) break;
      if (ch > 0x7f || TOKEN[ch] !== 1) {
        words.length = 0;
        break;
      }
      words.push(reader.token());
      if (reader.pos === w) break;
    }
    if (words.length > 0 && reader.peek() === 0x3c) {
      displayName = words.join(' ');
      uriText = readBracketed(reader);
    } else {
      // addr-spec: the URI ends at the first ";" (its own parameters cannot be told from the
      // header's, so by §20.10 they belong to the header) or at white space.
      reader.pos = start;
      uriText = reader.until(';').trimEnd();
      // §20.10: a URI containing a comma, question mark or semicolon must be in <> (RFC 4475 §3.1.2.13).
      if (/[\s<>"?,]/.test(uriText)) reader.fail('white space, <>"?, in an addr-spec (enclose the URI in <>)');
    }
  }
  const params = emptyParams();
  readHeaderParams(reader, params);
  return new NameAddr(parseUri(uriText, header), { displayName, params });
}

function readBracketed(reader: ValueReader): string {
  const s = reader.text;
  const close = s.indexOf('>', reader.pos + 1);
  if (close === -1) reader.fail('no closing ">"');
  const uri = s.slice(reader.pos + 1, close);
  reader.pos = close + 1;
  return uri;
}
