import { isDigit, isWsp } from './char-class.js';
import { SipParseError } from './parse-error.js';
import { buildMessage } from './parse-message.js';
import { resolveLimits, scanHead, type ParseLimits, type ScannedHead } from './scanner.js';
import type { SipMessage } from './sip-message.js';

const CR = 0x0d;
const LF = 0x0a;

/** What a stream framer found in the bytes pushed into it. */
export type FramedItem =
  | { readonly type: 'message'; readonly message: SipMessage }
  /** CRLFCRLF between messages: a keep-alive ping to answer with CRLF (RFC 5626 §3.5.1). */
  | { readonly type: 'ping' }
  /** A lone CRLF between messages: the pong that answers our ping (RFC 5626 §3.5.1). */
  | { readonly type: 'pong' }
  /**
   * The stream is broken beyond repair; close it. `head` holds the message's start line and
   * headers when they were complete (a bad Content-Length, a body over the limit), so a 400 can
   * still be sent for a request.
   */
  | { readonly type: 'error'; readonly error: SipParseError; readonly head?: Buffer }
  /**
   * With `skipOversizedBodies`: a message whose Content-Length is over `maxBodyBytes` (up to
   * MAX_SKIPPED_BODY_BYTES). Its head is here for the answer (413); its body is read past, never
   * buffered, and the stream goes on with the next message.
   */
  | { readonly type: 'refused'; readonly error: SipParseError; readonly head: Buffer };

export interface FramerLimits extends ParseLimits {
  /** Bytes held for one unfinished message. Default: maxHeaderBytes + maxBodyBytes. */
  maxBufferedBytes?: number;
  /**
   * A body over maxBodyBytes (with a Content-Length up to MAX_SKIPPED_BODY_BYTES) is a `refused`
   * item and is skipped, instead of an `error` that ends the stream. Default false.
   */
  skipOversizedBodies?: boolean;
}

/** The largest oversized body a framer skips (skipOversizedBodies); a larger Content-Length is an error. */
export const MAX_SKIPPED_BODY_BYTES = 16 * 1_048_576;

/** A store larger than this is given back once it holds nothing. */
const KEEP_STORE_BYTES = 65_536;

const PING: FramedItem = Object.freeze({ type: 'ping' });
const PONG: FramedItem = Object.freeze({ type: 'pong' });

/**
 * Cuts a byte stream (TCP, TLS) into SIP messages by their Content-Length (RFC 3261 §18.3), in
 * time linear in the bytes however they are chunked: the search for the end of the header section
 * resumes where the previous push stopped, and bytes are kept in one growable buffer.
 *
 * It tells a partial message (keep waiting: `partial` is true) from a malformed one (an `error`
 * item, after which the framer is closed and ignores further input).
 */
export class StreamFramer {
  private readonly limits: Required<ParseLimits>;
  private readonly maxBuffered: number;
  private store = Buffer.allocUnsafe(4096);
  private readStart = 0;
  private writeEnd = 0;
  private closed = false;
  /** Where to resume looking for the empty line, relative to readStart; -1 between messages. */
  private searchFrom = -1;
  /** Header lines seen so far in the current head (start line included). */
  private lines = 0;
  private head: ScannedHead | undefined;
  private bodyLength = 0;
  /** A CRLF seen between messages whose partner has not arrived (yet). */
  private loneCrlf = false;
  private loneCrlfReported = false;
  /** The complete head of the message being refused, for the error item. */
  private failedHead: Buffer | undefined;
  private readonly skipOversized: boolean;
  /** Body bytes of a refused message still to be read past. */
  private skipping = 0;

  constructor(limits?: FramerLimits) {
    this.limits = resolveLimits(limits);
    this.maxBuffered = limits?.maxBufferedBytes ?? this.limits.maxHeaderBytes + this.limits.maxBodyBytes;
    this.skipOversized = limits?.skipOversizedBodies ?? false;
  }

  /** Bytes of an unfinished message are buffered. */
  get partial(): boolean {
    return !this.closed && (this.writeEnd > this.readStart || this.skipping > 0);
  }

  get bufferedBytes(): number {
    return this.writeEnd - this.readStart;
  }

