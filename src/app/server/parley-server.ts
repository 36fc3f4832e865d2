import { EventEmitter } from 'eventemitter3';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createRequest } from '../../message/builder.js';
import { SipStack, type SipStackOptions } from '../../stack.js';
import type { Transport } from '../../transport/types.js';
import { markFlows } from '../../transport/connection-transport.js';
import { streamLimitsFor } from '../../transport/stream-transport.js';
import { formatHostPort } from '../../transport/address.js';
import type { Target } from '../../transport/transport-selector.js';
import { DialogUsageManager } from '../../tu/dum/dialog-usage-manager.js';
import type { StoredBinding } from '../../tu/dum/location-store.js';
import { mediaTypeOf } from '../../tu/dum/media-types.js';
import type { IncomingMessage } from '../../tu/dum/pager.js';
import { Registrar } from '../../tu/dum/registrar.js';
import { parseNameAddr } from '../../message/name-addr.js';
import { parseUri } from '../../message/uri.js';
import { cpimHeader, formatCpim, parseCpim } from '../im/cpim.js';
import { formatDeliveryNotification, IMDN_CONTENT_TYPE } from '../im/imdn.js';
import { silentLogger, type Logger } from '../logger.js';
import { displayAor, splitAor, type Aor } from '../store/aor.js';
import { DiskFloor } from '../store/disk-space.js';
import { openStore } from '../store/open-store.js';
import type { Store, StoredMessage } from '../store/store.js';
import { epochOffset, wallClockOf, type WallClock } from '../wall-clock.js';
import { AccountCredentials, DomainAuthenticators } from './accounts.js';
import { DeliveryScheduler, type CourierTarget } from './delivery.js';
import { DurableLocations } from './durable-locations.js';
import { Federation } from '../federation/federation.js';
import { INTAKE_STEPS, runIntake, type IntakeServer } from './intake.js';
import { resolveConfig, type ServerConfig } from './server-config.js';

export interface ParleyServerEvents {
  /** Durable, and answered 202. */
  stored: [message: StoredMessage];
  /** A device answered 2xx. */
  delivered: [message: StoredMessage, device: string];
  /** A user's registered devices changed. */
  bindings: [aor: string, count: number];
}

export interface ParleyServerOptions {
  logger?: Logger;
  /** Stack options beyond the listen addresses (a ManualClock in tests, timers, DNS). */
  stack?: Partial<SipStackOptions>;
  /**
   * A store opened by the caller (another database behind the `Store` interfaces); the server
   * takes it over and closes it on stop. Without it, the SQLite store of `config.data`.
   */
  store?: Store;
}

const DAY_MS = 86_400_000;
/** Delivered messages are deleted this often (and the mailbox quota recounted). */
const PURGE_INTERVAL_MS = 60_000;

/**
 * A Parley home server (docs/server.md): the DUM registrar over the durable store, MESSAGE
 * intake (authenticate, check, store, then 202), delivery to every device of the recipient, and
 * delivery notifications back to the sender.
 */
