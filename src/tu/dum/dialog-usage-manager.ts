import { randomUUID } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { EventEmitter } from 'eventemitter3';
import { createRequest, createResponse, decidedNextHop, generateCallId } from '../../message/builder.js';
import { NameAddr, parseNameAddr } from '../../message/name-addr.js';
import { SipParseError } from '../../message/parse-error.js';
import { SipMessage } from '../../message/sip-message.js';
import { parseUri } from '../../message/uri.js';
import { KNOWN_METHODS } from '../../message/validate.js';
import type { SipStack } from '../../stack.js';
import { PARLEY_VERSION } from '../../version.js';
import { localFailure } from '../../transaction/client-transaction.js';
import type { ServerTransaction } from '../../transaction/server-transaction.js';
import { UDP_SIZE_LIMIT } from '../../transport/transport-selector.js';
import { LocalContact } from '../../message/local-contact.js';
import type { Clock } from '../../util/clock.js';
import type { TimerHandle } from '../../util/clock.js';
import type { ServerRequest, TransactionUser, UasProfile } from '../transaction-user.js';
import { ClientInviteSession, type InviteOptions } from './client-invite-session.js';
import { ClientRegistration, type RegisterOptions } from './client-registration.js';
import { ClientSubscription, type SubscribeOptions } from './client-subscription.js';
import { dialogKey } from './dialog.js';
import type { Dialog } from './dialog.js';
import { DigestClient, type Credential } from './digest-client.js';
import { DumError } from './dum-error.js';
import { acceptsType } from './media-types.js';
import { DumRequest, type RequestHooks } from './dum-request.js';
import { IncomingMessage, type Answer, type MessageOptions } from './pager.js';
import { ServerInviteSession } from './server-invite-session.js';
import { ServerSubscription } from './server-subscription.js';

export interface DumOptions {
  /** Our address of record: the From of requests we originate. */
  aor?: string;
  displayName?: string;
  credentials?: Credential[];
  /** A URI put as the Route of every out-of-dialog request (a loose route). */
  outboundProxy?: string;
  /** User-Agent header; default `Parley/<version>`. */
  userAgent?: string;
  /** RFC 5626 +sip.instance (`urn:uuid:…`); default a random UUID per DUM. */
  instanceId?: string;
  /** Body types taken in MESSAGE (415 otherwise); default any. */
  acceptedTypes?: string[];
  /** Body types taken in INVITE and re-INVITE; default application/sdp. */
  sessionTypes?: string[];
}

/** Requests the DUM answers itself, for logging: `(request, status)`. */
export interface DumEvents {
  stray: [request: SipMessage, status: number];
}

/** What a dialog's owner (a session or subscription) does with the requests inside it. */
export interface DialogUsage {
  /** Undefined until the usage has its dialog (it is filed only then). */
  readonly dialog: Dialog | undefined;
  /** A request in the dialog, after §12.2.2's CSeq check. */
  onRequest(request: ServerRequest): void | Promise<void>;
  /** An ACK to a 2xx (§13.3.1.4). */
  onAck?(request: ServerRequest): void;
}

/** A usage whose request can create dialogs later (RFC 6665 §4.1.2.4: a NOTIFY before the 2xx, or from a fork). */
export interface DialogSetOwner {
  /** A NOTIFY with our tag and no dialog yet; true when the owner took it. */
  onDialogCreatingNotify(request: ServerRequest): boolean;
}

/** A usage the DUM ends on close(). */
export interface ClosableUsage {
  close(): Promise<void>;
}

/** Requests whose handling threw, with the error: `{ request, error }`. */
const errorChannel = channel('parley:dum:error');

/** Option tags the DUM implements (RFC 5626 outbound, RFC 3327 Path at a registrar). */
export const DUM_EXTENSIONS = ['outbound', 'path'];

