import { TOKEN, isLws, isWsp } from './char-class.js';
import { HeaderField } from './header-field.js';
import { lookupHeaderBytes } from './header-names.js';
import { SipParseError } from './parse-error.js';

const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;

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
  /** First byte of the start line (leading CRLFs skipped, RFC 3261 §7.5). */
  readonly start: number;
  /** End of the start line, line break excluded. */
  readonly startLineEnd: number;
  readonly headers: HeaderField[];
  /** First byte after the empty line that ends the header section. */
  readonly bodyStart: number;
}

/**
 * Finds the start line and every header boundary of the message at `buf[from..]` in one pass.
 * Lines end in CRLF; a bare LF is tolerated. A line that starts with SP or HTAB continues the
 * header above it (RFC 3261 §7.3.1 folding). When the bytes end before the empty line (a datagram
 * sent without it), the header section is taken to end with the data.
 */
export function scanHead(buf: Uint8Array, from: number, limits: Required<ParseLimits>): ScannedHead {
  const end = buf.length;
  let p = from;
  // RFC 3261 §7.5: CRLFs before the start line are ignored.
  while (p < end && (buf[p] === CR || buf[p] === LF || buf[p] === 0x20 || buf[p] === 0x09)) p++;
  if (p === end) throw new SipParseError('SIP_EMPTY', 'no SIP message in the data', undefined, from);
  const start = p;

  let lf = indexOfByte(buf, LF, p);
  if (lf === -1) lf = end;
  const startLineEnd = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
  p = lf + 1;

  const headers: HeaderField[] = [];
  let bodyStart = end;
  while (p < end) {
    const c = buf[p]!;
    if (c === CR && buf[p + 1] === LF) {
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
    while (p < end && TOKEN[buf[p]!] === 1) p++;
    const nameEnd = p;
    if (nameEnd === lineStart) {
      throw new SipParseError('SIP_BAD_HEADER', 'a header line that does not start with a name', undefined, p);
    }
    // HCOLON = *( SP / HTAB ) ":" SWS
    while (p < end && isWsp(buf[p]!)) p++;
    if (buf[p] !== COLON) {
      throw new SipParseError('SIP_BAD_HEADER', 'a header name not followed by ":"', undefined, p);
    }
    p++;
    let valueStart = p;
    let folded = false;
    let lineEnd: number;
    let valueEnd: number;
    for (;;) {
      const eol = indexOfByte(buf, LF, p);
      if (eol === -1) {
        lineEnd = valueEnd = end;
        break;
      }
      if (eol + 1 < end && isWsp(buf[eol + 1]!)) {
        folded = true;
        p = eol + 1;
        continue;
      }
      lineEnd = eol + 1;
      valueEnd = eol;
      break;
    }
    while (valueStart < valueEnd && isLws(buf[valueStart]!)) valueStart++;
    while (valueEnd > valueStart && isLws(buf[valueEnd - 1]!)) valueEnd--;

    const def = lookupHeaderBytes(buf, lineStart, nameEnd);
    let key: string;
    let name: string;
    if (def) {
      key = def.key;
      name = def.canonical;
    } else {
      name = latin1(buf, lineStart, nameEnd);
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
  if (bodyStart - start > limits.maxHeaderBytes) {
    throw new SipParseError('SIP_HEADERS_TOO_LARGE', `header section over ${limits.maxHeaderBytes} bytes`, undefined, start);
  }
  return { start, startLineEnd, headers, bodyStart };
}

/** `Uint8Array.prototype.indexOf` is a native memchr-like search; far faster than a JS loop. */
function indexOfByte(buf: Uint8Array, byte: number, from: number): number {
  return buf.indexOf(byte, from);
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
