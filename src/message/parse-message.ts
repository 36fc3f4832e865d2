import { isDigit } from './char-class.js';
import { SipParseError } from './parse-error.js';
import type { HeaderField } from './header-field.js';
import { isAscii, resolveLimits, scanHead, utf8, type ParseLimits, type ScannedHead } from './scanner.js';
import { SipMessage, setCloneParser } from './sip-message.js';
import { parseStartLine } from './start-line.js';

/**
 * Parses one SIP message held whole in `data`: a UDP datagram, or a message a stream framer has
 * cut out. Throws `SipParseError` — and nothing else — when the bytes cannot be framed as SIP;
 * everything the RFC leaves to the receiver's judgement is left to `validateMessage`.
 *
 * Body (RFC 3261 §18.3): with a Content-Length the body is that many bytes, and bytes after it are
 * ignored; a datagram shorter than Content-Length keeps what it has and is marked `bodyTruncated`
 * (a request gets 400, a response is dropped); without Content-Length the body runs to the end.
 */
export function parseMessage(data: Uint8Array | string, limits?: ParseLimits): SipMessage {
  const buf = toBuffer(data);
  const resolved = resolveLimits(limits);
  const head = scanHead(buf, resolved);
  const available = buf.length - head.bodyStart;
  const declared = declaredContentLength(buf, head.headers);
  let bodyLength = available;
  let truncated = false;
  if (declared !== undefined) {
    bodyLength = Math.min(declared, available);
    truncated = declared > available;
  }
  if (bodyLength > resolved.maxBodyBytes) {
    throw new SipParseError('SIP_BODY_TOO_LARGE', `body over ${resolved.maxBodyBytes} bytes`, 'content-length', head.bodyStart);
  }
  return buildMessage(buf, head, bodyLength, truncated);
}

/** Builds the message object for a scanned head and a known body length (shared with the framer). */
export function buildMessage(buf: Buffer, head: ScannedHead, bodyLength: number, truncated: boolean): SipMessage {
  const { text, start, startLineEnd } = head;
  // The start line may carry UTF-8 (a reason phrase): decode it as such when it is not ASCII.
  const line = isAscii(text, start, startLineEnd) ? text.slice(start, startLineEnd) : utf8(buf, start, startLineEnd);
  const startLine = parseStartLine(line, start);
  const bodyEnd = head.bodyStart + bodyLength;
  return new SipMessage({
    startLine,
    source: buf,
    headText: text,
    startLineStart: head.start,
    startLineEnd: head.startLineEnd,
    fields: head.headers,
    bodyStart: head.bodyStart,
    sourceEnd: bodyEnd,
    bodyTruncated: truncated,
  });
}

/**
 * The first Content-Length header's value when it is a plain number, else undefined (absent or
 * malformed: validation reports the malformed case). Read straight from the bytes, since every
 * message needs it and most never look at the header otherwise.
 */
export function declaredContentLength(buf: Uint8Array, headers: readonly HeaderField[]): number | undefined {
  for (const h of headers) {
    if (h.key !== 'content-length') continue;
    let value = 0;
    if (h.valueEnd === h.valueStart) return undefined;
    for (let p = h.valueStart; p < h.valueEnd; p++) {
      const c = buf[p]!;
      if (!isDigit(c)) return undefined;
      value = value * 10 + c - 0x30;
      if (value > 0xffffffff) return undefined;
    }
    return value;
  }
  return undefined;
}

function toBuffer(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (!(data instanceof Uint8Array)) {
    throw new SipParseError('SIP_EMPTY', 'parseMessage takes a Uint8Array or a string');
  }
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

setCloneParser((message) => parseMessage(Buffer.from(message.toBuffer()), {
  maxHeaderBytes: Number.MAX_SAFE_INTEGER,
  maxHeaderCount: Number.MAX_SAFE_INTEGER,
  maxBodyBytes: Number.MAX_SAFE_INTEGER,
}));
