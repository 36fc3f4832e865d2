import { EventEmitter } from 'eventemitter3';
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseUri } from '../../message/uri.js';
import { SipStack, type SipStackOptions } from '../../stack.js';
import type { ClientRegistration } from '../../tu/dum/client-registration.js';
import { DialogUsageManager } from '../../tu/dum/dialog-usage-manager.js';
import { DumError } from '../../tu/dum/dum-error.js';
import { mediaTypeOf } from '../../tu/dum/media-types.js';
import type { Answer, IncomingMessage } from '../../tu/dum/pager.js';
import { ParleyError } from '../../util/errors.js';
import { CpimError, cpimHeader, formatCpim, imdnHeaders, parseCpim } from '../im/cpim.js';
import { IMDN_CONTENT_TYPE, parseDeliveryNotification } from '../im/imdn.js';
import { aorOf, displayAor, splitAor } from '../store/aor.js';
import { wallClockOf, type WallClock } from '../wall-clock.js';
import { DeviceState } from './device-state.js';

/**
 * Why a client could not do what it was asked. Codes: `CLIENT_AUTH_FAILED` (401/403: the
 * password or the address is wrong), `CLIENT_UNREACHABLE` (no answer from the server),
 * `CLIENT_SEND_FAILED` (a final non-2xx; `status` says which), `CLIENT_BAD_ADDRESS`,
 * `CLIENT_CLOSED`, `CLIENT_TLS` (the TLS handshake with the server failed: its certificate is not
 * trusted or does not name the server).
 */
export class ClientError extends ParleyError {
  constructor(
    code: string,
    message: string,
    readonly status?: number,
  ) {
    super(code, message);
  }
}

export interface ClientOptions {
  /**
   * The home server, a SIP URI: `sip:127.0.0.1:5060;transport=tcp`; `sips:HOST[:PORT]` or
   * `;transport=tls` for TLS, where the server's certificate must chain to a trusted CA and name
   * HOST (RFC 5922: a `sip:HOST` URI or DNS subjectAltName, or an IP subjectAltName for an IP).
   */
  server: string;
  /**
   * Trust anchors (PEM) for a TLS server: a private CA. Trusted in addition to Node's built-in
   * root certificates unless `systemCa` is false.
   */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** With `ca`: false trusts `ca` only. Default true. */
  systemCa?: boolean;
  /** `alice@example.com`. */
  user: string;
  password: string;
  /** Device identity and the Message-IDs seen; default `$PARLEY_HOME` or `~/.parley`, then `/<user>`. */
  stateDir?: string;
  /** A second identity in the same state directory (`parley send` registers as 'send'). */
  device?: string;
  /** Registration expiry asked for, seconds; default 600. */
  expires?: number;
  /** Register as a device (default true); false only sends (no messages or notifications come). */
  register?: boolean;
  /** Stack options (a ManualClock in tests). */
  stack?: Partial<SipStackOptions>;
}

export interface ChatMessage {
  from: string;
  to: string;
  messageId: string;
  time: Date;
  contentType: string;
  text: string;
  body: Buffer;
}

export interface SendResult {
  messageId: string;
  status: number;
  reason: string;
}

export interface ClientEvents {
  /** A new message (one already seen, by Message-ID, is acknowledged and not emitted again). */
  message: [message: ChatMessage];
  /** A delivery notification (RFC 5438) for a message this user sent. */
  delivered: [messageId: string, by: string, time: Date];
  status: [status: 'registered' | 'retrying' | 'closed', detail: string];
}

/** Transient answers after which a send is tried again with the same Message-ID. */
const RESEND_STATUSES = new Set([408, 503]);
const SEND_ATTEMPTS = 3;

/**
 * A Parley user's device: registers with its home server (digest, RFC 5626 outbound over
 * TCP/TLS), sends CPIM messages asking for delivery notifications, and receives messages,
 * dropping duplicates by Message-ID across restarts (the state directory keeps them).
 */
