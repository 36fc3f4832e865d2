import { LocalContact } from './local-contact.js';
import { randomToken } from '../util/random.js';
import { NameAddr, parseNameAddr } from './name-addr.js';
import { SipParseError } from './parse-error.js';
import { SipMessage, type SipMessageInit } from './sip-message.js';
import { parseUri, SipUri } from './uri.js';
import { Via } from './via.js';

/** RFC 3261 §8.1.1.7: the branch of a 3261-compliant request starts with this magic cookie. */
export const MAGIC_COOKIE = 'z9hG4bK';

/** The sent-by a request leaves for the transport layer to fill in (§18.1.1: only it knows it). */
const FILL_IN_SENT_BY = '0.0.0.0';

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
/** Header values: text, numbers, or a LocalContact (which marks the message's Contact for the transport to fill). */
type HeaderValue = string | number | LocalContact;
type HeaderInput = Record<string, HeaderValue | ReadonlyArray<HeaderValue>>;

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
  /** A LocalContact leaves host, port and transport to the transport layer (§8.1.1.8). */
  contact?: AddressInput | LocalContact;
  /** More headers, in order. */
  headers?: HeaderInput;
  body?: Uint8Array | string;
  contentType?: string;
}

/** Builds a request with the headers §8.1.1 requires, a From tag, and a correct Content-Length. */
export function createRequest(init: RequestInit): SipMessage {
  const uri = typeof init.uri === 'string' ? parseUri(init.uri, 'request-uri') : init.uri;
  const message = new SipMessage(requestLine(init.method, uri.toString()));
  const via = typeof init.via === 'string' ? init.via : (init.via ?? new Via({ transport: 'UDP', host: FILL_IN_SENT_BY }));
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
  if (init.contact !== undefined) message.addHeader('Contact', init.contact instanceof LocalContact ? init.contact : toNameAddr(init.contact, 'contact'));
  addHeaders(message, init.headers);
  message.setBody(init.body ?? '', init.contentType);
  return message;
}

/**
 * A request whose next hop was decided when it was built, because its headers alone cannot say
 * it: one built for a strict router (RFC 3261 §12.2.1.1) carries that router in its Request-URI
 * and the remote target last in Route, and §8.1.2 says "the procedures MUST be applied to the
 * Request-URI of the request" then, not to its first Route. `nextHop` is undefined when §8.1.2's
 * default holds (the first Route, else the Request-URI). A `clone()` is a plain SipMessage: the
 * sender reads `nextHop` once, when it first sends the request.
 */
export class RoutedRequest extends SipMessage {
  constructor(
    init: SipMessageInit,
    readonly nextHop: SipUri | undefined,
  ) {
    super(init);
  }
}

/** The next hop a builder decided for `request` (see RoutedRequest), else undefined: §8.1.2 reads it from the headers. */
export function decidedNextHop(request: SipMessage): SipUri | undefined {
  return request instanceof RoutedRequest ? request.nextHop : undefined;
}

/**
 * RFC 3261 §9.1: the CANCEL for `invite`, built by a UAC (or a proxy, §16.10) from the INVITE as it
 * went on the wire. "The Request-URI, Call-ID, To, the numeric part of CSeq, and From header fields
 * in the CANCEL request MUST be identical to those in the request being cancelled, including tags.
 * A CANCEL constructed by a client MUST have only a single Via header field value matching the top
 * Via value in the request being cancelled" — so it matches the INVITE's server transaction
 * (§9.2, §17.2.3) — and "If the request being cancelled contains a Route header field, the CANCEL
 * request MUST include that Route header field's values." Values are copied as written, so they are
 * byte for byte the INVITE's. No body, no credentials: a CANCEL cannot be challenged (§22.1).
 */
export function createCancel(invite: SipMessage): SipMessage {
  return copyOfInvite('CANCEL', invite, invite.header('to') ?? '');
}

/**
 * RFC 3261 §17.1.1.3: the ACK an INVITE client transaction sends for a 300-699 response. "…Call-ID,
 * From, and Request-URI that are equal to the values of those header fields in the request passed
 * to the transport by the client transaction… The To header field in the ACK MUST equal the To
 * header field in the response being acknowledged" (with its tag); "a single Via header field…
 * equal to the top Via header field of the original request"; the CSeq number of the request
 * with method ACK; and "If the INVITE request… had Route header fields, those header fields MUST
 * appear in the ACK."
 */
export function createNonSuccessAck(invite: SipMessage, response: SipMessage): SipMessage {
  return copyOfInvite('ACK', invite, response.header('to') ?? '');
}

/** What §9.1's CANCEL and §17.1.1.3's ACK share: the INVITE's Request-URI, top Via, Route, From, Call-ID and CSeq number. */
function copyOfInvite(method: 'CANCEL' | 'ACK', invite: SipMessage, to: string): SipMessage {
  const message = new SipMessage(requestLine(method, invite.requestUriText));
  message.addHeader('Via', invite.headers('via')[0] ?? '');
  for (const route of invite.headers('route')) message.addHeader('Route', route);
  // §8.1.1.6: a request a UAC makes starts at 70 (neither §9.1 nor §17.1.1.3 copies the INVITE's).
  message.addHeader('Max-Forwards', '70');
  message.addHeader('From', invite.header('from') ?? '');
  message.addHeader('To', to);
  message.addHeader('Call-ID', invite.header('call-id') ?? '');
  message.addHeader('CSeq', `${invite.cseq.seq} ${method}`);
  message.setBody('');
  return message;
}

