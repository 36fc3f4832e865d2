import { TOKEN, isLws, isWsp } from './char-class.js';
import { HeaderField } from './header-field.js';
import { lookupHeaderName } from './header-names.js';
import { SipParseError } from './parse-error.js';

const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
/** Most heads fit in this many bytes; a larger one is decoded again up to the header limit. */
const FIRST_DECODE = 2048;

/** Limits that bound the work and memory one message may cost. */
export interface ParseLimits {
  /** Start line plus header section, in bytes. Default 65,536. */
  maxHeaderBytes?: number;
  /** Header lines. Default 256. */
  maxHeaderCount?: number;
  /** Body bytes (Content-Length). Default 1,048,576. */
  maxBodyBytes?: number;
}

export const DEFAULT_LIMITS: Required<ParseLimits> = {
  maxHeaderBytes: 65_536,
  maxHeaderCount: 256,
  maxBodyBytes: 1_048_576,
};

export function resolveLimits(limits: ParseLimits | undefined): Required<ParseLimits> {
  if (!limits) return DEFAULT_LIMITS;
  return {
    maxHeaderBytes: limits.maxHeaderBytes ?? DEFAULT_LIMITS.maxHeaderBytes,
    maxHeaderCount: limits.maxHeaderCount ?? DEFAULT_LIMITS.maxHeaderCount,
    maxBodyBytes: limits.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes,
  };
}

/** The result of the one pass over a message head. */
export interface ScannedHead {
  /**
   * The head (start line and header section) decoded as Latin-1, so every character is one byte
   * and string offsets are byte offsets. Values are sliced from it; non-ASCII values are
   * re-decoded from the bytes as UTF-8 when read.
   */
  readonly text: string;
  /** First byte of the start line (leading CRLFs skipped, RFC 3261 §7.5). */
  readonly start: number;
  /** End of the start line, line break excluded. */
  readonly startLineEnd: number;
  readonly headers: HeaderField[];
  /** First byte after the empty line that ends the header section. */
  readonly bodyStart: number;
}

/**
 * Finds the start line and every header boundary of the message in `buf` in one pass.
 * Lines end in CRLF; a bare LF is tolerated. A line that starts with SP or HTAB continues the
 * header above it (RFC 3261 §7.3.1 folding). When the bytes end before the empty line (a datagram
 * sent without it), the header section is taken to end with the data.
 *
 * One native search bounds the head and one Latin-1 decode turns it into a string; the scan then
 * runs on `charCodeAt` and `String#indexOf`, which the JIT inlines, instead of crossing into C++
 * once per line.
 */
export function scanHead(buf: Buffer, limits: Required<ParseLimits>): ScannedHead {
  const end = buf.length;
  let p = 0;
  // RFC 3261 §7.5: CRLFs before the start line are ignored.
  while (p < end && (buf[p] === CR || buf[p] === LF || buf[p] === 0x20 || buf[p] === 0x09)) p++;
  if (p === end) throw new SipParseError('SIP_EMPTY', 'no SIP message in the data', undefined, 0);
  const start = p;

  // Decode a prefix that holds nearly every head (cheaper than searching for the empty line
  // first); when the head turns out longer, decode again up to the header limit.
  const cap = Math.min(end, start + limits.maxHeaderBytes + 4);
  const first = Math.min(cap, start + FIRST_DECODE);
  const scanned = scanText(latin1(buf, 0, first), start, limits, first < cap);
  if (scanned !== undefined) return scanned;
  const full = scanText(latin1(buf, 0, cap), start, limits, cap < end);
  if (full === undefined) {
    throw new SipParseError('SIP_HEADERS_TOO_LARGE', `header section over ${limits.maxHeaderBytes} bytes`, undefined, start);
  }
  return full;
}

/**
 * Scans a decoded head. Returns undefined when the text ends before the empty line and `more`
 * says the bytes go on (the caller decodes a longer prefix).
 */