export class ParleyClient extends EventEmitter<ClientEvents> {
  readonly aor: string;
  private closed = false;
  /**
   * Messages and notifications that arrived while nobody listened for them (right after the
   * registration, before the caller's `on`): held, and answered only once they are emitted, so
   * none is acknowledged to the server without having been seen.
   */
  private readonly held: Array<{ event: 'message' | 'delivered'; dispatch: () => void; refuse: () => void }> = [];
  /** CPIM DateTime of what we send, and the time of a message that carries none: the stack's clock. */
  private readonly clock: WallClock;

  private constructor(
    private readonly stack: SipStack,
    private readonly dum: DialogUsageManager,
    private readonly registration: ClientRegistration | undefined,
    private readonly state: DeviceState,
    aor: string,
  ) {
    super();
    this.aor = displayAor(aor);
    this.clock = wallClockOf(stack.clock);
  }

  /** Registers with the server; resolves once registered, rejects with a ClientError otherwise. */
  static async connect(options: ClientOptions): Promise<ParleyClient> {
    let aor: string;
    let server: ReturnType<typeof parseUri>;
    try {
      aor = aorOf(options.user);
      server = parseUri(options.server, 'server');
    } catch (error) {
      throw new ClientError('CLIENT_BAD_ADDRESS', (error as Error).message);
    }
    const { user, domain } = splitAor(aor);
    const stateDir = options.stateDir ?? join(process.env.PARLEY_HOME ?? join(homedir(), '.parley'), displayAor(aor));
    const state = DeviceState.open(stateDir, options.device ?? 'default');
    const transport = (server.transport ?? (server.scheme === 'sips' ? 'tls' : 'udp')).toLowerCase();
    const host = localHostFor(server.host);
    const port = await freePort(host);
    // Over TLS the client sends on TLS only (never a sips: request in the clear); the server
    // reaches it back on the flow it opened (RFC 5626), so its listener needs no certificate.
    const stack = new SipStack({
      ...options.stack,
      ...(transport === 'tls'
        ? { transports: [`tls:${host}:${port}`], tls: { ...options.stack?.tls, ...trustOf(options), rejectUnauthorized: true } }
        : { transports: [`udp:${host}:${port}`, `tcp:${host}:${port}`] }),
    });
    await stack.start();
    const dum = new DialogUsageManager(stack, {
      aor,
      credentials: [{ username: user, password: options.password, realm: domain }],
      outboundProxy: server.toString(),
      instanceId: state.instanceId,
      acceptedTypes: ['*/*'],
    });
    const registration = options.register === false ? undefined : dum.register({
      registrar: `sip:${domain}`,
      expires: options.expires ?? 600,
      // RFC 5626: over a connection the server reaches us on the flow we opened.
      outbound: transport === 'udp' ? undefined : { regId: 1 },
    });
    const client = new ParleyClient(stack, dum, registration, state, aor);
    dum.onMessage((message) => client.receive(message));
    if (!registration) return client;
    try {
      await registration.ready;
    } catch (error) {
      // The registration would retry with backoff: end it, and its timers, before the sockets.
      await dum.close().catch(() => undefined);
      await stack.stop();
      throw asClientError(error, 'registration');
    }
    registration.on('refreshed', () => client.emit('status', 'registered', 'registration refreshed'));
    registration.on('registered', () => client.emit('status', 'registered', 'registered'));
    registration.on('failed', (error) => client.emit('status', 'retrying', error.message));
    client.emit('status', 'registered', `registered as ${client.aor}`);
    return client;
  }

  override on<T extends keyof ClientEvents>(event: T, listener: (...args: ClientEvents[T]) => void, context?: unknown): this {
    super.on(event, listener as never, context);
    if (event === 'message' || event === 'delivered') this.release(event);
    return this;
  }

  private release(event: 'message' | 'delivered'): void {
    for (const item of this.held.filter((h) => h.event === event)) {
      this.held.splice(this.held.indexOf(item), 1);
      item.dispatch();
    }
  }