/** What every DUM profile shares: our option tags, any body type, a REGISTER's Require left to the registrar. */
const DUM_PROFILE: Omit<UasProfile, 'methods'> = { extensions: DUM_EXTENSIONS, tuChecksRequire: ['REGISTER'], bodyTypes: ['*/*'] };

/**
 * The layer applications are written against (reSIProcate's DialogUsageManager): the stack's
 * transaction user that owns dialogs and usages, answers what no usage claims, and hides the
 * transaction plumbing and digest challenges behind handlers, events and promises (docs/dum.md).
 */
export class DialogUsageManager extends EventEmitter<DumEvents> implements TransactionUser {
  readonly clock: Clock;
  readonly digest: DigestClient;
  readonly aor: NameAddr;
  readonly instanceId: string;
  readonly userAgent: string;
  readonly outboundProxy: string | undefined;
  readonly acceptedTypes: readonly string[];
  readonly sessionTypes: readonly string[];
  private readonly dialogs = new Map<string, DialogUsage>();
  private readonly dialogSets = new Map<string, DialogSetOwner>();
  private readonly inviteServers = new Map<ServerTransaction, ServerInviteSession>();
  private readonly usages = new Set<ClosableUsage>();
  private messageHandler: ((message: IncomingMessage) => Answer | Promise<Answer>) | undefined;
  private optionsBody: ((request: ServerRequest) => { body: string | Uint8Array; contentType: string } | undefined) | undefined;
  private inviteHandler: ((session: ServerInviteSession) => void | Promise<void>) | undefined;
  private registerHandler: ((request: ServerRequest) => void | Promise<void>) | undefined;
  private readonly subscribeHandlers = new Map<string, (subscription: ServerSubscription) => void | Promise<void>>();
  private readonly otherHandlers = new Map<string, (request: ServerRequest) => void | Promise<void>>();
  private closed = false;

  constructor(
    readonly stack: SipStack,
    options: DumOptions = {},
  ) {
    super();
    this.clock = stack.clock;
    this.digest = new DigestClient(options.credentials ?? []);
    this.aor = parseNameAddr(options.aor ?? 'sip:anonymous@anonymous.invalid', 'from');
    if (options.displayName !== undefined) this.aor.displayName = options.displayName;
    this.instanceId = options.instanceId ?? `urn:uuid:${randomUUID()}`;
    this.userAgent = options.userAgent ?? `Parley/${PARLEY_VERSION}`;
    this.outboundProxy = options.outboundProxy;
    this.acceptedTypes = options.acceptedTypes ?? ['*/*'];
    this.sessionTypes = options.sessionTypes ?? ['application/sdp'];
    stack.setDefaultTu(this);
  }

  // ---- what the application does ------------------------------------------------------------

  register(options: RegisterOptions = {}): ClientRegistration {
    this.ensureOpen();
    return this.track(new ClientRegistration(this, options));
  }

  /** RFC 3428: sends a MESSAGE and resolves with its final response (after digest challenges). */
  sendMessage(options: MessageOptions): Promise<SipMessage> {
    this.ensureOpen();
    const body = options.text !== undefined ? options.text : (options.body ?? '');
    const contentType = options.text !== undefined ? 'text/plain;charset=utf-8' : (options.contentType ?? 'application/octet-stream');
    // RFC 3428 §4: "MESSAGE requests do not initiate dialogs" and carry no Contact.
    const request = this.newRequest('MESSAGE', options.to, { from: options.from, headers: options.headers, body, contentType });
    if (!this.mayCarry(request)) {
      // RFC 3428 §6: over 1300 bytes a MESSAGE "MUST NOT" go over UDP; with no other way, it fails here.
      const why = `a MESSAGE of ${request.toBuffer().length} bytes may not go over UDP (RFC 3428 §6)`;
      return Promise.resolve(localFailure(request, 513, why));
    }
    return this.send(request).final;
  }

  subscribe(options: SubscribeOptions): ClientSubscription {
    this.ensureOpen();
    return this.track(new ClientSubscription(this, options));
  }