/**
 * What RFC 3261 §12 keeps for a dialog that a request inside it is built from (the dialog object
 * itself belongs to the layers above, which hand its state down as plain data).
 */
export interface DialogState {
  readonly callId: string;
  /** From of our requests, without its tag. */
  readonly localUri: NameAddr;
  readonly localTag: string;
  /** To of our requests, without its tag. */
  readonly remoteUri: NameAddr;
  readonly remoteTag: string;
  readonly remoteTarget: SipUri;
  /** In the order our requests carry them (§12.1.1: as Record-Route came; §12.1.2: reversed). */
  readonly routeSet: readonly NameAddr[];
}

export interface DialogRequestInit {
  method: string;
  /** §12.2.1.1: "the local sequence number… incremented by one" — the dialog counts. */
  cseq: number;
  /** Our Contact (a target-refresh request carries one, §12.2.1.1). */
  /** A LocalContact leaves host, port and transport to the transport layer (§8.1.1.8). */
  contact?: AddressInput | LocalContact;
  /** More headers, in order. */
  headers?: HeaderInput;
  body?: Uint8Array | string;
  contentType?: string;
}

/**
 * RFC 3261 §12.2.1.1: a request inside a dialog. "The URI in the To field of the request MUST be
 * set to the remote URI from the dialog state. The tag in the To header field of the request MUST
 * be set to the remote tag of the dialog ID. The From URI… MUST be set to the local URI from the
 * dialog state. The tag in the From header field… MUST be set to the local tag of the dialog ID…
 * The Call-ID of the request MUST be set to the Call-ID of the dialog." The Request-URI and Route
 * follow the route set (see `routeFor`); a strict-routed request carries its next hop (RoutedRequest).
 * The top Via is left for the transport layer to fill in, with a fresh branch (§8.1.1.7).
 */
export function createDialogRequest(dialog: DialogState, init: DialogRequestInit): RoutedRequest {
  const { requestUri, routes, strict } = routeFor(dialog);
  const message = new RoutedRequest(requestLine(init.method, requestUri.toString()), strict ? requestUri : undefined);
  message.addHeader('Via', `SIP/2.0/UDP ${FILL_IN_SENT_BY};branch=${generateBranch()}`);
  message.addHeader('Max-Forwards', '70');
  message.addHeader('From', withTag(dialog.localUri, dialog.localTag));
  message.addHeader('To', withTag(dialog.remoteUri, dialog.remoteTag));
  message.addHeader('Call-ID', dialog.callId);
  message.addHeader('CSeq', `${init.cseq} ${init.method}`);
  for (const route of routes) message.addHeader('Route', route);
  if (init.contact !== undefined) message.addHeader('Contact', init.contact instanceof LocalContact ? init.contact : toNameAddr(init.contact, 'contact'));
  addHeaders(message, init.headers);
  message.setBody(init.body ?? '', init.body !== undefined ? init.contentType : undefined);
  return message;
}

/**
 * RFC 3261 §12.2.1.1's Request-URI and Route for a dialog's route set and remote target.
 * - Empty route set: "the UAC MUST place the remote target URI into the Request-URI. The UAC MUST
 *   NOT add a Route header field to the request."
 * - First route with `lr` (a loose router): "the UAC MUST place the remote target URI into the
 *   Request-URI and MUST include a Route header field containing the route set values in order,
 *   including all parameters."
 * - First route without `lr` (a strict router): "the UAC MUST place the first URI from the route
 *   set into the Request-URI, stripping any parameters that are not allowed in a Request-URI"
 *   (§19.1.1's table: `method` and URI headers), then "the remainder of the route set values in
 *   order, including all parameters" in Route, and "the remote target URI into the Route header
 *   field as the last value."
 */
export function routeFor(dialog: Pick<DialogState, 'remoteTarget' | 'routeSet'>): { requestUri: SipUri; routes: NameAddr[]; strict: boolean } {
  const first = dialog.routeSet[0];
  const routes = dialog.routeSet.map((route) => route.clone());
  if (!first || 'lr' in first.uri.params) return { requestUri: dialog.remoteTarget.clone(), routes, strict: false };
  const requestUri = first.uri.clone();
  delete requestUri.params.method;
  requestUri.headers = {};
  routes.shift();
  routes.push(new NameAddr(dialog.remoteTarget.clone()));
  return { requestUri, routes, strict: true };
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

function requestLine(method: string, uriText: string): SipMessageInit {
  return { startLine: { isRequest: true, method, uriText, version: 'SIP/2.0', status: 0, reason: '', problem: undefined } };
}

function withTag(address: NameAddr, tag: string): NameAddr {
  const copy = address.clone();
  copy.tag = tag;
  return copy;
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
    // A LocalContact goes in as itself: the message notes its type (contactFillIn).
    const add = (v: HeaderValue): void => message.addHeader(name, typeof v === 'number' ? String(v) : v);
    if (Array.isArray(value)) for (const v of value as ReadonlyArray<HeaderValue>) add(v);
    else add(value as HeaderValue);
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
