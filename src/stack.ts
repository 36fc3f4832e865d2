import { channel } from 'node:diagnostics_channel';
import { isIP } from 'node:net';
import { SipResolver, type ResolverOptions } from './dns/sip-resolver.js';
import type { SipTransport } from './dns/target-marks.js';
import { generateBranch } from './message/builder.js';
import type { SipMessage } from './message/sip-message.js';
import { unbracket, type SipUri } from './message/uri.js';
import { DEFAULT_BODY_TYPES, type ValidationOptions } from './message/validate.js';
import { OutgoingRequest, targetFrom, type ClientRequest, type OutgoingPort } from './outgoing-request.js';
import { InviteClientTransaction } from './transaction/client-transaction.js';
import type { ServerTransaction } from './transaction/server-transaction.js';
import { DEFAULT_TIMERS, type TimerBase } from './transaction/timers.js';
import { TransactionLayer, type InboundRequest } from './transaction/transaction-layer.js';
import { defaultPort, family, parseListenAddress } from './transport/address.js';
import { createTransport } from './transport/create-transport.js';
import type { StreamOptions } from './transport/stream-transport.js';
import type { TlsOptions } from './transport/tls-transport.js';
import { TransportError } from './transport/transport-error.js';
import { parseAdvertised, type SentBy } from './transport/sent-by.js';
import { TransportSelector, type Sent, type Target } from './transport/transport-selector.js';
import type { Transport, TransportEvent, TransportProtocol, Tuple } from './transport/types.js';
import type { TransactionUser, TuFilter } from './tu/transaction-user.js';
import { TuSelector } from './tu/tu-selector.js';
import { UasCore } from './tu/uas-core.js';
import { systemClock, type Clock } from './util/clock.js';
import { ParleyError } from './util/errors.js';
import { Fifo, type Sink } from './util/fifo.js';
import { IdSequence } from './util/id-sequence.js';
import { TimerQueue } from './util/timer-queue.js';

const dropChannel = channel('parley:stack:drop');

/** A stream flow that ended: its keep-alive went unanswered (`failed`), or it closed. */
export interface FlowEnded {
  readonly connectionId: number;
  readonly remote: Tuple;
  readonly reason: string;
  readonly failed: boolean;
}

/**
 * A listen address with the address others reach it at: a transport bound to `0.0.0.0` behind a
 * NAT or a load balancer advertises the public host (and port) in its Via sent-by and Contacts.
 */
export interface ListenSpec {
  /** `PROTO:HOST:PORT`, e.g. `udp:0.0.0.0:5060`. */
  listen: string;
  /** `HOST` or `HOST:PORT` (IPv6 in brackets with a port); default the bound address, or for a
   *  wildcard bind the first interface address of its family. */
  advertise?: string;
}

export interface SipStackOptions extends Partial<TimerBase> {
  /** Listen addresses (`udp:127.0.0.1:5060`…), listen addresses with what they advertise, or ready Transport objects. */
  transports: ReadonlyArray<string | ListenSpec | Transport>;
  clock?: Clock;
  /** Certificate and trust for tls: and wss: listen addresses. */
  tls?: TlsOptions;
  /** Connection limits and timers for stream transports. */
  stream?: StreamOptions;
  /** A TU queue whose oldest request waited longer than this refuses new requests with 503. Default 2000 ms. */
  tuQueueLimitMs?: number;
  /** Received messages waiting for the transaction layer beyond which new requests are dropped
   *  (their senders retransmit; responses are always taken). Default 10,000. */
  maxInboundQueue?: number;
  /** Requests one TU may be working on at once when its onRequest returns a promise. Default 1. */
  tuConcurrency?: number;
  /** Retry-After seconds on those 503s. Default 5. */
  retryAfterSeconds?: number;
  /** Applied to every received message (RFC 3261 §8.2). */
  validation?: ValidationOptions;
  /**
   * RFC 3263 server location for requests without an explicit target (docs/dns.md): resolver
   * options, a resolver to share, or false to hand host names to the operating system. Default:
   * nameservers from /etc/resolv.conf, /etc/hosts first, the transports this stack listens on.
   */
  dns?: ResolverOptions | SipResolver | false;
}

/**
 * The one object an embedder creates: transports, the transport selector, the transaction layer
 * and the TU selector, wired by FIFOs (ARCHITECTURE.md), with time from one TimerQueue.
 */