  invite(options: InviteOptions): ClientInviteSession {
    this.ensureOpen();
    return this.track(new ClientInviteSession(this, options));
  }

  /** RFC 3261 §11: an OPTIONS query; resolves with the final response. */
  options(uri: string): Promise<SipMessage> {
    this.ensureOpen();
    return this.send(this.newRequest('OPTIONS', uri, { headers: { Accept: this.acceptList() } })).final;
  }

  /** Any other out-of-dialog request, with digest challenges answered. */
  request(method: string, options: { to: string; body?: Uint8Array | string; contentType?: string; headers?: Record<string, string | string[]> }): Promise<SipMessage> {
    this.ensureOpen();
    return this.send(this.newRequest(method, options.to, options)).final;
  }

  onMessage(handler: (message: IncomingMessage) => Answer | Promise<Answer>): void {
    this.messageHandler = handler;
    this.profiles = undefined;
  }

  onInvite(handler: (session: ServerInviteSession) => void | Promise<void>): void {
    this.inviteHandler = handler;
    this.profiles = undefined;
  }

  onRegister(handler: (request: ServerRequest) => void | Promise<void>): void {
    this.registerHandler = handler;
    this.profiles = undefined;
  }

  onSubscribe(eventPackage: string, handler: (subscription: ServerSubscription) => void | Promise<void>): void {
    this.subscribeHandlers.set(eventPackage.toLowerCase(), handler);
    this.profiles = undefined;
  }

  /** A body for the answer to an out-of-dialog OPTIONS (RFC 3261 §11.2), or undefined for none. */
  onOptions(handler: (request: ServerRequest) => { body: string | Uint8Array; contentType: string } | undefined): void {
    this.optionsBody = handler;
  }

  onOutOfDialog(method: string, handler: (request: ServerRequest) => void | Promise<void>): void {
    this.otherHandlers.set(method, handler);
    this.profiles = undefined;
  }

  /** Ends every usage (unregister, unsubscribe, BYE) and stops taking new ones. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.usages].map((usage) => usage.close()));
  }

  // ---- the transaction user -----------------------------------------------------------------

  /**
   * What the UAS core checks for us (RFC 3261 §8.2): outside a dialog, the methods we have
   * handlers for (405 with our Allow otherwise); inside one, any method we know, for the dialog's
   * usage to answer (or 481 when there is no such dialog, §12.2.2). Our option tags; any body
   * type — bodies are checked per method below (415 with that usage's Accept); a REGISTER's
   * Require in §10.3's order by the registrar.
   */
  readonly profile = (request: SipMessage): UasProfile => {
    // Built once per set of handlers: this runs for every request.
    this.profiles ??= {
      outside: { ...DUM_PROFILE, methods: this.allowList().split(', ') },
      inside: { ...DUM_PROFILE, methods: KNOWN_METHODS },
    };
    return request.to.tag === undefined ? this.profiles.outside : this.profiles.inside;
  };

  /** The two profiles, dropped when a handler is added (the methods outside a dialog change). */
  private profiles: { outside: UasProfile; inside: UasProfile } | undefined;

  /** The UAS core answered a request of ours (405, 415, 420…): said on `stray` like our own answers. */
  refused(request: SipMessage, status: number): void {
    this.emit('stray', request, status);
  }

  onRequest(request: ServerRequest): void | Promise<void> {
    let result: void | Promise<void>;
    try {
      result = this.dispatch(request);
    } catch (error) {
      return this.failed(request, error);
    }
    return result?.catch((error: unknown) => this.failed(request, error));
  }

  /**
   * A request whose handling threw: a header it needed was malformed (values are parsed when
   * first read) → 400; anything else → 500. The request is answered and the DUM goes on.
   */
  private failed(request: ServerRequest, error: unknown): void {
    const malformed = error instanceof SipParseError;
    if (errorChannel.hasSubscribers) errorChannel.publish({ request: request.message, error });
    const why = error instanceof Error ? error.message : String(error);
    try {
      request.respond(malformed ? 400 : 500, undefined, { headers: { Warning: `399 parley "${why.replace(/["\\]/g, "'")}"` } });
    } catch {
      // Already answered: the transaction keeps its final response.
    }
  }

