import type { Socket } from 'node:net';
import { StreamFramer, type FramedItem, type FramerLimits } from '../message/stream-framer.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { ManagedConnection } from './connection-manager.js';
import { TransportError, isNetworkError } from './transport-error.js';
import type { Tuple } from './types.js';

const CRLF = Buffer.from('\r\n', 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** How long a connection closed after an error response waits for the peer to close its side. */
const LINGER_MS = 2_000;

export interface StreamConnectionOptions {
  limits: FramerLimits;
  clock: Clock;
  /** Fairness: messages handed up per turn of the event loop before the socket is paused. */
  messagesPerTurn: number;
  /** RFC 5626 §4.4.1 keep-alive on connections we opened; 0 = off. */
  keepAliveIntervalMs: number;
  pongTimeoutMs: number;
  /** A message begun must be complete within this long, or the connection closes; 0 = never. */
  partialMessageTimeoutMs: number;
  /** Errors before the connection is up are TLS handshake failures (TLS transports). */
  handshakeErrorsAreTls: boolean;
}

/** What the owning transport does with what a connection hears. */
export interface StreamConnectionHooks {
  /** A framed message, or a framing error (after which the connection is closing). */
  onItem(connection: StreamConnection, item: FramedItem): void;
  onActivity(connection: StreamConnection): void;
  /** RFC 5626 §4.4.1: our ping got no pong in time. */
  onFlowFailed(connection: StreamConnection, reason: string): void;
  onClosed(connection: StreamConnection, error: TransportError | undefined): void;
}

type State = 'connecting' | 'open' | 'closed';

interface QueuedWrite {
  bytes: Buffer;
  resolve: () => void;
  reject: (error: TransportError) => void;
}

/**
 * One TCP or TLS connection: frames what arrives (RFC 3261 §18.3 via StreamFramer), answers
 * CRLFCRLF pings, sends keep-alive pings on flows we opened, queues writes until it is connected,
 * and fails every write still pending when it dies, with the reason.
 */
export class StreamConnection implements ManagedConnection {
  lastActivity = 0;
  private state: State;
  private localTuple: Tuple | undefined;
  private readonly framer: StreamFramer;
  private readonly queued: QueuedWrite[] = [];
  /** Writes handed to the socket whose callback has not run yet. */
  private inFlight = 0;
  private backlog: FramedItem[] = [];
  private backlogHead = 0;
  private pumping = false;
  private failure: TransportError | undefined;
  private pingTimer: TimerHandle | undefined;
  private pongTimer: TimerHandle | undefined;
  /** Runs while a message is half received (partialMessageTimeoutMs). */
  private partialTimer: TimerHandle | undefined;
  private lingerTimer: TimerHandle | undefined;
  /** This flow's keep-alive interval: the transport's default until a TU sets one (RFC 5626 Flow-Timer). */
  private keepAliveMs: number;

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    readonly remote: Tuple,
    /** True for connections this side opened (keep-alive pings run on those). */
    readonly outbound: boolean,
    private readonly options: StreamConnectionOptions,
    private readonly hooks: StreamConnectionHooks,
  ) {
    this.state = outbound ? 'connecting' : 'open';
    this.keepAliveMs = outbound ? options.keepAliveIntervalMs : 0;
    this.framer = new StreamFramer(options.limits);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.peerEnded());
    socket.on('error', (error) => {
      this.failure ??=
        this.state === 'connecting' && this.options.handshakeErrorsAreTls && !isNetworkError(error)
          ? new TransportError('TRANSPORT_TLS', error.message, remote, error)
          : TransportError.fromSocketError(error, remote);
    });
    socket.on('close', () => this.closed());
    if (!outbound) this.opened();
  }

  /** The local end, once connected. */
  get local(): Tuple | undefined {
    return this.localTuple;
  }

  /** False from the moment a close was asked for: nothing new should be written to it. */
  get isOpen(): boolean {
    return this.state !== 'closed' && this.failure === undefined;
  }

  /** Bytes held for the message being received. */
  get bufferedBytes(): number {
    return this.framer.bufferedBytes;
  }

  isIdle(): boolean {
    return this.state === 'open' && !this.framer.partial && this.inFlight === 0 && this.queued.length === 0;
  }

  /** Called by the transport when the TCP connect (or TLS handshake) completed. */
  opened(): void {
    if (this.state === 'closed') return;
    this.state = 'open';
    const address = this.socket.localAddress;
    const port = this.socket.localPort;
    if (address !== undefined && port !== undefined) {
      this.localTuple = { protocol: this.remote.protocol, address: unmapIPv4(address), port };
    }
    for (const write of this.queued.splice(0)) this.writeNow(write);
    this.schedulePing();
  }

  /** RFC 5626 §4.4.1: pings every `intervalMs` from now on (0 stops them). */
  keepAlive(intervalMs: number): void {
    this.keepAliveMs = intervalMs;
    this.pingTimer?.cancel();
    this.pingTimer = undefined;
    if (!this.pongTimer) this.schedulePing();
  }

  /** Sends bytes; resolves when the socket has taken them, rejects if the connection dies first. */
  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const write = { bytes, resolve, reject };
      if (this.state === 'closed') reject(this.closedError());
      else if (this.state === 'connecting') this.queued.push(write);
      else this.writeNow(write);
    });
  }

  close(reason: TransportError): void {
    if (this.state === 'closed') return;
    this.failure ??= reason;
    this.socket.destroy();
  }

  /** Sends what is queued, then closes gently (after a 400 for a broken stream). */
  endAfter(bytes: Buffer | undefined, reason: TransportError): void {
    this.failure ??= reason;
    if (bytes && this.state === 'open') {
      this.socket.end(bytes);
      // A peer that never closes its side does not keep the connection (and its slot) for long.
      this.lingerTimer ??= this.options.clock.setTimer(LINGER_MS, () => this.socket.destroy());
    } else this.socket.destroy();
  }

  private writeNow(write: QueuedWrite): void {
    this.inFlight++;
    this.socket.write(write.bytes, (error) => {
      this.inFlight--;
      if (error) write.reject(this.failure ?? TransportError.fromSocketError(error, this.remote));
      else {
        this.hooks.onActivity(this);
        write.resolve();
      }
    });
  }

  private receive(chunk: Buffer): void {
    this.hooks.onActivity(this);
    const items = this.framer.push(chunk);
    this.watchPartial(items);
    if (items.length === 0) return;
    if (this.backlogHead === this.backlog.length) {
      this.backlog = items;
      this.backlogHead = 0;
    } else for (const item of items) this.backlog.push(item);
    this.pump();
  }

  /**
   * Hands framed items up, at most `messagesPerTurn` messages per turn of the event loop: a
   * connection that sends a flood is paused while the others get their turn.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    let messages = 0;
    while (this.backlogHead < this.backlog.length && this.state !== 'closed') {
      const item = this.backlog[this.backlogHead++]!;
      this.handle(item);
      if (item.type === 'message' && ++messages >= this.options.messagesPerTurn && this.backlogHead < this.backlog.length) {
        this.socket.pause();
        setImmediate(() => {
          this.pumping = false;
          this.pump();
        });
        return;
      }
    }
    this.backlog = [];
    this.backlogHead = 0;
    this.pumping = false;
    if (this.state !== 'closed' && this.socket.isPaused()) this.socket.resume();
  }

  private handle(item: FramedItem): void {
    switch (item.type) {
      case 'ping':
        // RFC 5626 §3.5.1 / §4.4.1: a double-CRLF ping is answered with a single CRLF pong.
        if (this.state === 'open') this.socket.write(CRLF);
        return;
      case 'pong':
        this.pongArrived();
        return;
      default:
        this.hooks.onItem(this, item);
    }
  }

  /**
   * The deadline for finishing a message: armed when one begins, restarted when one completes
   * and the next has begun, cancelled when nothing is half received.
   */
  private watchPartial(items: readonly FramedItem[]): void {
    const limit = this.options.partialMessageTimeoutMs;
    if (limit <= 0) return;
    if (!this.framer.partial || this.state === 'closed') {
      this.partialTimer?.cancel();
      this.partialTimer = undefined;
      return;
    }
    if (this.partialTimer && !items.some((item) => item.type === 'message' || item.type === 'refused')) return;
    this.partialTimer?.cancel();
    this.partialTimer = this.options.clock.setTimer(limit, () => {
      this.partialTimer = undefined;
      if (this.state === 'closed' || !this.framer.partial) return;
      this.close(new TransportError('TRANSPORT_TIMEOUT', `a message not finished within ${limit} ms`, this.remote));
    });
  }

  private peerEnded(): void {
    for (const item of this.framer.end()) this.hooks.onItem(this, item);
    if (this.framer.partial) this.failure ??= new TransportError('TRANSPORT_RESET', 'the peer closed mid-message', this.remote);
    this.socket.end();
  }

  private closed(): void {
    if (this.state === 'closed') return;
    const wasConnecting = this.state === 'connecting';
    this.state = 'closed';
    this.pingTimer?.cancel();
    this.pongTimer?.cancel();
    this.partialTimer?.cancel();
    this.lingerTimer?.cancel();
    const error = this.failure ?? (wasConnecting ? new TransportError('TRANSPORT_RESET', 'the connection closed before it was up', this.remote) : undefined);
    const queuedError = error ?? this.closedError();
    for (const write of this.queued.splice(0)) write.reject(queuedError);
    this.hooks.onClosed(this, error);
  }

  private closedError(): TransportError {
    return this.failure ?? new TransportError('TRANSPORT_CLOSED', 'the connection is closed', this.remote);
  }

  // ---- RFC 5626 §4.4.1 keep-alive ---------------------------------------------------------

  private schedulePing(): void {
    const interval = this.keepAliveMs;
    if (interval <= 0 || this.state !== 'open') return;
    // "…MUST be randomly distributed between 80% and 100% of the interval" (RFC 5626 §4.4.1).
    const delay = Math.round(interval * (0.8 + 0.2 * Math.random()));
    this.pingTimer = this.options.clock.setTimer(delay, () => this.ping());
  }

  private ping(): void {
    if (this.state !== 'open') return;
    this.socket.write(CRLFCRLF);
    this.pongTimer = this.options.clock.setTimer(this.options.pongTimeoutMs, () => {
      const reason = `no pong within ${this.options.pongTimeoutMs} ms`;
      this.hooks.onFlowFailed(this, reason);
      this.close(new TransportError('TRANSPORT_TIMEOUT', reason, this.remote));
    });
  }

  private pongArrived(): void {
    if (!this.pongTimer) return;
    this.pongTimer.cancel();
    this.pongTimer = undefined;
    this.schedulePing();
  }
}

/** `::ffff:192.0.2.1` (an IPv4 peer on a dual-stack socket) → `192.0.2.1`. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