export class SipStack {
  readonly timers: TimerQueue;
  readonly selector = new TransportSelector({ transports: [] });
  /** RFC 3263 next-hop lookups; undefined with `dns: false`. */
  readonly resolver: SipResolver | undefined;
  /** T1, T2 and T4 (RFC 3261 §17): usages derive their own timers from them (2xx retransmission, Timer N). */
  readonly timerBase: TimerBase;
  /** The clock every timer of this stack (and of the TUs on it) runs on. */
  readonly clock: Clock;
  /** Stream connection ids of this stack's transports (pass it to transports made outside). */
  readonly connectionIds: IdSequence;
  private readonly layer: TransactionLayer;
  private readonly tus: TuSelector;
  private readonly uas: UasCore;
  private readonly started: Transport[] = [];
  private readonly inbound: Fifo<TransportEvent>;
  private stopping = false;

  constructor(private readonly options: SipStackOptions) {
    this.clock = options.clock ?? systemClock;
    this.connectionIds = options.stream?.connectionIds ?? new IdSequence();
    this.timers = new TimerQueue(this.clock);
    this.resolver =
      options.dns === false
        ? undefined
        : options.dns instanceof SipResolver
          ? options.dns
          : new SipResolver({ clock: this.clock, ...reachable(options.transports), ...options.dns });
    if (this.resolver) this.selector.resolver = this.resolver;
    const base: TimerBase = {
      t1: options.t1 ?? DEFAULT_TIMERS.t1,
      t2: options.t2 ?? DEFAULT_TIMERS.t2,
      t4: options.t4 ?? DEFAULT_TIMERS.t4,
    };
    this.timerBase = base;
    this.tus = new TuSelector({
      limitMs: options.tuQueueLimitMs ?? 2000,
      concurrency: options.tuConcurrency ?? 1,
      clock: this.clock,
    });
    const validation: ValidationOptions = { acceptedBodyTypes: DEFAULT_BODY_TYPES, ...options.validation };
    this.uas = new UasCore(this.tus, {
      defaults: validation,
      retryAfterSeconds: options.retryAfterSeconds ?? 5,
      stopping: () => this.stopping,
    });
    const up = {
      request: (r: InboundRequest) => this.uas.receive(r),
      failed: (tx: ServerTransaction, reason: string) => this.tus.select(tx.request)?.tu.onTransactionFailure?.(tx, reason),
      terminated: (tx: ServerTransaction) => this.uas.terminated(tx),
    };
    this.layer = new TransactionLayer(this.selector, this.timers, base, up, validation);
    this.inbound = new Fifo<TransportEvent>(
      (event) => {
        if (event.type === 'flow-failed' || event.type === 'flow-closed') this.flowEnded(event);
        else this.layer.receive(event);
      },
      // The error boundary below the TUs: a bug met while receiving is reported, and a request
      // that had become a transaction is answered 500 rather than left to time out.
      { name: 'inbound', onError: (event) => event.type === 'message' && this.layer.internalError(event.message) },
    );
    const maxInbound = options.maxInboundQueue ?? 10_000;
    const queue = this.inbound;
    // What transports push into: past the bound, a flood of new requests is shed here, before
    // any work or memory is spent on it (ARCHITECTURE.md: degrade, never grow without bound).
    this.transportSink = {
      push: (event) => {
        if (queue.size >= maxInbound && event.type === 'message' && event.message.isRequest && event.message.method !== 'ACK') {
          if (dropChannel.hasSubscribers) dropChannel.publish({ reason: 'inbound queue full', source: event.source });
          return;
        }
        queue.push(event);
      },
    };
  }

  private readonly transportSink: Sink<TransportEvent>;

  /** The started transports, with their real ports. */
  get transports(): readonly Transport[] {
    return this.started;
  }

  /** What a started transport puts in Via sent-by and in Contacts: never a wildcard address. */
  sentBy(transport: Transport): SentBy {
    return this.selector.sentBy(transport);
  }

  /** Live transactions. */
  get transactionCount(): number {
    return this.layer.size;
  }

  /** Live protocol timers. */
  get timerCount(): number {
    return this.timers.size;
  }