  private dispatch(request: ServerRequest): void | Promise<void> {
    const message = request.message;
    const method = message.method;
    if (method === 'ACK') {
      // An ACK to a 2xx (§13.3.1.4); one to a non-2xx never leaves its transaction.
      this.dialogs.get(this.keyOf(message))?.onAck?.(request);
      return;
    }
    if (method === 'CANCEL') {
      // §9.2: the stack answered the CANCEL 200; the INVITE it cancels gets 487 from its session.
      if (request.cancels) this.inviteServers.get(request.cancels)?.cancelled();
      return;
    }
    if (message.to.tag !== undefined) return this.inDialog(request);
    if (this.closed && method !== 'OPTIONS') return this.answer(request, 503, undefined, { 'Retry-After': '5' });
    switch (method) {
      case 'OPTIONS':
        return this.answerOptions(request);
      case 'MESSAGE':
        return this.receiveMessage(request);
      case 'REGISTER':
        return this.registerHandler ? this.registerHandler(request) : this.notAllowed(request);
      case 'SUBSCRIBE':
        return this.receiveSubscribe(request);
      case 'INVITE':
        return this.receiveInvite(request);
      case 'BYE':
      case 'NOTIFY':
      case 'INFO':
      case 'PRACK':
      case 'UPDATE':
        // Requests that exist only inside a dialog, without a To tag (§12.2.2, RFC 6665 §4.1.3).
        return this.answer(request, 481);
      default: {
        const handler = this.otherHandlers.get(method);
        return handler ? handler(request) : this.notAllowed(request);
      }
    }
  }

  // ---- what usages use ----------------------------------------------------------------------

  /** A request outside any dialog (§8.1.1), from our AOR (or `from`) with a fresh tag and Call-ID. */
  newRequest(
    method: string,
    to: string,
    init: { from?: string | undefined; to?: string | undefined; headers?: Record<string, string | string[]> | undefined; body?: Uint8Array | string | undefined; contentType?: string | undefined; contact?: string | LocalContact | undefined; callId?: string; cseq?: number } = {},
  ): SipMessage {
    const target = parseUri(to, 'request-uri');
    const from = init.from !== undefined ? parseNameAddr(init.from, 'from') : this.aor.clone();
    from.tag = undefined;
    const headers: Record<string, string | string[]> = {};
    if (this.outboundProxy !== undefined) headers.Route = this.proxyRoute();
    headers['User-Agent'] = this.userAgent;
    Object.assign(headers, init.headers ?? {});
    const wildcard = init.contact === '*';
    const request = createRequest({
      method,
      uri: target,
      from,
      to: init.to !== undefined ? parseNameAddr(init.to, 'to') : new NameAddr(target.clone()),
      callId: init.callId ?? generateCallId(),
      cseq: init.cseq ?? 1,
      contact: wildcard ? undefined : init.contact,
      headers,
      body: init.body,
      contentType: init.body !== undefined && init.body.length > 0 ? init.contentType : undefined,
    });
    // §10.2.2: `Contact: *` is not a name-addr; it goes in as written.
    if (wildcard) request.addHeader('Contact', '*');
    return request;
  }

  /** Sends a request with digest challenges answered (§22.2). */
  send(request: SipMessage, hooks?: RequestHooks): DumRequest {
    const nextHop = decidedNextHop(request);
    return new DumRequest(request, (m) => this.stack.request(m, { nextHop }), this.digest, hooks);
  }

  /** Sends an ACK for a 2xx (§13.2.2.4: no transaction), where the dialog's route set says. */
  async sendAck(ack: SipMessage): Promise<void> {
    const nextHop = decidedNextHop(ack);
    await this.stack.sendStateless(ack, undefined, nextHop).catch(() => undefined);
  }