  push(chunk: Uint8Array): FramedItem[] {
    if (this.closed) return [];
    this.append(chunk);
    const items: FramedItem[] = [];
    try {
      while (this.step(items));
      if (this.bufferedBytes > this.maxBuffered) {
        throw new SipParseError('SIP_HEADERS_TOO_LARGE', `more than ${this.maxBuffered} bytes buffered for one message`);
      }
    } catch (error) {
      if (!(error instanceof SipParseError)) throw error;
      const head = this.failedHead;
      this.close();
      items.push(head ? { type: 'error', error, head } : { type: 'error', error });
    }
    return items;
  }

  /** The peer closed the stream: a message cut short is an error; anything else is fine. */
  end(): FramedItem[] {
    if (this.closed) return [];
    const cut = this.bufferedBytes > 0 && !(this.bufferedBytes === 1 && this.store[this.readStart] === CR);
    this.close();
    if (!cut) return [];
    return [{ type: 'error', error: new SipParseError('SIP_INCOMPLETE', 'the stream ended inside a message') }];
  }

  private close(): void {
    this.closed = true;
    this.store = Buffer.alloc(0);
    this.readStart = this.writeEnd = 0;
  }

  /** Makes one unit of progress; false when more bytes are needed. */
  private step(items: FramedItem[]): boolean {
    const available = this.writeEnd - this.readStart;
    if (this.skipping > 0) {
      if (available === 0) return false;
      const n = Math.min(available, this.skipping);
      this.readStart += n;
      this.skipping -= n;
      return true;
    }
    if (available === 0) return this.flushPong(items);
    if (this.searchFrom < 0) return this.betweenMessages(items);
    if (!this.head) return this.findHeadEnd(items);
    const total = this.head.bodyStart + this.bodyLength;
    if (available < total) return false;
    // Copy the message out: the store is reused, and a message must not pin a large buffer.
    const bytes = Buffer.from(this.store.subarray(this.readStart, this.readStart + total));
    const message = buildMessage(bytes, this.head, this.bodyLength, false);
    this.readStart += total;
    this.head = undefined;
    this.searchFrom = -1;
    // Nothing left over: a store grown for one large message is not kept for a connection's life.
    if (this.readStart === this.writeEnd && this.store.length > KEEP_STORE_BYTES) {
      this.store = Buffer.allocUnsafe(4096);
      this.readStart = this.writeEnd = 0;
    }
    items.push({ type: 'message', message });
    return true;
  }

  private betweenMessages(items: FramedItem[]): boolean {
    const s = this.store;
    const b = s[this.readStart]!;
    if (b === CR || b === LF) {
      let size: number;
      if (b === LF) size = 1;
      else if (this.readStart + 1 >= this.writeEnd) return this.flushPong(items); // wait for the LF
      else size = s[this.readStart + 1] === LF ? 2 : 0;
      if (size > 0) {
        this.readStart += size;
        if (this.loneCrlf) {
          this.loneCrlf = false;
          items.push(PING);
        } else {
          this.loneCrlf = true;
          this.loneCrlfReported = false;
        }
        return true;
      }
    }
    this.flushPong(items);
    this.loneCrlf = false;
    this.searchFrom = 0;
    this.lines = 1;
    return true;
  }

  /** A lone CRLF with nothing after it (yet) is a pong; reported once. */
  private flushPong(items: FramedItem[]): false {
    if (this.loneCrlf && !this.loneCrlfReported) {
      this.loneCrlfReported = true;
      items.push(PONG);
    }
    return false;
  }