  async start(): Promise<void> {
    for (const spec of this.options.transports) {
      const listen = typeof spec === 'string' ? spec : 'listen' in spec ? spec.listen : undefined;
      const advertise = typeof spec === 'object' && 'listen' in spec && spec.advertise !== undefined ? parseAdvertised(spec.advertise) : undefined;
      const transport =
        listen !== undefined
          ? createTransport(listen, { ...this.options.stream, clock: this.options.stream?.clock ?? this.clock, connectionIds: this.connectionIds, sink: this.transportSink, tls: this.options.tls })
          : (spec as Transport);
      if (listen !== undefined) await transport.start();
      this.started.push(transport);
      this.selector.add(transport, advertise);
    }
  }

  addTu(tu: TransactionUser, filter?: TuFilter): void {
    this.tus.add(tu, filter);
  }

  setDefaultTu(tu: TransactionUser): void {
    this.tus.setDefault(tu);
  }

  /**
   * Hears every stream flow that fails (RFC 5626 §4.4.1 keep-alive unanswered) or closes, in
   * either direction: a UA re-registers, a registrar drops the bindings on it (§6). Returns a
   * function that stops listening.
   */
  onFlowEnded(listener: (flow: FlowEnded) => void): () => void {
    this.flowListeners.add(listener);
    return () => this.flowListeners.delete(listener);
  }

  /** RFC 5626 §4.4.1 CRLFCRLF keep-alives on the stream connection to `remote`; false when there is none. */
  keepAlive(remote: Tuple, intervalMs: number): boolean {
    const transport = this.started.find((t) => t.protocol === remote.protocol && t.keepAlive);
    return transport?.keepAlive?.(remote, intervalMs) ?? false;
  }

  private readonly flowListeners = new Set<(flow: FlowEnded) => void>();

  private flowEnded(event: Extract<TransportEvent, { type: 'flow-failed' | 'flow-closed' }>): void {
    const flow: FlowEnded = { connectionId: event.connectionId, remote: event.target, reason: event.reason, failed: event.type === 'flow-failed' };
    this.layer.connectionEnded(event.connectionId, event.reason);
    for (const listener of [...this.flowListeners]) listener(flow);
  }

  /** The sink transports created outside the stack must push into. */
  get sink(): Sink<TransportEvent> {
    return this.transportSink;
  }

  /**
   * Sends a request in a client transaction. The request needs a top Via (its branch is made when
   * missing); without `target`, the first Route or the Request-URI decides where it goes.
   */
  request(message: SipMessage, options: { target?: Target; nextHop?: SipUri } = {}): ClientRequest {
    if (this.stopping) throw new ParleyError('STACK_STOPPING', 'the stack is stopping');
    ensureBranch(message);
    const uri = options.nextHop ?? nextHopUri(message);
    const port: OutgoingPort = {
      start: (m, target, user) => {
        // RFC 5922 §7.3: a TLS connection proves the domain of the URI the request is routed by.
        const tx = this.layer.request(m, withTlsDomain(target, uri), user);
        return {
          cancelled: () => tx instanceof InviteClientTransaction && tx.cancelled(),
          get transmitted() {
            return tx.transmitted;
          },
        };
      },
      // §9.1: the CANCEL is its own client transaction, to where the INVITE went (OutgoingRequest).
      sendCancel: (cancel, target) => void this.request(cancel, { target }),
      stopping: () => this.stopping,
    };
    if (options.target) return new OutgoingRequest(message, port, { single: options.target });
    const resolver = this.resolverFor(uri);
    if (!resolver) return new OutgoingRequest(message, port, { single: targetOfUri(uri) });
    return new OutgoingRequest(message, port, {
      uri: uri.toString(),
      list: resolver.resolve(uri),
      marks: resolver.marks,
      allowTcpSwitch: uri.transport === undefined,
    });
  }

  /**
   * Sends a request or response with no transaction (proxies; ACK for a 2xx, §13.2.2.4).
   * `nextHop` overrides where a request goes (a request routed to a strict router, §12.2.1.1).
   */
  async sendStateless(message: SipMessage, target?: Target, nextHop?: SipUri): Promise<Sent> {
    if (message.isRequest) {
      ensureBranch(message);
      const uri = nextHop ?? nextHopUri(message);
      return this.layer.sendStateless(message, withTlsDomain(target ?? (await this.firstTarget(uri)), uri));
    }
    if (!target) throw new TransportError('TRANSPORT_BAD_ADDRESS', 'a stateless response needs a target');
    return this.layer.sendStateless(message, target);
  }

