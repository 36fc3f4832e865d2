import { LocalContact } from './local-contact.js';
import { ParleyError } from '../util/errors.js';
import { HeaderField } from './header-field.js';
import { canonicalHeaderName, headerDef, headerKey } from './header-names.js';
import {
  MAX_UINT32,
  formatMediaType,
  parseAuthValue,
  parseBoundedUInt,
  parseCSeq,
  parseEvent,
  parseMediaType,
  parseSubscriptionState,
  parseTokenList,
  type AuthValue,
  type CSeq,
  type EventHeader,
  type MediaType,
  type SubscriptionState,
} from './header-values.js';
import { NameAddr, parseNameAddr } from './name-addr.js';
import { SipParseError } from './parse-error.js';
import { isAscii, utf8 } from './scanner.js';
import type { StartLine } from './start-line.js';
import { parseUri, type SipUri } from './uri.js';
import { splitTopLevelCommas } from './value-reader.js';
import { Via, parseVia } from './via.js';

const CRLF = Buffer.from('\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

/** A value type that `update()` can edit in place: the typed grammar of a header. */
type Grammar = { list: boolean; parse: (text: string, key: string) => unknown; format: (value: unknown) => string };

const nameAddr = (text: string, key: string): NameAddr => parseNameAddr(text, key);
const parseCSeqValue = (text: string): CSeq => parseCSeq(text);
const asString = (value: unknown): string => String(value);

const VIA_GRAMMAR: Grammar = { list: true, parse: (t, k) => parseVia(t, k), format: asString };

/** The headers `update()` and the typed accessors understand. */
const GRAMMARS: Record<string, Grammar> = {
  via: VIA_GRAMMAR,
  from: { list: false, parse: nameAddr, format: asString },
  to: { list: false, parse: nameAddr, format: asString },
  contact: { list: true, parse: nameAddr, format: asString },
  route: { list: true, parse: nameAddr, format: asString },
  'record-route': { list: true, parse: nameAddr, format: asString },
  path: { list: true, parse: nameAddr, format: asString },
  'service-route': { list: true, parse: nameAddr, format: asString },
  'reply-to': { list: false, parse: nameAddr, format: asString },
  'refer-to': { list: false, parse: nameAddr, format: asString },
  'referred-by': { list: false, parse: nameAddr, format: asString },
  'p-asserted-identity': { list: true, parse: nameAddr, format: asString },
  cseq: {
    list: false,
    parse: parseCSeqValue,
    format: (v) => `${(v as CSeq).seq} ${(v as CSeq).method}`,
  },
  'content-type': { list: false, parse: (t, k) => parseMediaType(t, k), format: (v) => formatMediaType(v as MediaType) },
};

/** Initial contents of a message; used by the parser and the builders. */
export interface SipMessageInit {
  startLine: StartLine;
  /** The bytes the message was read from, when it was parsed. */
  source?: Buffer;
  /** `source` up to the body decoded as Latin-1 (values are substrings of it). */
  headText?: string | undefined;
  /** Where the start line's text begins and ends in `source`. */
  startLineStart?: number;
  startLineEnd?: number;
  fields?: HeaderField[];
  body?: Buffer;
  /** Where the message ended in `source` (after the body), for byte-exact re-serialization. */
  sourceEnd?: number;
  /** Where the body starts in `source` (the body is created lazily from it). */
  bodyStart?: number;
  /** Content-Length promised more bytes than the datagram held (RFC 3261 §18.3). */
  bodyTruncated?: boolean;
}

/**
 * A SIP request or response (RFC 3261 §7). Created by `parseMessage`, a `StreamFramer`, or the
 * builders. Header values are parsed on first access and cached; an unchanged message serializes
 * to exactly the bytes it was read from, and a changed one re-encodes only the fields that changed.
 */
export class SipMessage {
  readonly isRequest: boolean;
  private method_: string;
  private uriText: string;
  private uri: SipUri | undefined;
  private version_: string;
  private status_: number;
  private reason_: string;
  /** Why the start line breaks the strict grammar (validation answers 400), else undefined. */
  readonly startLineProblem: string | undefined;
  /** True when Content-Length promised more body than the datagram carried (§18.3). */
  readonly bodyTruncated: boolean;

  private readonly source: Buffer;
  private readonly headText: string | undefined;
  // The headers every layer reads, parsed on first access and kept in plain fields (no map
  // look-ups on the hot path); all are dropped on any header change.
  private viaCache: Via[] | undefined;
  private fromCache: NameAddr | undefined;
  private toCache: NameAddr | undefined;
  private cseqCache: CSeq | undefined;
  private callIdCache: string | undefined;
  /** The start line's bytes in `source` while it is unchanged; -1 once it must be re-encoded. */
  private startLineStart: number;
  private readonly startLineEnd: number;
  private readonly fields: HeaderField[];
  /** Created on first access for parsed messages: most hops never look at the body. */
  private body_: Buffer | undefined;
  private readonly bodyStart: number;
  private readonly bodyEnd: number;
  private sourceEnd: number;
  /** Serialized bytes, kept until the next change: encode once, send and retransmit many times. */
  private encoded: Buffer | undefined;
  /** Flattened typed lists (`via`, `contact`…), dropped on any header change. */
  private listCache: Map<string, unknown[]> | undefined;
  /**
   * The first Contact is this UA's, for the transport layer to complete with the host, port and
   * transport the message goes out on (set by adding a `LocalContact`, or by hand).
   */
  contactFillIn: boolean;

  constructor(init: SipMessageInit) {
    const line = init.startLine;
    this.isRequest = line.isRequest;
    this.method_ = line.method;
    this.uriText = line.uriText;
    this.uri = undefined;
    this.version_ = line.version;
    this.status_ = line.status;
    this.reason_ = line.reason;
    this.startLineProblem = line.problem;
    this.source = init.source ?? EMPTY;
    this.headText = init.headText;
    // Every field is set here, in one order, so all messages share one hidden class however
    // their accessors are used later.
    this.viaCache = undefined;
    this.fromCache = undefined;
    this.toCache = undefined;
    this.cseqCache = undefined;
    this.callIdCache = undefined;
    this.encoded = undefined;
    this.listCache = undefined;
    this.contactFillIn = false;
    this.startLineStart = init.startLineStart ?? -1;
    this.startLineEnd = init.startLineEnd ?? -1;
    this.fields = init.fields ?? [];
    this.body_ = init.body;
    this.bodyStart = init.bodyStart ?? -1;
    this.bodyEnd = init.sourceEnd ?? -1;
    this.sourceEnd = this.bodyEnd;
    this.bodyTruncated = init.bodyTruncated ?? false;
  }

  // ---- start line -------------------------------------------------------------------------

  /** The request method, case as written (RFC 3261 §7.1: methods are case-sensitive); '' on responses. */
  get method(): string {
    return this.method_;
  }

  /** The Request-URI; throws `SipParseError` (SIP_BAD_URI) when malformed, SIP_NOT_REQUEST on a response. */
  get requestUri(): SipUri {
    if (!this.isRequest) throw new SipParseError('SIP_NOT_REQUEST', 'a response has no Request-URI');
    return (this.uri ??= parseUri(this.uriText, 'request-uri'));
  }

  set requestUri(uri: SipUri) {
    if (!this.isRequest) throw new SipParseError('SIP_NOT_REQUEST', 'a response has no Request-URI');
    this.uri = uri;
    this.uriText = uri.toString();
    this.startLineChanged();
  }

  /** The Request-URI exactly as written on the request line. */
  get requestUriText(): string {
    return this.uriText;
  }

  /** The SIP-Version as written, e.g. `SIP/2.0`. */
  get version(): string {
    return this.version_;
  }

  /** The status code of a response; 0 on requests. */
  get status(): number {
    return this.status_;
  }

  /** The reason phrase of a response, possibly empty; '' on requests. */
  get reason(): string {
    return this.reason_;
  }

  setStatus(status: number, reason: string): void {
    if (this.isRequest) throw new SipParseError('SIP_NOT_RESPONSE', 'a request has no status');
    this.status_ = status;
    this.reason_ = reason;
    this.startLineChanged();
  }

  // ---- raw header access ------------------------------------------------------------------

  /** The first value of a header (any case, compact forms too); list headers give their first element. */
  header(name: string): string | undefined {
    const key = headerKey(name);
    for (const field of this.fields) {
      if (field.key !== key) continue;
      if (field.def?.list) {
        for (const v of splitTopLevelCommas(this.textOf(field))) if (v.length > 0) return v;
        continue;
      }
      return this.textOf(field);
    }
    return undefined;
  }

  /** Every value of a header in order: list headers split into elements, others one per line. */
  headers(name: string): string[] {
    const key = headerKey(name);
    const out: string[] = [];
    for (const field of this.fields) {
      if (field.key !== key) continue;
      if (field.def?.list) {
        for (const v of splitTopLevelCommas(this.textOf(field))) if (v.length > 0) out.push(v);
      } else out.push(this.textOf(field));
    }
    return out;
  }

  /** True when at least one field of this header is present. */
  hasHeader(name: string): boolean {
    const key = headerKey(name);
    return this.fields.some((f) => f.key === key);
  }

  /** How many header lines carry this header (validation counts them for single-value headers). */
  headerLineCount(name: string): number {
    const key = headerKey(name);
    let n = 0;
    for (const f of this.fields) if (f.key === key) n++;
    return n;
  }

  /** The names of all header lines, in order, canonical spelling for known headers. */
  headerNames(): string[] {
    return this.fields.map((f) => f.def?.canonical ?? f.name);
  }

  // ---- typed access -----------------------------------------------------------------------

  /** Every Via value, top first (RFC 3261 §20.42). */
  get via(): Via[] {
    if (this.viaCache !== undefined) return this.viaCache;
    const fields = this.fields;
    let out: Via[] | undefined;
    let shared = false;
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i]!;
      if (field.key !== 'via') continue;
      const values = this.parsedValues(field, VIA_GRAMMAR) as Via[];
      // One Via line (the usual case) shares the field's array; more are joined in a new one.
      if (out === undefined) {
        out = values;
        shared = true;
      } else {
        if (shared) {
          out = out.slice();
          shared = false;
        }
        for (const v of values) out.push(v);
      }
    }
    return (this.viaCache = out ?? []);
  }

  get from(): NameAddr {
    return (this.fromCache ??= this.required('from', nameAddr) as NameAddr);
  }

  get to(): NameAddr {
    return (this.toCache ??= this.required('to', nameAddr) as NameAddr);
  }

  /** Call-ID = word [ "@" word ] (RFC 3261 §20.8); compared byte for byte. */
  get callId(): string {
    if (this.callIdCache !== undefined) return this.callIdCache;
    const field = this.firstField('call-id');
    if (field === undefined) throw new SipParseError('SIP_BAD_VALUE', 'no Call-ID header', 'call-id');
    const value = this.textOf(field);
    let ok = value.length > 0;
    for (let i = 0; ok && i < value.length; i++) ok = value.charCodeAt(i) > 0x20;
    if (!ok) throw new SipParseError('SIP_BAD_VALUE', 'Call-ID is empty or contains white space', 'call-id');
    return (this.callIdCache = value);
  }

  get cseq(): CSeq {
    return (this.cseqCache ??= this.required('cseq', parseCSeqValue) as CSeq);
  }

  /** Max-Forwards (0–255, RFC 3261 §20.22), undefined when absent. */
  get maxForwards(): number | undefined {
    const v = this.header('max-forwards');
    return v === undefined ? undefined : parseBoundedUInt(v, 'max-forwards', 255);
  }

  /** Expires in seconds (RFC 3261 §20.19), undefined when absent. */
  get expires(): number | undefined {
    const v = this.header('expires');
    return v === undefined ? undefined : parseBoundedUInt(v, 'expires', MAX_UINT32);
  }

  /** Content-Length in bytes; the body's length when the header is absent. */
  get contentLength(): number {
    const v = this.header('content-length');
    return v === undefined ? this.body.length : parseBoundedUInt(v, 'content-length', MAX_UINT32);
  }

  /** The Content-Type value as written, undefined when absent. */
  get contentType(): string | undefined {
    return this.header('content-type');
  }

  /** The Content-Type parsed into type, subtype and parameters. */
  get mediaType(): MediaType | undefined {
    return this.optional('content-type') as MediaType | undefined;
  }

  /** Contact values; empty for `Contact: *` (see `wildcardContact`). */
  get contact(): NameAddr[] {
    if (this.wildcardContact) return [];
    return this.typedList('contact') as NameAddr[];
  }

  /** `Contact: *` (RFC 3261 §10.2.2: remove every binding; only with Expires: 0). */
  get wildcardContact(): boolean {
    const first = this.header('contact');
    return first === '*';
  }

  get route(): NameAddr[] {
    return this.typedList('route') as NameAddr[];
  }

  get recordRoute(): NameAddr[] {
    return this.typedList('record-route') as NameAddr[];
  }

  get allow(): string[] {
    return parseTokenList(this.headers('allow'), 'allow');
  }

  get supported(): string[] {
    return parseTokenList(this.headers('supported'), 'supported');
  }

  get require(): string[] {
    return parseTokenList(this.headers('require'), 'require');
  }

  get proxyRequire(): string[] {
    return parseTokenList(this.headers('proxy-require'), 'proxy-require');
  }

  get unsupported(): string[] {
    return parseTokenList(this.headers('unsupported'), 'unsupported');
  }

  get event(): EventHeader | undefined {
    const v = this.header('event');
    return v === undefined ? undefined : parseEvent(v);
  }

  get subscriptionState(): SubscriptionState | undefined {
    const v = this.header('subscription-state');
    return v === undefined ? undefined : parseSubscriptionState(v);
  }

  get wwwAuthenticate(): AuthValue[] {
    return this.headers('www-authenticate').map((v) => parseAuthValue(v, 'www-authenticate'));
  }

  get proxyAuthenticate(): AuthValue[] {
    return this.headers('proxy-authenticate').map((v) => parseAuthValue(v, 'proxy-authenticate'));
  }

  get authorization(): AuthValue[] {
    return this.headers('authorization').map((v) => parseAuthValue(v, 'authorization'));
  }

  get proxyAuthorization(): AuthValue[] {
    return this.headers('proxy-authorization').map((v) => parseAuthValue(v, 'proxy-authorization'));
  }

  /** The body: exactly Content-Length bytes (extra datagram bytes are not part of it). */
  get body(): Buffer {
    if (this.body_ === undefined) {
      this.body_ = this.bodyStart >= 0 ? this.source.subarray(this.bodyStart, this.bodyEnd) : EMPTY;
    }
    return this.body_;
  }

  // ---- changes ----------------------------------------------------------------------------

  /** Replaces every field of a header with one field holding `value` (kept where the first one was). */
  setHeader(name: string, value: string | { toString(): string }): void {
    const key = headerKey(name);
    this.noteLocalContact(key, value);
    const field = this.newField(name, key, String(value));
    const at = this.fields.findIndex((f) => f.key === key);
    this.removeFields(key);
    this.fields.splice(at === -1 ? this.fields.length : at, 0, field);
    this.headersChanged();
  }

  /** Appends a field after all others. */
  addHeader(name: string, value: string | { toString(): string }): void {
    const key = headerKey(name);
    this.noteLocalContact(key, value);
    this.fields.push(this.newField(name, key, String(value)));
    this.headersChanged();
  }

  /** Inserts a field before the first field of the same header (at the top when there is none):
   *  what a proxy does with Via and Record-Route (RFC 3261 §16.6). */
  prependHeader(name: string, value: string | { toString(): string }): void {
    const key = headerKey(name);
    this.noteLocalContact(key, value);
    const at = this.fields.findIndex((f) => f.key === key);
    this.fields.splice(at === -1 ? 0 : at, 0, this.newField(name, key, String(value)));
    this.headersChanged();
  }

  /** Removes every field of a header; returns how many lines went. */
  removeHeader(name: string): number {
    const n = this.removeFields(headerKey(name));
    if (n > 0) this.headersChanged();
    return n;
  }

  /** Removes the first value of a header: the top Via, the top Route (RFC 3261 §16.4, §16.7). */
  removeFirstValue(name: string): boolean {
    const key = headerKey(name);
    const index = this.fields.findIndex((f) => f.key === key);
    if (index === -1) return false;
    const field = this.fields[index]!;
    if (field.def?.list) {
      const values = splitTopLevelCommas(this.textOf(field)).filter((v) => v.length > 0);
      if (values.length > 1) {
        this.fields[index] = this.newField(field.name, key, values.slice(1).join(', '));
        this.headersChanged();
        return true;
      }
    }
    this.fields.splice(index, 1);
    this.headersChanged();
    return true;
  }

  /**
   * Edits a typed value in place and re-encodes its field: `index` counts values across lines for
   * list headers (Via, Contact, Route…), lines for the others. For example
   * `msg.update('via', 0, (via) => { via.params.received = '192.0.2.1'; })`.
   */
  update<T = unknown>(name: string, index: number, edit: (value: T) => void): void {
    const key = headerKey(name);
    const grammar = GRAMMARS[key];
    if (!grammar) throw new ParleyError('ERR_NO_GRAMMAR', `update() does not know the grammar of ${name}; use setHeader()`);
    let remaining = index;
    for (const field of this.fields) {
      if (field.key !== key) continue;
      const values = this.parsedValues(field, grammar);
      if (remaining < values.length) {
        edit(values[remaining] as T);
        field.text = values.map(grammar.format).join(', ');
        field.dirty = true;
        this.headersChanged();
        return;
      }
      remaining -= values.length;
    }
    throw new ParleyError('ERR_NO_SUCH_VALUE', `${name} has no value number ${index}`);
  }

  /** Sets the body and keeps Content-Length right (bytes, not characters); sets or clears Content-Type. */
  setBody(body: Uint8Array | string, contentType?: string): void {
    this.body_ = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    this.setHeader('Content-Length', String(this.body_.length));
    if (contentType !== undefined) this.setHeader('Content-Type', contentType);
    else if (body.length === 0) this.removeHeader('Content-Type');
    this.encoded = undefined;
  }

  // ---- serialization ----------------------------------------------------------------------

  /** The message as bytes: the original bytes when nothing changed, else a fresh encoding. Cached. */
  toBuffer(): Buffer {
    if (this.encoded) return this.encoded;
    if (this.startLineStart >= 0 && this.sourceEnd >= 0) {
      return (this.encoded = this.source.subarray(this.startLineStart, this.sourceEnd));
    }
    const parts: Buffer[] = [];
    if (this.startLineStart >= 0) parts.push(this.source.subarray(this.startLineStart, this.startLineEnd));
    else parts.push(Buffer.from(this.startLineText(), 'utf8'));
    parts.push(CRLF);
    for (const field of this.fields) {
      if (!field.dirty) parts.push(this.source.subarray(field.lineStart, field.lineEnd));
      else parts.push(Buffer.from(`${field.name}: ${field.text ?? ''}\r\n`, 'utf8'));
    }
    parts.push(CRLF, this.body);
    return (this.encoded = Buffer.concat(parts));
  }

  toString(): string {
    return this.toBuffer().toString('utf8');
  }

  /** A deep copy that shares nothing mutable with this message (e.g. a request to fork or resend). */
  clone(): SipMessage {
    const copy = parseCopy(this);
    copy.contactFillIn = this.contactFillIn;
    return copy;
  }

  // ---- internals --------------------------------------------------------------------------

  private noteLocalContact(key: string, value: unknown): void {
    if (key === 'contact' && value instanceof LocalContact) this.contactFillIn = true;
  }

  private startLineText(): string {
    return this.isRequest
      ? `${this.method_} ${this.uriText} ${this.version_}`
      : `${this.version_} ${this.status_} ${this.reason_}`;
  }

  private startLineChanged(): void {
    this.startLineStart = -1;
    this.sourceEnd = -1;
    this.encoded = undefined;
  }

  private headersChanged(): void {
    this.sourceEnd = -1;
    this.encoded = undefined;
    this.listCache = undefined;
    this.viaCache = undefined;
    this.fromCache = this.toCache = undefined;
    this.cseqCache = undefined;
    this.callIdCache = undefined;
  }

  private newField(name: string, key: string, text: string): HeaderField {
    const def = headerDef(key);
    return new HeaderField(key, def, def?.canonical ?? canonicalHeaderName(name), -1, -1, -1, -1, false, text);
  }

  private removeFields(key: string): number {
    let n = 0;
    for (let i = this.fields.length - 1; i >= 0; i--) {
      if (this.fields[i]!.key === key) {
        this.fields.splice(i, 1);
        n++;
      }
    }
    return n;
  }

  private textOf(field: HeaderField): string {
    if (field.text !== undefined) return field.text;
    // Latin-1 and UTF-8 agree on ASCII; anything else is decoded from the bytes as UTF-8.
    const head = this.headText;
    let text =
      head !== undefined && isAscii(head, field.valueStart, field.valueEnd)
        ? head.slice(field.valueStart, field.valueEnd)
        : utf8(this.source, field.valueStart, field.valueEnd);
    // RFC 3261 §7.3.1: a fold (line break + white space) is equivalent to one SP.
    if (field.folded) text = text.replace(/[ \t]*\r?\n[ \t]+/g, ' ');
    return (field.text = text);
  }

  private parsedValues(field: HeaderField, grammar: Grammar): unknown[] {
    if (field.parsed !== undefined) return field.parsed as unknown[];
    try {
      return this.parseField(field, grammar);
    } catch (error) {
      // Inside a comma-split element the reader's position is relative to the element.
      throw this.locate(error, field, !grammar.list || field.text === undefined || field.text.indexOf(',') === -1);
    }
  }

  /**
   * A grammar error from a value, with its offset made a byte offset in the message: the value's
   * start plus the position inside it when the value is one unfolded ASCII run (otherwise the
   * value's start).
   */
  private locate(error: unknown, field: HeaderField, positional = true): unknown {
    if (!(error instanceof SipParseError) || field.lineStart < 0) return error;
    const exact = positional && !field.folded && error.offset >= 0 && field.text !== undefined &&
      field.text.length === field.valueEnd - field.valueStart && isAscii(field.text, 0, field.text.length);
    const offset = field.valueStart + (exact && error.offset <= field.text!.length ? error.offset : 0);
    return new SipParseError(error.code, error.message, error.header ?? field.key, offset);
  }

  private parseField(field: HeaderField, grammar: Grammar): unknown[] {
    const text = this.textOf(field);
    let values: unknown[];
    if (!grammar.list || text.indexOf(',') === -1) values = [grammar.parse(text, field.key)];
    else {
      const parts = splitTopLevelCommas(text);
      values = new Array<unknown>(parts.length);
      for (let i = 0; i < parts.length; i++) values[i] = grammar.parse(parts[i]!, field.key);
    }
    field.parsed = values;
    return values;
  }

  private typedList(key: string): unknown[] {
    const cached = this.listCache?.get(key);
    if (cached) return cached;
    const grammar = GRAMMARS[key]!;
    const out: unknown[] = [];
    for (const field of this.fields) {
      if (field.key === key) for (const v of this.parsedValues(field, grammar)) out.push(v);
    }
    (this.listCache ??= new Map()).set(key, out);
    return out;
  }

  private firstField(key: string): HeaderField | undefined {
    const fields = this.fields;
    for (let i = 0; i < fields.length; i++) if (fields[i]!.key === key) return fields[i];
    return undefined;
  }

  private optional(key: string): unknown {
    const field = this.firstField(key);
    return field === undefined ? undefined : this.parsedValues(field, GRAMMARS[key]!)[0];
  }

  /** The first value of a single-valued header, parsed with `parse` (cached on the field). */
  private required(key: string, parse: (text: string, key: string) => unknown): unknown {
    const field = this.firstField(key);
    if (field === undefined) throw new SipParseError('SIP_BAD_VALUE', `no ${canonicalHeaderName(key)} header`, key);
    if (field.parsed === undefined) {
      try {
        field.parsed = [parse(this.textOf(field), key)];
      } catch (error) {
        throw this.locate(error, field);
      }
    }
    return (field.parsed as unknown[])[0];
  }

}

// Set by parse-message.ts: cloning re-parses the encoding, which is both simple and exactly a
// deep copy. Assigned at module load to keep this file free of an import cycle.
let parseCopy: (message: SipMessage) => SipMessage = () => {
  throw new ParleyError('ERR_NOT_READY', 'the message parser is not loaded');
};

/** @internal */
export function setCloneParser(parse: (message: SipMessage) => SipMessage): void {
  parseCopy = parse;
}