  /** Runs `dispatch` now when someone listens for `event`, else when someone starts to. */
  private deliver(event: 'message' | 'delivered', dispatch: () => void): Answer | Promise<Answer> {
    // Closing: not taken, so the server keeps it for the next time this device registers.
    if (this.closed) return { status: 480, reason: 'Device closing' };
    if (this.listenerCount(event) > 0) {
      dispatch();
      return 200;
    }
    return new Promise<Answer>((resolve) => {
      this.held.push({
        event,
        dispatch: () => {
          dispatch();
          resolve(200);
        },
        // Closing with nobody having listened: not taken, so the server keeps it for later.
        refuse: () => resolve({ status: 480, reason: 'Device closing' }),
      });
    });
  }

  get instanceId(): string {
    return this.state.instanceId;
  }

  /**
   * Sends a text as `message/cpim` with a fresh Message-ID, asking for a delivery notification
   * unless `notify` is false. Resolves on the server's 2xx (202: stored for the recipient); a 408
   * or 503 is retried with the same Message-ID, which the server stores once.
   */
  async send(to: string, text: string, options: { notify?: boolean } = {}): Promise<SendResult> {
    if (this.closed) throw new ClientError('CLIENT_CLOSED', 'the client is closed');
    let recipient: string;
    try {
      recipient = aorOf(to);
    } catch (error) {
      throw new ClientError('CLIENT_BAD_ADDRESS', (error as Error).message);
    }
    const messageId = randomUUID().replace(/-/g, '');
    const body = formatCpim({
      from: `sip:${this.aor}`,
      to: recipient,
      dateTime: new Date(this.clock.now()),
      messageId,
      notifications: options.notify === false ? [] : ['positive-delivery'],
      contentType: 'text/plain;charset=utf-8',
      content: text,
    });
    for (let attempt = 1; ; attempt++) {
      const response = await this.dum.sendMessage({ to: recipient, body, contentType: 'message/cpim' });
      const status = response.status ?? 500;
      if (status >= 200 && status < 300) return { messageId, status, reason: response.reason ?? '' };
      // A certificate that was not trusted will not be on a retry.
      const tls = tlsFailure(response);
      if (tls !== undefined) throw new ClientError('CLIENT_TLS', tls, status);
      if (attempt < SEND_ATTEMPTS && RESEND_STATUSES.has(status) && !this.closed) {
        await new Promise<void>((resolve) => this.stack.timers.schedule(1000 * attempt, resolve));
        continue;
      }
      const code = status === 401 || status === 407 || status === 403 ? 'CLIENT_AUTH_FAILED' : 'CLIENT_SEND_FAILED';
      throw new ClientError(code, `${status} ${response.reason ?? ''}`.trim(), status);
    }
  }

  /** Unregisters (unless told not to) and releases the sockets. */
  async close(options: { unregister?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const item of this.held.splice(0)) item.refuse();
    if (options.unregister !== false) await this.registration?.unregister().catch(() => undefined);
    await this.stack.stop();
    this.emit('status', 'closed', 'closed');
  }