  /**
   * Our Contact: the AOR's user at the address the transport layer fills in when it sends (a
   * LocalContact marks the message), with `params` (outbound's +sip.instance and reg-id, a
   * registration's expires).
   */
  contact(params: Record<string, string | null> = {}): LocalContact {
    return new LocalContact(this.aor.uri.user, params);
  }

  addDialog(usage: DialogUsage): void {
    if (usage.dialog) this.dialogs.set(usage.dialog.key, usage);
  }

  removeDialog(usage: DialogUsage): void {
    if (usage.dialog && this.dialogs.get(usage.dialog.key) === usage) this.dialogs.delete(usage.dialog.key);
  }

  addDialogSet(callId: string, localTag: string, owner: DialogSetOwner): void {
    this.dialogSets.set(`${callId}\n${localTag}`, owner);
  }

  removeDialogSet(callId: string, localTag: string): void {
    this.dialogSets.delete(`${callId}\n${localTag}`);
  }

  addInviteServer(transaction: ServerTransaction, session: ServerInviteSession): void {
    this.inviteServers.set(transaction, session);
  }

  removeInviteServer(transaction: ServerTransaction): void {
    this.inviteServers.delete(transaction);
  }

  forget(usage: ClosableUsage): void {
    this.usages.delete(usage);
  }

  /** Runs `fire` after `ms` on the stack's clock. */
  timer(ms: number, fire: () => void): TimerHandle {
    return this.stack.timers.schedule(ms, fire);
  }

  /** Answers a request the DUM (or a usage) turns down, and says so on `stray`. */
  answer(request: ServerRequest, status: number, reason?: string, headers?: Record<string, string | string[]>): void {
    request.respond(status, reason, headers ? { headers } : undefined);
    if (status >= 300) this.emit('stray', request.message, status);
  }

  /** Allow (§20.5): the methods this DUM does something with. */
  allowList(): string {
    const methods = ['ACK', 'BYE', 'CANCEL', 'INFO', 'NOTIFY', 'OPTIONS'];
    if (this.inviteHandler) methods.push('INVITE');
    if (this.messageHandler) methods.push('MESSAGE');
    if (this.registerHandler) methods.push('REGISTER');
    if (this.subscribeHandlers.size > 0) methods.push('SUBSCRIBE');
    methods.push(...this.otherHandlers.keys());
    return [...new Set(methods)].join(', ');
  }

  acceptList(): string {
    return [...new Set([...this.sessionTypes, ...this.acceptedTypes])].join(', ');
  }

  /** RFC 3428 §6: may `request` travel where it is going, given its size? */
  mayCarry(request: SipMessage): boolean {
    if (request.toBuffer().length <= UDP_SIZE_LIMIT) return true;
    const next = request.route[0]?.uri ?? request.requestUri;
    if (next.transport === 'udp') return false;
    if (next.transport !== undefined || next.scheme === 'sips') return true;
    // No transport named: the transport layer moves it to TCP, if this stack has TCP at all.
    return this.stack.transports.some((t) => t.protocol !== 'udp');
  }

  private proxyRoute(): string {
    const uri = parseUri(this.outboundProxy!, 'route');
    // RFC 3261 §16.12.1.1: a loose route, so the Request-URI keeps the real target.
    if (!('lr' in uri.params)) uri.params.lr = null;
    return `<${uri.toString()}>`;
  }

  private track<T extends ClosableUsage>(usage: T): T {
    this.usages.add(usage);
    return usage;
  }

  private ensureOpen(): void {
    if (this.closed) throw new DumError('DUM_CLOSED', 'the dialog usage manager is closed');
  }

  private keyOf(message: SipMessage): string {
    return dialogKey(message.callId, message.to.tag ?? '', message.from.tag ?? '');
  }