  /**
   * Where a stateless request goes: RFC 3263's first target (§4.4: a stateless element has no
   * state to fail over with), or the URI as written when it is numeric or DNS is off.
   */
  private async firstTarget(uri: SipUri): Promise<Target> {
    const resolver = this.resolverFor(uri);
    if (!resolver) return targetOfUri(uri);
    const list = resolver.resolve(uri);
    const first = await list.next();
    if (!first) {
      const why = list.error ? `${list.error.code}: ${list.error.message}` : 'no targets';
      throw new TransportError('TRANSPORT_UNREACHABLE', `no DNS targets for ${uri.toString()} (${why})`);
    }
    return targetFrom(first, uri.transport === undefined);
  }

  /** RFC 3263 §4 for a host name; a numeric host needs no DNS, and with `dns: false` names go to the OS. */
  private resolverFor(uri: SipUri): SipResolver | undefined {
    return this.resolver && isIP(unbracket(uri.params.maddr ?? uri.host)) === 0 ? this.resolver : undefined;
  }

  /**
   * Graceful stop: new requests get 503; transactions still working toward a final response get
   * up to 64·T1 of real time to finish; then every transaction ends (those in Completed or
   * Accepted only absorb retransmissions), timers are cleared and the transports close.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const deadline = this.clock.now() + 64 * this.timerBase.t1;
    while (this.layer.activeCount > 0 && this.clock.now() < deadline && this.clock === systemClock) {
      await new Promise<void>((resolve) => setTimeout(resolve, 20).unref());
    }
    this.layer.shutdown();
    if (this.resolver && !(this.options.dns instanceof SipResolver)) this.resolver.close();
    await Promise.all(this.started.map((t) => t.close()));
    this.started.length = 0;
  }
}

/** The transports and address families a stack's listen addresses let it send on, in RFC 3263 order. */
function reachable(specs: ReadonlyArray<string | ListenSpec | Transport>): { transports: SipTransport[]; families: Array<4 | 6> } {
  const tuples = specs.map((spec) =>
    typeof spec === 'string' ? parseListenAddress(spec) : 'listen' in spec ? parseListenAddress(spec.listen) : { protocol: spec.protocol, address: spec.local.address },
  );
  const order: SipTransport[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];
  return {
    transports: order.filter((t) => tuples.some((tuple) => tuple.protocol === t)),
    families: ([4, 6] as const).filter((f) => tuples.some((tuple) => family(tuple.address) === f)),
  };
}

function ensureBranch(message: SipMessage): void {
  if (message.via.length === 0) message.prependHeader('Via', `SIP/2.0/UDP 0.0.0.0;branch=${generateBranch()}`);
  else if (!message.via[0]!.branch) message.update('via', 0, (via: { branch: string | undefined }) => (via.branch = generateBranch()));
}

/**
 * Where a request goes without DNS (RFC 3261 §8.1.2, §18.1.1): the first Route's URI (loose
 * routing) or the Request-URI — its maddr or host, port, and transport parameter (tls for sips).
 */
export function targetOf(message: SipMessage): Target {
  return targetOfUri(nextHopUri(message));
}

/** A next-hop URI's target without DNS: its maddr or host, port, and transport (tls for sips). */
function targetOfUri(uri: SipUri): Target {
  const param = uri.transport;
  const protocol: TransportProtocol =
    param === 'tcp' || param === 'tls' || param === 'ws' || param === 'wss' || param === 'udp'
      ? param
      : uri.scheme === 'sips'
        ? 'tls'
        : 'udp';
  const address = unbracket(uri.params.maddr ?? uri.host);
  return { protocol, address, port: uri.port ?? defaultPort(protocol), allowTcpSwitch: param === undefined };
}

/** A target with the SIP domain its TLS certificate must name (RFC 5922 §7.3): the next-hop URI's host, unless set. */
function withTlsDomain(target: Target, uri: SipUri): Target {
  // Only a TLS target reads it (a UDP one may move to TCP, never to TLS): no copy per request otherwise.
  if (target.protocol !== 'tls' || target.tlsDomain !== undefined || target.flow !== undefined) return target;
  return { ...target, tlsDomain: unbracket(uri.host) };
}

/** RFC 3261 §8.1.2: the first Route's URI (loose routing), else the Request-URI. */
function nextHopUri(message: SipMessage): SipUri {
  const route = message.route[0];
  return route ? route.uri : message.requestUri;
}