  private receive(incoming: IncomingMessage): Answer | Promise<Answer> {
    const type = mediaTypeOf(incoming.contentType ?? 'text/plain');
    const from = displayAor(incoming.from.uri.toString().replace(/;.*$/, ''));
    const to = displayAor(incoming.to.uri.toString().replace(/;.*$/, ''));
    const dateHeader = incoming.request.header('Date');
    let time = dateHeader !== undefined && !Number.isNaN(Date.parse(dateHeader)) ? new Date(dateHeader) : new Date(this.clock.now());
    let contentType = incoming.contentType ?? 'text/plain';
    let body = incoming.body;
    let messageId: string | undefined;
    if (type === 'message/cpim') {
      let cpim;
      try {
        cpim = parseCpim(incoming.body);
      } catch (error) {
        if (error instanceof CpimError) return { status: 400, reason: 'Malformed message/cpim' };
        throw error;
      }
      messageId = imdnHeaders(cpim).messageId;
      const dateTime = cpimHeader(cpim.headers, 'DateTime');
      if (dateTime !== undefined && !Number.isNaN(Date.parse(dateTime))) time = new Date(dateTime);
      contentType = cpim.contentType ?? 'text/plain';
      body = cpim.content;
      if (mediaTypeOf(contentType) === IMDN_CONTENT_TYPE) {
        const notification = parseDeliveryNotification(body.toString('utf8'));
        const key = `imdn:${messageId ?? notification?.messageId ?? ''}`;
        if (!notification || notification.status !== 'delivered' || this.state.seen(key)) return 200;
        return this.deliver('delivered', () => {
          if (this.state.seen(key)) return;
          this.state.remember(key);
          this.emit('delivered', notification.messageId, displayAor(notification.recipient), time);
        });
      }
    }
    // Without a Message-ID (a plain MESSAGE from a non-Parley sender) the sender, time and bytes name it.
    messageId ??= `plain-${createHash('sha256').update(`${from}\n${time.getTime()}\n`).update(body).digest('hex').slice(0, 32)}`;
    if (this.state.seen(messageId)) return 200;
    const id = messageId;
    return this.deliver('message', () => {
      if (this.state.seen(id)) return;
      this.state.remember(id);
      this.emit('message', { from, to, messageId: id, time, contentType, text: body.toString('utf8'), body });
    });
  }
}

/** The trust a TLS client stack gets from the client options. */
function trustOf(options: ClientOptions): { ca?: Array<string | Buffer>; systemCa?: boolean } {
  if (options.ca === undefined) return {};
  const ca = typeof options.ca === 'string' || Buffer.isBuffer(options.ca) ? [options.ca] : [...options.ca];
  return { ca, systemCa: options.systemCa ?? true };
}

/** When a locally made 503 says the TLS handshake failed: its Warning text. */
function tlsFailure(response: { status?: number | undefined; header(name: string): string | undefined } | undefined): string | undefined {
  if (response?.status !== 503) return undefined;
  const warning = response.header('warning');
  const text = warning === undefined ? undefined : /^399 parley "transport failure: (.*)"$/.exec(warning)?.[1];
  return text !== undefined && /certificate|tls|ssl|handshake|RFC 5922/i.test(text) ? text : undefined;
}

function asClientError(error: unknown, what: string): ClientError {
  if (error instanceof DumError) {
    const status = error.response?.status;
    const tls = tlsFailure(error.response);
    if (tls !== undefined) return new ClientError('CLIENT_TLS', `${what} failed: ${tls}`, status);
    if (status === 401 || status === 407 || status === 403) return new ClientError('CLIENT_AUTH_FAILED', `${what} refused: ${status} ${error.response?.reason ?? ''}`.trim(), status);
    if (status === undefined || status === 408 || status === 503) return new ClientError('CLIENT_UNREACHABLE', `${what} failed: ${status === undefined ? 'no answer' : `${status} ${error.response?.reason ?? ''}`}`.trim(), status);
    return new ClientError('CLIENT_SEND_FAILED', `${what} failed: ${status} ${error.response?.reason ?? ''}`.trim(), status);
  }
  return error instanceof ClientError ? error : new ClientError('CLIENT_UNREACHABLE', `${what} failed: ${String(error)}`);
}

/** Where the client listens: loopback to reach a loopback server, else every interface. */
function localHostFor(serverHost: string): string {
  if (serverHost.startsWith('127.') || serverHost === 'localhost') return '127.0.0.1';
  if (serverHost === '[::1]' || serverHost === '::1') return '::1';
  return '0.0.0.0';
}

/**
 * A port free for TCP, used for UDP too: one port for both means a MESSAGE too large for UDP
 * (RFC 3428 §6) reaches the device over TCP at the same address (RFC 3261 §18.1.1).
 */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