  private inDialog(request: ServerRequest): void | Promise<void> {
    const message = request.message;
    const usage = this.dialogs.get(this.keyOf(message));
    if (!usage) {
      // RFC 6665 §4.1.2.4: a NOTIFY may create the dialog (before the 2xx, or from a fork).
      if (message.method === 'NOTIFY' && this.dialogSets.get(`${message.callId}\n${message.to.tag ?? ''}`)?.onDialogCreatingNotify(request)) return;
      // §12.2.2: "…the UAS… SHOULD… respond to the request with a 481".
      return this.answer(request, 481);
    }
    // §12.2.2: "If the remote sequence number… is lower…, the request is out of order and MUST be rejected with a 500".
    if (usage.dialog?.receive(message) === 'out-of-order') return this.answer(request, 500, 'CSeq Out Of Order');
    if (message.method === 'OPTIONS') return this.answerOptions(request);
    return usage.onRequest(request);
  }

  private answerOptions(request: ServerRequest): void {
    // §11.2: the answer to OPTIONS lists what we can do; "Contact header fields MAY be present",
    // and "Message bodies … MAY be present": the application may describe itself (optionsBody).
    const content = this.optionsBody?.(request);
    request.respond(200, undefined, {
      headers: { Allow: this.allowList(), Accept: this.acceptList(), Supported: DUM_EXTENSIONS.join(', '), 'Accept-Encoding': 'identity', 'Accept-Language': 'en' },
      ...(content ? { body: content.body, contentType: content.contentType } : {}),
    });
  }

  private notAllowed(request: ServerRequest): void {
    // §8.2.1: a method we recognise but do not offer here: 405 with Allow.
    this.answer(request, 405, undefined, { Allow: this.allowList() });
  }

  private async receiveMessage(request: ServerRequest): Promise<void> {
    const handler = this.messageHandler;
    if (!handler) return this.notAllowed(request);
    const message = request.message;
    if (!acceptsType(this.acceptedTypes, message.contentType)) {
      return this.answer(request, 415, undefined, { Accept: this.acceptedTypes.join(', ') });
    }
    let answer: Answer;
    try {
      answer = await handler(new IncomingMessage(request));
    } catch {
      answer = 500;
    }
    let response: SipMessage;
    if (answer instanceof SipMessage) response = answer;
    else {
      const { status, reason, headers } = typeof answer === 'number' ? { status: answer, reason: undefined, headers: undefined } : answer;
      response = createResponse(message, status, reason, headers ? { headers } : {});
    }
    // RFC 3428 §7: a 2xx to MESSAGE "MUST NOT" carry a Contact; nor does anything we say to it.
    response.removeHeader('contact');
    request.send(response);
    if (response.status >= 300) this.emit('stray', message, response.status);
  }

  private receiveSubscribe(request: ServerRequest): void {
    const message = request.message;
    const event = message.event;
    if (!event) return this.answer(request, 400, 'Missing Event Header');
    const handler = this.subscribeHandlers.get(event.type.toLowerCase());
    // RFC 6665 §4.2.1.1 / §8.2.2: an event package we do not serve → 489 with Allow-Events.
    if (!handler) return this.answer(request, 489, undefined, { 'Allow-Events': [...this.subscribeHandlers.keys()].join(', ') });
    const subscription = ServerSubscription.receive(this, request);
    if (!subscription) return;
    void Promise.resolve()
      .then(() => handler(subscription))
      .catch(() => subscription.failedHandler());
  }

  private receiveInvite(request: ServerRequest): void {
    const handler = this.inviteHandler;
    if (!handler) return this.notAllowed(request);
    if (!acceptsType(this.sessionTypes, request.message.contentType)) {
      return this.answer(request, 415, undefined, { Accept: this.sessionTypes.join(', ') });
    }
    const session = new ServerInviteSession(this, request);
    this.track(session);
    void Promise.resolve()
      .then(() => handler(session))
      .catch(() => session.failedHandler());
  }
}