function scanText(text: string, start: number, limits: Required<ParseLimits>, more: boolean): ScannedHead | undefined {
  const n = text.length;
  let p: number;

  p = start;
  let lf = text.indexOf('\n', p);
  if (lf === -1) {
    if (more) return undefined;
    lf = n;
  }
  const startLineEnd = lf > start && text.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
  p = lf + 1;

  const headers: HeaderField[] = [];
  let bodyStart = -1;
  while (p < n) {
    const c = text.charCodeAt(p);
    if (c === CR && p + 1 >= n && more) return undefined;
    if (c === CR && text.charCodeAt(p + 1) === LF) {
      bodyStart = p + 2;
      break;
    }
    if (c === LF) {
      bodyStart = p + 1;
      break;
    }
    if (isWsp(c)) {
      throw new SipParseError('SIP_BAD_HEADER', 'a folded line with no header before it', undefined, p);
    }
    const lineStart = p;
    while (p < n && TOKEN[text.charCodeAt(p)] === 1) p++;
    const nameEnd = p;
    if (nameEnd === lineStart) {
      throw new SipParseError('SIP_BAD_HEADER', 'a header line that does not start with a name', undefined, p);
    }
    // HCOLON = *( SP / HTAB ) ":" SWS
    while (p < n && isWsp(text.charCodeAt(p))) p++;
    if (p >= n && more) return undefined; // the prefix ended inside this line: decode more
    if (text.charCodeAt(p) !== COLON) {
      throw new SipParseError('SIP_BAD_HEADER', 'a header name not followed by ":"', undefined, p);
    }
    p++;
    let valueStart = p;
    let folded = false;
    let lineEnd: number;
    let valueEnd: number;
    for (;;) {
      const eol = text.indexOf('\n', p);
      if (eol === -1) {
        if (more) return undefined;
        lineEnd = valueEnd = n;
        break;
      }
      if (eol + 1 >= n && more) return undefined;
      if (eol + 1 < n && isWsp(text.charCodeAt(eol + 1))) {
        folded = true;
        p = eol + 1;
        continue;
      }
      lineEnd = eol + 1;
      valueEnd = eol;
      break;
    }
    while (valueStart < valueEnd && isLws(text.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isLws(text.charCodeAt(valueEnd - 1))) valueEnd--;

    const def = lookupHeaderName(text, lineStart, nameEnd);
    let key: string;
    let name: string;
    if (def) {
      key = def.key;
      name = def.canonical;
    } else {
      name = text.slice(lineStart, nameEnd);
      key = name.toLowerCase();
    }
    headers.push(new HeaderField(key, def, name, lineStart, lineEnd, valueStart, valueEnd, folded, undefined));
    if (headers.length > limits.maxHeaderCount) {
      throw new SipParseError('SIP_TOO_MANY_HEADERS', `more than ${limits.maxHeaderCount} header lines`, undefined, lineStart);
    }
    if (lineEnd - start > limits.maxHeaderBytes) {
      throw new SipParseError('SIP_HEADERS_TOO_LARGE', `header section over ${limits.maxHeaderBytes} bytes`, undefined, lineStart);
    }
    p = lineEnd;
  }
  if (bodyStart === -1) {
    // No empty line: either the decoded prefix was too short (decode more, or at the cap the head
    // is too large), or the datagram ended inside the head (liberal: it ends there).
    if (more) {
      if (n - start < limits.maxHeaderBytes) return undefined;
      throw new SipParseError('SIP_HEADERS_TOO_LARGE', `header section over ${limits.maxHeaderBytes} bytes`, undefined, start);
    }
    bodyStart = n;
  }
  if (bodyStart - start > limits.maxHeaderBytes) {
    throw new SipParseError('SIP_HEADERS_TOO_LARGE', `header section over ${limits.maxHeaderBytes} bytes`, undefined, start);
  }
  return { text, start, startLineEnd, headers, bodyStart };
}

/**
 * Buffer's own slice decoders skip the argument checks `toString(encoding, start, end)` makes;
 * @types/node does not declare them, so they are typed here.
 */
interface SliceDecoders {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

export function latin1(buf: Uint8Array, start: number, end: number): string {
  return (buf as unknown as SliceDecoders).latin1Slice(start, end);
}

export function utf8(buf: Uint8Array, start: number, end: number): string {
  return (buf as unknown as SliceDecoders).utf8Slice(start, end);
}

/** True when every character of `text[start, end)` is ASCII (so Latin-1 and UTF-8 agree). */
export function isAscii(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