  private findHeadEnd(items: FramedItem[]): boolean {
    const s = this.store;
    const base = this.readStart;
    const end = this.writeEnd;
    let from = base + this.searchFrom;
    for (;;) {
      const lf = s.indexOf(LF, from);
      if (lf === -1 || lf >= end) {
        this.searchFrom = end - base;
        break;
      }
      const next = lf + 1;
      if (next >= end) {
        this.searchFrom = lf - base;
        break;
      }
      const c = s[next]!;
      let headEnd = -1;
      if (c === LF) headEnd = next + 1;
      else if (c === CR) {
        if (next + 1 >= end) {
          this.searchFrom = lf - base;
          break;
        }
        if (s[next + 1] === LF) headEnd = next + 2;
      }
      if (headEnd !== -1) {
        this.startMessage(headEnd - base, items);
        return true;
      }
      if (!isWsp(c) && ++this.lines > this.limits.maxHeaderCount + 1) {
        throw new SipParseError('SIP_TOO_MANY_HEADERS', `more than ${this.limits.maxHeaderCount} header lines`);
      }
      from = next;
    }
    if (end - base > this.limits.maxHeaderBytes) {
      throw new SipParseError('SIP_HEADERS_TOO_LARGE', `header section over ${this.limits.maxHeaderBytes} bytes`);
    }
    return false;
  }

  /** The head is complete: scan it once and learn how long the body is. */
  private startMessage(headLength: number, items: FramedItem[]): void {
    const view = this.store.subarray(this.readStart, this.readStart + headLength);
    const head = scanHead(view, this.limits);
    let length: number | undefined;
    try {
      length = this.contentLength(view, head);
      if (length > this.limits.maxBodyBytes) {
        throw new SipParseError('SIP_BODY_TOO_LARGE', `body over ${this.limits.maxBodyBytes} bytes`, 'content-length');
      }
    } catch (error) {
      if (error instanceof SipParseError && error.code === 'SIP_BODY_TOO_LARGE' && this.skipOversized && length !== undefined && length <= MAX_SKIPPED_BODY_BYTES) {
        // Refused, not broken: read past the body and go on with the next message.
        items.push({ type: 'refused', error, head: Buffer.from(view) });
        this.readStart += headLength;
        this.skipping = length;
        this.searchFrom = -1;
        return;
      }
      // The head was whole: keep it so the connection can still answer a request with 400.
      this.failedHead = Buffer.from(view);
      throw error;
    }
    this.bodyLength = length;
    this.head = head;
  }

  private contentLength(view: Buffer, head: ScannedHead): number {
    // RFC 3261 §18.3: on a stream, Content-Length is what frames the message; without a usable
    // one the stream cannot be resynchronised (RFC 4475 §3.1.2.3, §3.3.9).
    let length: number | undefined;
    for (const h of head.headers) {
      if (h.key !== 'content-length') continue;
      const value = digits(view, h.valueStart, h.valueEnd);
      if (value === undefined) throw new SipParseError('SIP_BAD_CONTENT_LENGTH', 'Content-Length is not a number', 'content-length');
      if (length !== undefined && length !== value) {
        throw new SipParseError('SIP_BAD_CONTENT_LENGTH', 'Content-Length values disagree', 'content-length');
      }
      length = value;
    }
    if (length === undefined) throw new SipParseError('SIP_BAD_CONTENT_LENGTH', 'no Content-Length on a stream', 'content-length');
    return length;
  }

  private append(chunk: Uint8Array): void {
    const needed = this.writeEnd - this.readStart + chunk.length;
    if (this.writeEnd + chunk.length > this.store.length) {
      // Move the unread bytes to the front, growing when they fill more than half.
      const capacity = Math.max(this.store.length, 4096);
      // Growth is capped near the buffering limit: a message about to be refused for its size
      // does not first make the store twice as large.
      const grown = Math.max(needed, Math.min(needed * 2, this.maxBuffered + 1));
      const next = needed * 2 > capacity ? Buffer.allocUnsafe(Math.max(grown, capacity)) : this.store;
      this.store.copy(next, 0, this.readStart, this.writeEnd);
      this.store = next;
      this.writeEnd -= this.readStart;
      this.readStart = 0;
    }
    this.store.set(chunk, this.writeEnd);
    this.writeEnd += chunk.length;
  }
}

function digits(buf: Uint8Array, start: number, end: number): number | undefined {
  if (start === end) return undefined;
  let value = 0;
  for (let p = start; p < end; p++) {
    const c = buf[p]!;
    if (!isDigit(c)) return undefined;
    value = value * 10 + c - 0x30;
    if (value > 0xffffffff) return undefined;
  }
  return value;
}
