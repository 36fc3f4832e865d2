import { randomToken } from '../util/random.js';
import { NameAddr, parseNameAddr } from './name-addr.js';
import { SipParseError } from './parse-error.js';
import { SipMessage } from './sip-message.js';
import { parseUri, SipUri } from './uri.js';
import { Via } from './via.js';

/** RFC 3261 §8.1.1.7: the branch of a 3261-compliant request starts with this magic cookie. */
export const MAGIC_COOKIE = 'z9hG4bK';

/** A Via branch: the magic cookie and 96 random bits (§8.1.1.7: unique across space and time). */
export function generateBranch(): string {
  return MAGIC_COOKIE + randomToken(16);
}

/** A From/To tag: 72 random bits (§19.3: at least 32 bits of randomness). */
export function generateTag(): string {
  return randomToken(12);
}

/** A Call-ID: 144 random bits (§8.1.1.4: globally unique over space and time). */
export function generateCallId(host?: string): string {
  const id = randomToken(24);
  return host ? `${id}@${host}` : id;
}

type AddressInput = string | SipUri | NameAddr;
type HeaderInput = Record<string, string | number | ReadonlyArray<string | number>>;

export interface RequestInit {
  method: string;
  uri: string | SipUri;
  from: AddressInput;
  to: AddressInput;
  /** Generated when absent. */
  callId?: string;
  /** CSeq number; 1 when absent. The method is always the request's (§8.1.1.5). */
  cseq?: number;
  /** Default 70 (§8.1.1.6). */
  maxForwards?: number;
  /** Top Via; the transport layer fills sent-by when left as is. A branch is generated if missing. */
  via?: Via | string;
  contact?: AddressInput;
  /** More headers, in order. */
  headers?: HeaderInput;
  body?: Uint8Array | string;
  contentType?: string;
}

/** Builds a request with the headers §8.1.1 requires, a From tag, and a correct Content-Length. */
export function createRequest(init: RequestInit): SipMessage {
  const uri = typeof init.uri === 'string' ? parseUri(init.uri, 'request-uri') : init.uri;
  const message = new SipMessage({
    startLine: {
      isRequest: true,
      method: init.method,
      uriText: uri.toString(),
      version: 'SIP/2.0',
      status: 0,
      reason: '',
      problem: undefined,
    },
  });
  const via = typeof init.via === 'string' ? init.via : (init.via ?? new Via({ transport: 'UDP', host: '0.0.0.0' }));
  const viaText = via.toString();
  message.addHeader('Via', /;\s*branch=/i.test(viaText) ? viaText : `${viaText};branch=${generateBranch()}`);
  message.addHeader('Max-Forwards', String(init.maxForwards ?? 70));
  const to = toNameAddr(init.to, 'to');
  message.addHeader('To', to);
  const from = toNameAddr(init.from, 'from');
  if (from.tag === undefined) from.tag = generateTag();
  message.addHeader('From', from);
  message.addHeader('Call-ID', init.callId ?? generateCallId());
  message.addHeader('CSeq', `${init.cseq ?? 1} ${init.method}`);
  if (init.contact !== undefined) message.addHeader('Contact', toNameAddr(init.contact, 'contact'));
  addHeaders(message, init.headers);
  message.setBody(init.body ?? '', init.contentType);
  return message;
}

export interface ResponseInit {
  /** The To tag to add when the request's To has none (generated when absent; never on a 100). */
  toTag?: string;
  headers?: HeaderInput;
  body?: Uint8Array | string;
  contentType?: string;
}

/**
 * Builds a response to `request` per RFC 3261 §8.2.6.2: Via (all values, in order), From, To,
 * Call-ID and CSeq copied; a To tag added unless the To already has one or the status is 100;
 * Timestamp echoed on a 100 (§8.2.6.1).
 */
export function createResponse(request: SipMessage, status: number, reason?: string, init: ResponseInit = {}): SipMessage {
  const message = new SipMessage({
    startLine: {
      isRequest: false,
      method: '',
      uriText: '',
      version: 'SIP/2.0',
      status,
      reason: reason ?? defaultReason(status),
      problem: undefined,
    },
  });
  for (const value of request.headers('via')) message.addHeader('Via', value);
  message.addHeader('From', request.header('from') ?? '');
  const toText = request.header('to') ?? '';
  const to = status > 100 ? readableTo(toText) : undefined;
  if (to && to.tag === undefined) {
    to.tag = init.toTag ?? generateTag();
    message.addHeader('To', to);
  } else message.addHeader('To', toText);
  message.addHeader('Call-ID', request.header('call-id') ?? '');
  message.addHeader('CSeq', request.header('cseq') ?? '');
  if (status === 100) {
    const timestamp = request.header('timestamp');
    if (timestamp !== undefined) message.addHeader('Timestamp', timestamp);
  }
  addHeaders(message, init.headers);
  message.setBody(init.body ?? '', init.contentType);
  return message;
}

/** The request's To, or undefined when it cannot be read: a 400 for a broken To still goes out,
 *  with the To copied as it came. */
function readableTo(text: string): NameAddr | undefined {
  try {
    const to = parseNameAddr(text, 'to');
    void to.uri; // the URI is parsed lazily: read it here, where a failure can still be handled
    return to;
  } catch (error) {
    if (error instanceof SipParseError) return undefined;
    throw error;
  }
}

function toNameAddr(input: AddressInput, header: string): NameAddr {
  if (input instanceof NameAddr) return input.clone();
  if (input instanceof SipUri) return new NameAddr(input.clone());
  return parseNameAddr(input, header);
}

function addHeaders(message: SipMessage, headers: HeaderInput | undefined): void {
  if (!headers) return;
  for (const name of Object.keys(headers)) {
    const value = headers[name]!;
    if (Array.isArray(value)) for (const v of value) message.addHeader(name, String(v));
    else message.addHeader(name, String(value));
  }
}

/** Reason phrases of RFC 3261 §21 and the extensions Parley uses. */
const REASON_PHRASES: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  200: 'OK', 202: 'Accepted', 204: 'No Notification',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily', 305: 'Use Proxy', 380: 'Alternative Service',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  410: 'Gone', 412: 'Conditional Request Failed', 413: 'Request Entity Too Large', 414: 'Request-URI Too Long',
  415: 'Unsupported Media Type', 416: 'Unsupported URI Scheme', 420: 'Bad Extension', 421: 'Extension Required',
  423: 'Interval Too Brief', 428: 'Use Identity Header', 429: 'Provide Referrer Identity', 430: 'Flow Failed',
  439: 'First Hop Lacks Outbound Support', 480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected', 483: 'Too Many Hops', 484: 'Address Incomplete', 485: 'Ambiguous', 486: 'Busy Here',
  487: 'Request Terminated', 488: 'Not Acceptable Here', 489: 'Bad Event', 491: 'Request Pending', 493: 'Undecipherable',
  500: 'Server Internal Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Server Time-out', 505: 'Version Not Supported', 513: 'Message Too Large',
  600: 'Busy Everywhere', 603: 'Decline', 604: 'Does Not Exist Anywhere', 606: 'Not Acceptable',
};

export function defaultReason(status: number): string {
  return REASON_PHRASES[status] ?? '';
}