export class ParleyServer extends EventEmitter<ParleyServerEvents> {
  readonly registrar: Registrar;
  private readonly domains: Set<string>;
  private readonly authenticators: DomainAuthenticators;
  private readonly delivery: DeliveryScheduler;
  /** The Parley network: links, routes, forwarding (docs/federation.md). */
  readonly federation: Federation;
  /** Foreign recipients with a relay courier: their messages go to the next hop. */
  private readonly relayed = new Set<Aor>();
  /** Peers, a network secret or discovery: MESSAGEs from other domains must come from a server. */
  readonly federated: boolean;
  /** Wall-clock time from the stack's clock: what is stored, Date headers, retention. */
  private readonly clock: WallClock;
  /** What the intake steps see of this server (src/app/server/intake.ts). */
  private readonly intake: IntakeServer;
  private purgeTimer: ReturnType<SipStack['timers']['schedule']> | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly config: ServerConfig,
    readonly store: Store,
    readonly stack: SipStack,
    readonly dum: DialogUsageManager,
    private readonly logger: Logger,
  ) {
    super();
    this.domains = new Set(config.domains);
    this.clock = wallClockOf(stack.clock);
    this.federated = config.peers.length > 0 || config.federationSecret !== undefined || config.discovery !== false;
    this.federation = new Federation(config, dum, stack.timers, logger, config.advertise ?? advertisedUri(stack), () => this.relayingCount());
    this.authenticators = new DomainAuthenticators(config.domains, new AccountCredentials(store), {
      algorithms: config.digestAlgorithms,
      clock: this.clock,
      // docs/server.md (ServerConfig, auth*): online guessing is braked and logged.
      limits: { accountFailures: config.authFailureLimit, sourceFailures: config.authSourceFailureLimit, windowMs: config.authFailureWindowMs, backoffMs: config.authBackoffMs },
      nonceFailureLimit: config.nonceFailureLimit,
      maxTrackedNonces: config.maxTrackedNonces,
      logger,
    });
    // Bindings are kept in wall-clock time, so that they mean the same after a restart.
    this.registrar = new Registrar(dum, { domains: config.domains, store: new DurableLocations(store, epochOffset(stack.clock)), authenticator: this.authenticators });
    this.delivery = new DeliveryScheduler(store, stack.timers, (message, target) => (target.kind === 'relay' ? this.federation.forward(message) : this.sendToDevice(message, target.binding)), {
      // A relay sends one at a time (docs/federation.md): with more in flight, a next hop that
      // refuses one (480 while it relearns its routes, 503 when busy) and takes the next would
      // store them out of order, and per-sender order is the contract.
      window: (target) => (target.kind === 'relay' ? config.relayWindow : config.deliveryWindow),
      retryMs: config.deliveryRetryMs,
    }, () => this.clock.now());
    this.registrar.on('bindings', (aor, bindings) => {
      this.logger.info(`${displayAor(aor)}: ${bindings.length} device${bindings.length === 1 ? '' : 's'} registered`);
      // After the registrar's 200 has gone: a device hears that it is registered before it gets mail.
      setImmediate(() => this.delivery.update(aor, bindings));
      // At the connection limit a flow a binding lives on is the last to be closed (docs/transport-layer.md).
      markFlows(stack.transports, bindings.map((b) => b.flow?.connectionId));
      this.emit('bindings', aor, bindings.length);
    });
    this.delivery.on('delivered', (message, target, first) => {
      // Handed to the next hop is not delivered: the recipient's home notifies when a device takes it.
      if (target.kind === 'relay') return;
      this.emit('delivered', message, target.cursor);
      if (first && message.notify) void this.notifyDelivered(message);
    });
    this.delivery.on('refused', (message, target, status) =>
      this.logger.warn(`message ${message.id} for ${displayAor(message.recipient)} refused by ${target.kind === 'relay' ? 'the next hop' : target.cursor} with ${status}; ${target.kind === 'relay' ? 'dropped' : 'skipped for that device'}`),
    );
    this.delivery.on('retrying', (recipient, target, status, delay) => this.logger.info(`delivery to ${describeTarget(target)} (${displayAor(recipient)}) failed with ${status}; next try in ${Math.round(delay / 1000)} s`));
    // A way opened (or changed): whatever waits for that domain goes now, not at its backoff.
    this.federation.on('route', (domain, nextHop) => nextHop !== undefined && this.retryRelays(domain));
    // A neighbour back (perhaps restarted before we saw it down, its routes unchanged): retry all.
    this.federation.on('link', (_name, state) => state === 'up' && this.retryRelays());
    this.intake = {
      config,
      domains: this.domains,
      federated: this.federated,
      store,
      users: this.authenticators,
      federation: this.federation,
      clock: this.clock,
      logger,
      // docs/server.md (ServerConfig, minFreeDiskBytes): 503 before the data directory's disk is full.
      diskLow: diskFloorOf(config, this.clock),
      took: (message, local) => {
        this.emit('stored', message);
        if (local) this.delivery.kick(message.recipient);
        else this.relay(message.recipient);
      },
    };
    dum.onMessage((message) => this.receive(message));
    // docs/federation.md: a neighbour's ping gets our hello, `parley network` the admin view.
    dum.onOptions((request) => this.federation.optionsBody(request.message.headers('accept').join(', '), request.source.address, request.message.header('parley-admin-token')));
  }

  /** Messages stored here for other domains that no next hop has taken yet. */
  private relayingCount(): number {
    let relaying = 0;
    for (const recipient of this.relayed) relaying += this.store.unacknowledged(recipient);
    return relaying;
  }

  /** Opens the store, binds the listen addresses, and resumes delivery to the devices still registered. */
  static async start(config: Partial<ServerConfig> = {}, options: ParleyServerOptions = {}): Promise<ParleyServer> {
    const resolved = resolveConfig(config);
    const logger = options.logger ?? silentLogger;
    const tls = resolved.tls
      ? {
          cert: readFileSync(resolved.tls.cert),
          key: readFileSync(resolved.tls.key),
          ...(resolved.tls.ca ? { ca: resolved.tls.ca.map((file) => readFileSync(file)), systemCa: resolved.tls.caOnly !== true } : {}),
        }
      : undefined;
    // A MESSAGE handler waits for the group commit, so many run at once: that is what fills a commit.
    const advertise = resolved.advertiseHost;
    const transports = resolved.listen.map((listen) => (advertise !== undefined ? { listen, advertise } : listen));
    // A stream buffers no more for one message than the largest the server takes (413 above it).
    const stream = {
      ...streamLimitsFor(resolved.maxMessageBytes),
      maxConnections: resolved.maxConnections,
      maxConnectionsPerSource: resolved.maxConnectionsPerSource,
      firstMessageTimeoutMs: resolved.firstMessageTimeoutMs,
      partialMessageTimeoutMs: resolved.partialMessageTimeoutMs,
      ...options.stack?.stream,
    };
    const stack = new SipStack({ tuConcurrency: 4096, ...options.stack, stream, transports, tls });
    // The store stamps times of its own (a cursor's first row) on the same clock as the server.
    const store = options.store ?? openStore(resolved.data, { clock: wallClockOf(stack.clock) });
    try {
      await stack.start();
    } catch (error) {
      await store.close();
      throw error;
    }
    const dum = new DialogUsageManager(stack, { acceptedTypes: resolved.acceptedTypes, aor: `sip:parley@${resolved.domains[0]!}` });
    const server = new ParleyServer(resolved, store, stack, dum, logger);
    await server.resume();
    server.schedulePurge();
    try {
      await server.federation.start();
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  get transports(): readonly Transport[] {
    return this.stack.transports;
  }

  /** Stops taking requests, stops delivery, commits what is queued, closes the store. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.purgeTimer?.cancel();
      // Neighbours hear that we go (their routes through us are withdrawn at once).
      await this.federation.stop();
      this.delivery.stop();
      this.registrar.close();
      await this.stack.stop();
      await this.store.close();
    })();
    return this.stopping;
  }

  // ---- intake: RFC 3428 §7 at a server that stores and forwards --------------------------------

  /** The steps of src/app/server/intake.ts, in their order; the first answer is sent. */
  private receive(incoming: IncomingMessage): ReturnType<typeof runIntake> {
    return runIntake(incoming.request, this.intake, INTAKE_STEPS, incoming.source);
  }

  /** Relay couriers (of one domain, or all) try now, whatever their backoff. */
  private retryRelays(domain?: string): void {
    for (const recipient of this.relayed) if (domain === undefined || splitAor(recipient).domain === domain) this.delivery.relay(recipient);
  }

  /** A foreign recipient's log goes to the next hop, by a courier like a device's (docs/federation.md). */
  private relay(recipient: Aor): void {
    if (!this.relayed.has(recipient)) {
      this.relayed.add(recipient);
      this.delivery.relay(recipient);
    }
    this.delivery.kick(recipient);
  }

  // ---- delivery ---------------------------------------------------------------------------------

  /** One MESSAGE to one device: From the sender, To the recipient, Date when stored, body unchanged. */
  private async sendToDevice(message: StoredMessage, binding: StoredBinding): Promise<number> {
    const headers: Record<string, string | string[]> = { Date: new Date(message.receivedAt).toUTCString() };
    // RFC 3327: a device registered through proxies is reached through them.
    if (binding.path && binding.path.length > 0) headers.Route = binding.path;
    const request = createRequest({
      method: 'MESSAGE',
      uri: parseUri(binding.contact, 'contact'),
      from: parseNameAddr(`<${message.sender}>`, 'from'),
      to: parseNameAddr(`<${message.recipient}>`, 'to'),
      headers: { ...headers, 'User-Agent': this.dum.userAgent },
      body: message.body,
      contentType: message.contentType,
    });
    const response = await this.stack.request(request, { target: flowTarget(binding) }).final;
    return response.status ?? 500;
  }

  /**
   * RFC 5438 §7.1: the first device of the recipient took a message whose sender asked for
   * positive delivery notification; the notification goes into the sender's log like any message.
   */
  private async notifyDelivered(message: StoredMessage): Promise<void> {
    const home = this.domains.has(splitAor(message.sender).domain);
    if (home ? !this.store.account(message.sender) : !this.federation.accepts(splitAor(message.sender).domain)) {
      this.logger.info(`delivery notification for ${displayAor(message.sender)} not sent: ${home ? 'not a user here' : 'no route to its domain'}`);
      return;
    }
    let sentAt = new Date(message.receivedAt);
    if (mediaTypeOf(message.contentType) === 'message/cpim') {
      try {
        const dateTime = cpimHeader(parseCpim(message.body).headers, 'DateTime');
        if (dateTime && !Number.isNaN(Date.parse(dateTime))) sentAt = new Date(dateTime);
      } catch {
        // Stored after a successful parse; keep the store time.
      }
    }
    const now = new Date(this.clock.now());
    const messageId = randomUUID();
    const body = formatCpim({
      from: message.recipient,
      to: message.sender,
      dateTime: now,
      messageId,
      contentType: IMDN_CONTENT_TYPE,
      contentDisposition: 'notification',
      content: formatDeliveryNotification({ messageId: message.messageId, dateTime: sentAt, recipient: message.recipient, status: 'delivered' }),
    });
    try {
      await this.store.append({ recipient: message.sender, sender: message.recipient, messageId, contentType: 'message/cpim', body, receivedAt: now.getTime(), notify: false, maxForwards: this.config.maxForwards });
      // Back the way messages go: to the sender's devices here, or through the network to its home.
      if (home) this.delivery.kick(message.sender);
      else this.relay(message.sender);
    } catch (error) {
      this.logger.error(`delivery notification for ${displayAor(message.sender)} not stored: ${String(error)}`);
    }
  }

  /**
   * After a (re)start: bindings whose flow was a connection of the previous process are gone
   * (RFC 5626 §6: the device registers again on a new flow); delivery resumes to the others.
   */
  private async resume(): Promise<void> {
    for (const aor of this.store.boundAors()) {
      const all = this.store.get(aor);
      const reachable = all.filter((b) => b.flow?.connectionId === undefined || b.regId === undefined);
      if (reachable.length !== all.length) await this.store.put(aor, reachable);
      this.delivery.update(aor, await this.registrar.lookup(aor));
    }
    // Messages still waiting for a next hop from before the restart.
    for (const recipient of this.store.recipients()) if (!this.domains.has(splitAor(recipient).domain)) this.relay(recipient);
  }

  private schedulePurge(): void {
    const run = (): void => {
      try {
        const removed = this.store.purge(this.clock.now(), this.config.retentionDays * DAY_MS);
        if (removed > 0) this.logger.info(`purged ${removed} delivered or expired message${removed === 1 ? '' : 's'}`);
      } catch (error) {
        this.logger.error(`purge failed: ${String(error)}`);
      }
      this.purgeTimer = this.stack.timers.schedule(PURGE_INTERVAL_MS, run);
    };
    run();
  }
}

/**
 * Where a device is reached: over the flow it registered on when it asked for outbound (RFC
 * 5626 §5.3) or registered over UDP (RFC 3581: the source it sent from); otherwise at its Contact.
 * An outbound flow over a connection is the only way to the device (behind a NAT a new
 * connection would not reach it): the request goes on that connection or fails with 430 Flow
 * Failed, never redialled; the device registers again on a new flow, and delivery resumes then.
 */
function flowTarget(binding: StoredBinding): Target | undefined {
  const flow = binding.flow;
  if (!flow) return undefined;
  const tuple = { protocol: flow.protocol, address: flow.address, port: flow.port };
  if (binding.regId !== undefined && flow.connectionId !== undefined) return { ...tuple, flow: flow.connectionId };
  if (binding.regId !== undefined || flow.protocol === 'udp') return tuple;
  return undefined;
}

/** The disk floor of a data directory (none in memory, or with minFreeDiskBytes 0). */
function diskFloorOf(config: ServerConfig, clock: WallClock): (() => boolean) | undefined {
  if (config.minFreeDiskBytes === 0 || config.data === ':memory:') return undefined;
  const floor = new DiskFloor({ path: config.data, minFreeBytes: config.minFreeDiskBytes, clock });
  return () => floor.low();
}

/** A courier target for people: the device, or the relay. */
function describeTarget(target: CourierTarget): string {
  return target.kind === 'relay' ? 'the next hop' : target.cursor;
}

/** The URI neighbours reach us at: the first stream listener, else the first one, at its sent-by (never a wildcard). */
function advertisedUri(stack: SipStack): string {
  const transports = stack.transports;
  const chosen = transports.find((t) => t.protocol === 'tcp') ?? transports.find((t) => t.protocol === 'tls') ?? transports[0]!;
  const sentBy = stack.sentBy(chosen);
  const scheme = chosen.protocol === 'tls' ? 'sips' : 'sip';
  return `${scheme}:${formatHostPort(sentBy.host, sentBy.port)}${chosen.protocol === 'udp' || chosen.protocol === 'tls' ? '' : `;transport=${chosen.protocol}`}`;
}
