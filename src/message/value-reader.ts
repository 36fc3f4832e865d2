import { TOKEN, isLws } from './char-class.js';
import { SipParseError } from './parse-error.js';

/**
 * A cursor over one (already unfolded) header value, with the lexical pieces of RFC 3261 §25.1
 * that every header grammar shares: LWS, tokens, quoted strings, separators. Each parse error
 * names the header it came from.
 */
export class ValueReader {
  pos = 0;

  constructor(
    readonly text: string,
    readonly header: string | undefined,
    readonly code: 'SIP_BAD_VALUE' | 'SIP_BAD_URI' = 'SIP_BAD_VALUE',
  ) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): number {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  skipLws(): void {
    const s = this.text;
    let i = this.pos;
    while (i < s.length && isLws(s.charCodeAt(i))) i++;
    this.pos = i;
  }

  /** Consumes `ch` (with optional LWS on either side, as SEMI, COLON, EQUAL, SLASH do) if it is next. */
  eat(ch: number): boolean {
    const save = this.pos;
    this.skipLws();
    if (this.peek() === ch) {
      this.pos++;
      this.skipLws();
      return true;
    }
    this.pos = save;
    return false;
  }

  expect(ch: number, what: string): void {
    if (!this.eat(ch)) this.fail(`expected ${what}`);
  }

  /** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
  token(what = 'a token'): string {
    const s = this.text;
    const start = this.pos;
    let i = start;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c > 0x7f || TOKEN[c] !== 1) break;
      i++;
    }
    if (i === start) this.fail(`expected ${what}`);
    this.pos = i;
    return s.slice(start, i);
  }

  /** quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE, returned with the quotes. */
  quotedRaw(): string {
    const s = this.text;
    const start = this.pos;
    if (s.charCodeAt(start) !== 0x22) this.fail('expected a quoted string');
    let i = start + 1;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.pos = i + 1;
        return s.slice(start, i + 1);
      }
      // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
      i += c === 0x5c ? 2 : 1;
    }
    this.pos = s.length;
    return this.fail('unterminated quoted string');
  }

  /** Everything up to (not including) the first `stop` character, or to the end. */
  until(stop: number): string {
    const s = this.text;
    const start = this.pos;
    let i = s.indexOf(String.fromCharCode(stop), start);
    if (i === -1) i = s.length;
    this.pos = i;
    return s.slice(start, i);
  }


  /** Throws with `offset` set to the character position in the value (the message makes it a
   *  byte offset in the message when it knows where the value starts). */
  fail(message: string): never {
    const where = this.header ? `${this.header}: ` : '';
    throw new SipParseError(this.code, `${where}${message} at character ${this.pos}`, this.header, this.pos);
  }
}

/** Removes the quotes of a quoted-string and resolves its quoted-pairs. */
export function unquote(quoted: string): string {
  if (quoted.length < 2 || quoted.charCodeAt(0) !== 0x22) return quoted;
  const inner = quoted.slice(1, -1);
  if (inner.indexOf('\\') === -1) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (c === '\\' && i + 1 < inner.length) out += inner[++i];
    else out += c;
  }
  return out;
}

/** Quotes a string as a quoted-string, escaping `"` and `\`. */
export function quote(text: string): string {
  return `"${text.replace(/["\\]/g, '\\$&')}"`;
}

/** Splits a list value at the commas that separate elements (RFC 3261 §7.3.1): not inside
 * quotes, not inside `<...>`. Elements are trimmed; empty ones are kept so grammars can refuse them. */
export function splitTopLevelCommas(text: string): string[] {
  if (text.indexOf(',') === -1) return [text];
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c ? 2 : 1;
    } else if (c === 0x3c) depth++;
    else if (c === 0x3e && depth > 0) depth--;
    else if (c === 0x2c && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}
