import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { createResponse } from '../../message/builder.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { CredentialStore } from '../../tu/dum/credential-store.js';
import { digestHa1, type DigestAlgorithm } from '../../tu/dum/digest.js';
import { DigestAuthenticator } from '../../tu/dum/digest-authenticator.js';
import type { DialogUsageManager } from '../../tu/dum/dialog-usage-manager.js';
import type { ServerSubscription } from '../../tu/dum/server-subscription.js';
import type { TimerQueue } from '../../util/timer-queue.js';
import type { Logger } from '../logger.js';
import { displayAor, splitAor } from '../store/aor.js';
import type { StoredMessage } from '../store/store.js';
import type { PeerConfig, ServerConfig } from '../server/server-config.js';
import { Discovery } from './discovery.js';
import {
  DocumentError,
  formatHello,
  formatPath,
  formatRoutes,
  HELLO_TYPE,
  MESSAGE_ID_HEADER,
  NETWORK_TYPE,
  parseHello,
  PATH_HEADER,
  ROUTES_EVENT,
  ROUTES_TYPE,
  type Hello,
} from './documents.js';
import { PeerLink, type LinkOrigin, type LinkState } from './peer-link.js';
import { RouteTable, type Advertised, type Route } from './route-table.js';

export interface FederationEvents {
  link: [name: string, state: LinkState];
  /** The best route to a domain changed; undefined: withdrawn. */
  route: [domain: string, nextHop: string | undefined, path: string[] | undefined];
  /** The next hop answered 2xx: it has the message durably. */
  forwarded: [message: StoredMessage, nextHop: string];
}

/** `parley network`'s view (docs/federation.md "The admin view"). */
export interface NetworkView {
  server: string;
  domains: string[];
  boot: string;
  uri: string;
  neighbours: Array<{ name: string; uri: string; state: LinkState; since: string; origin: LinkOrigin }>;
  routes: Array<{ domain: string; nextHop: string | null; path: string[]; static?: boolean }>;
  relaying: number;
}

/** The outcome of checking a request's server credentials. */
export type PeerOutcome = { ok: true; name: string } | { ok: false; response: SipMessage };

/** Statuses from a next hop after which another route is tried, and the message later retried. */
const RETRY_ELSEWHERE = new Set([408, 480, 500, 503, 504]);
/** A stop waits this long for each neighbour to take the link's end. */
const STOP_BOUND_MS = 2000;

/** What the notifier side keeps per neighbour subscribed to us. */
interface Notifier {
  subscription: ServerSubscription;
  version: number;
  /** What we told it last, per domain: the path joined, or '' for withdrawn. */
  told: Map<string, string>;
}

/**
 * A server's part of the Parley network (docs/federation.md): links to neighbours, the route
 * table learned over them, the `parley-routes` notifier, server authentication, and forwarding
 * stored messages to the next hop.
 */
export class Federation extends EventEmitter<FederationEvents> {
  readonly name: string;
  readonly boot = randomUUID();
  readonly table: RouteTable;
  private readonly links = new Map<string, PeerLink>();
  private readonly notifiers = new Map<string, Notifier>();
  private readonly configured: Map<string, PeerConfig>;
  private readonly authenticator: DigestAuthenticator;
  private discovery: Discovery | undefined;
  private stopped = false;

  constructor(
    private readonly config: ServerConfig,
    private readonly dum: DialogUsageManager,
    private readonly timers: Pick<TimerQueue, 'schedule' | 'now'>,
    private readonly logger: Logger,
    readonly uri: string,
    /** Messages waiting for a next hop (the server's relay couriers know). */
    private readonly relaying: () => number = () => 0,
  ) {
    super();
    this.name = config.domains[0]!;
    this.configured = new Map(config.peers.map((p) => [p.domain.toLowerCase(), { ...p, domain: p.domain.toLowerCase() }]));
    this.table = new RouteTable(this.name, config.domains, config.routes, (neighbour) => this.configured.has(neighbour));
    this.authenticator = new DigestAuthenticator({ realm: realmOf(this.name), credentials: new PeerCredentials(this), clock: { now: () => timers.now() } });
    // No credential for "any realm" (issue 16): each link's secret is bound to that neighbour's
    // realm and to where its requests go (bindCredential), so a server challenging with another
    // realm, or with a neighbour's realm from elsewhere, gets nothing to crack or replay.
  }

  /** Serves `parley-routes`, links to the configured peers, and starts discovery. */
  async start(): Promise<void> {
    this.dum.onSubscribe(ROUTES_EVENT, (subscription) => this.onSubscribe(subscription));
    for (const peer of this.config.peers) this.addPeer(peer);
    if (this.config.discovery) {
      this.discovery = new Discovery(this.config.discovery, () => this.hello());
      this.discovery.on('hello', (hello) => this.onHello(hello));
      await this.discovery.start();
    }
  }

  /** Tears the links down: our subscriptions end, and neighbours subscribed to us are told we go. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.discovery?.stop();
    const notifiers = [...this.notifiers.values()].map((n) => bounded(n.subscription.terminate('deactivated')));
    this.notifiers.clear();
    await Promise.all([...notifiers, ...[...this.links.values()].map((link) => link.stop(STOP_BOUND_MS))]);
  }

  /** Links to a neighbour now (configuration, an admin, a test). Known already: tried again at once. */
  addPeer(peer: PeerConfig, origin: LinkOrigin = 'config'): void {
    const name = peer.domain.toLowerCase();
    if (this.stopped || this.table.isLocal(name)) return;
    if (origin === 'config') {
      const before = this.configured.has(name);
      this.configured.set(name, { ...peer, domain: name });
      if (!before) this.changed(this.table.reconsider());
    }
    const secret = this.secretFor(name);
    if (secret === undefined) {
      this.logger.warn(`link ${name}: no secret for it (configure one, or set federationSecret)`);
      return;
    }
    const existing = this.links.get(name);
    if (existing) {
      if (origin === 'config' && existing.origin !== 'config') existing.uri = peer.uri;
      this.bindCredential(existing);
      if (existing.state !== 'up' && existing.state !== 'connecting') existing.connect();
      return;
    }
    const link = new PeerLink(name, peer.uri, origin, this.dum, this.timers, () => this.hello(), {
      pingIntervalMs: this.config.pingIntervalMs,
      pingMisses: this.config.pingMisses,
      retryMs: this.config.linkRetryMs,
    });
    this.links.set(name, link);
    this.bindCredential(link);
    link.on('state', (state, detail) => this.onLinkState(link, state, detail));
    link.on('routes', (document) => {
      this.bindCredential(link); // the dialog's remote target, or a new URI, is known now
      this.changed(this.table.learn(name, document.full, document.routes));
    });
    this.logger.info(`link ${name}: connecting to ${peer.uri} (${origin})`);
    link.connect();
  }

  /** The best route to a domain we do not serve. */
  route(domain: string): Route | undefined {
    return this.table.best(domain);
  }

  /** A MESSAGE for this domain can be taken: routed now, known from before, or DNS is allowed. */
  accepts(domain: string): boolean {
    return this.table.best(domain) !== undefined || this.table.isKnown(domain) || this.config.dnsFallback;
  }

  /**
   * Checks a server's digest credentials (docs/federation.md "Authentication"): realm
   * `peers@<our name>`, username the neighbour's name. Our own names are never a neighbour's.
   */
  async authenticatePeer(request: SipMessage): Promise<PeerOutcome> {
    const outcome = await this.authenticator.authenticate(request);
    if (!outcome.ok) return { ok: false, response: outcome.response };
    const name = outcome.username.toLowerCase();
    if (this.table.isLocal(name)) return { ok: false, response: createResponse(request, 403, `${name} is served here`) };
    // A relayed MESSAGE: a foreign sender only from the path to its home (issue 16).
    if (request.method === 'MESSAGE') {
      let senderDomain: string | undefined;
      try {
        senderDomain = request.from.uri.host.toLowerCase();
      } catch {
        senderDomain = undefined; // the intake refuses an unreadable From
      }
      const refusal = senderDomain !== undefined && !this.table.isLocal(senderDomain) ? this.senderCheck(name, senderDomain) : undefined;
      if (refusal) return { ok: false, response: createResponse(request, refusal.status, refusal.reason, refusal.headers ? { headers: refusal.headers } : undefined) };
    }
    return { ok: true, name };
  }

  /**
   * May neighbour `peer` hand us a message from a sender in `senderDomain` (issue 16)? Its own
   * domain, a domain it routes to (it is on the path from that sender's home), or a domain no one
   * here knows of; a known domain it does not route: 480 with Retry-After, nothing stored.
   * While its link is not up here its routes are unknown: 480 with Retry-After (it tries again).
   */
  senderCheck(peer: string, senderDomain: string): { status: number; reason: string; headers?: Record<string, string> } | undefined {
    const domain = senderDomain.toLowerCase();
    if (domain === peer) return undefined;
    // A domain no one here routes (nor ever did) is nobody's to protect: taken (docs/federation.md).
    if (this.table.candidates(domain).length === 0 && !this.table.isKnown(domain)) return undefined;
    if (!this.table.neighbours.includes(peer)) return { status: 480, reason: `No routes from ${peer} yet`, headers: { 'Retry-After': '5' } };
    if (this.table.candidates(domain).some((r) => r.nextHop === peer && !r.static)) return undefined;
    // Not 403: a neighbour that stored the message before a restart may not have its route yet
    // (a 403 would drop it for good). A forger gets nothing stored, only a retry.
    return { status: 480, reason: `${peer} is not on the path from ${domain}`, headers: { 'Retry-After': '5' } };
  }

  /** A request carries credentials for our peers realm (a server, not a user, is speaking). */
  hasPeerCredentials(request: SipMessage): boolean {
    const realm = realmOf(this.name);
    return request.headers('authorization').some((value) => value.includes(`realm="${realm}"`));
  }

  /**
   * Hands a stored message to the next hop (docs/federation.md "Hop-by-hop store-and-forward"):
   * the best route first, then the next best through a neighbour not tried yet. Resolves with
   * the status that decides the message's fate: 2xx forwarded, 408/480/5xx try again later,
   * any other final status refused for good.
   */
  async forward(message: StoredMessage): Promise<number> {
    const domain = splitAor(message.recipient).domain;
    const routes = this.table.candidates(domain);
    if (routes.length === 0) {
      // RFC 3263 (docs/dns.md): the domain's own servers, found by DNS, when allowed.
      if (this.config.dnsFallback) return this.send(message, undefined);
      return 480;
    }
    let last = 480;
    const tried = new Set<string>();
    for (const route of routes) {
      if (tried.has(route.nextHop)) continue;
      tried.add(route.nextHop);
      const link = this.links.get(route.nextHop);
      if (!link || link.state !== 'up') continue;
      last = await this.send(message, route.nextHop, link.uri);
      if (last >= 200 && last < 300) return last;
      if (!RETRY_ELSEWHERE.has(last)) return last;
      const others = routes.some((r) => !tried.has(r.nextHop));
      this.logger.info(`forwarding to ${displayAor(message.recipient)} via ${route.nextHop} failed with ${last}${others ? '; trying the next route' : ''}`);
    }
    return last;
  }

  /**
   * A body for the answer to an OPTIONS (RFC 3261 §11.2: "Message bodies … MAY be present"): our
   * hello to anyone asking for it (a neighbour's ping: the boot id shows a restart), the admin
   * view to this machine only.
   */
  optionsBody(accept: string, source: string, token?: string): { body: string; contentType: string } | undefined {
    const types = accept.toLowerCase();
    if (types.includes(NETWORK_TYPE) && isLoopback(source) && this.adminAllowed(token)) return { body: JSON.stringify(this.view()), contentType: NETWORK_TYPE };
    if (types.includes(HELLO_TYPE)) return { body: formatHello(this.hello()), contentType: HELLO_TYPE };
    return undefined;
  }

  /** The admin token (adminToken), when configured, must match (compared in constant time). */
  private adminAllowed(token: string | undefined): boolean {
    const expected = this.config.adminToken;
    if (expected === undefined) return true;
    if (token === undefined) return false;
    const a = createHash('sha256').update(token).digest();
    const b = createHash('sha256').update(expected).digest();
    return timingSafeEqual(a, b);
  }

  /** Links, routes, and what waits for a next hop (docs/federation.md "The admin view"). */
  view(): NetworkView {
    const routes: NetworkView['routes'] = this.config.domains.map((d) => ({ domain: d, nextHop: null, path: [this.name] }));
    for (const route of this.table.routes()) routes.push({ domain: route.domain, nextHop: route.nextHop, path: route.path, ...(route.static ? { static: true } : {}) });
    return {
      server: this.name,
      domains: [...this.config.domains],
      boot: this.boot,
      uri: this.uri,
      neighbours: [...this.links.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((l) => ({ name: l.name, uri: l.uri, state: l.state, since: l.since.toISOString(), origin: l.origin })),
      routes,
      relaying: this.relaying(),
    };
  }

  // ---- the link's two sides ------------------------------------------------------------------

  /** RFC 6665 §4.2.1: a neighbour subscribes to our routes. It must be a server with the secret. */
  private async onSubscribe(subscription: ServerSubscription): Promise<void> {
    const request = subscription.request;
    const outcome = await this.authenticatePeer(request);
    if (!outcome.ok) return subscription.reject(outcome.response);
    const name = outcome.name;
    let hello: Hello;
    try {
      if (!(request.contentType ?? '').toLowerCase().startsWith(HELLO_TYPE)) throw new DocumentError('FEDERATION_BAD_DOCUMENT', `the SUBSCRIBE must carry ${HELLO_TYPE}`);
      hello = parseHello(request.body);
    } catch (error) {
      if (!(error instanceof DocumentError)) throw error;
      return subscription.reject(400, error.message.slice(0, 100));
    }
    if (hello.server !== name) return subscription.reject(403, `authenticated as ${name}, not ${hello.server}`);
    if (this.stopped) return subscription.reject(503);

    const previous = this.notifiers.get(name);
    const notifier: Notifier = { subscription, version: 1, told: new Map() };
    this.notifiers.set(name, notifier);
    if (previous && previous.subscription !== subscription) void bounded(previous.subscription.terminate('deactivated'));
    subscription.on('terminated', () => {
      if (this.notifiers.get(name) === notifier) this.notifiers.delete(name);
    });
    const routes = this.table.fullAdvertisementFor(name);
    for (const r of routes) notifier.told.set(r.domain, r.path!.join(' '));
    subscription.accept({ body: this.document(1, true, routes), contentType: ROUTES_TYPE });

    // The other direction: link back (an unconfigured or discovered neighbour joins this way);
    // a new boot id means it restarted and our old subscription to it is gone with its memory.
    const link = this.links.get(name);
    if (!link) this.addPeer({ domain: name, uri: hello.uri }, this.configured.has(name) ? 'config' : 'inbound');
    else if (link.state === 'down' || link.state === 'refused' || (link.boot !== undefined && link.boot !== hello.boot)) link.connect();
  }

  private onHello(hello: Hello): void {
    if (this.stopped || this.links.has(hello.server) || this.table.isLocal(hello.server)) return;
    this.logger.info(`discovered ${hello.server} at ${hello.uri}`);
    this.addPeer({ domain: hello.server, uri: hello.uri }, 'discovered');
  }

  private onLinkState(link: PeerLink, state: LinkState, detail: string): void {
    // docs/federation.md: every link up/down/refused is logged, with why.
    if (state === 'up') this.logger.info(`link ${link.name} up`);
    else if (state === 'connecting' && detail.startsWith('it restarted')) this.logger.info(`link ${link.name}: ${detail}; subscribing again`);
    else if (state === 'refused' || state === 'down') {
      this.logger.warn(`link ${link.name} ${state} (${detail})`);
      this.logger.info(`link ${link.name}: next try in ${link.retryInMs} ms`);
    }
    if (state !== 'up') this.changed(this.table.dropNeighbour(link.name));
    this.emit('link', link.name, state);
  }

  /** Best routes changed: log, tell the server, and send each neighbour what changed for it. */
  private changed(domains: string[]): void {
    if (domains.length === 0) return;
    for (const domain of domains) {
      const best = this.table.best(domain);
      if (best) this.logger.info(`route ${domain} via ${best.nextHop} (${best.path.length} hop${best.path.length === 1 ? '' : 's'}${best.static ? ', static' : ''})`);
      else this.logger.info(`route ${domain} withdrawn`);
      this.emit('route', domain, best?.nextHop, best?.path);
    }
    for (const [name, notifier] of this.notifiers) {
      const delta: Advertised[] = [];
      for (const domain of domains) {
        const advertised = this.table.advertisementFor(name, domain);
        const told = advertised.path?.join(' ') ?? '';
        if ((notifier.told.get(domain) ?? '') === told) continue;
        if (told === '') notifier.told.delete(domain);
        else notifier.told.set(domain, told);
        delta.push(advertised);
      }
      if (delta.length === 0) continue;
      notifier.version++;
      // Incremental (docs/federation.md): only what changed, numbered so a lost one is noticed.
      notifier.subscription.notify({ body: this.document(notifier.version, false, delta), contentType: ROUTES_TYPE }).catch(() => undefined);
    }
  }

  private document(version: number, full: boolean, routes: Advertised[]): string {
    return formatRoutes({ ...this.hello(), version, full, routes });
  }

  private hello(): Hello {
    return { server: this.name, boot: this.boot, uri: this.uri };
  }

  /**
   * Our credentials for a neighbour's realm `peers@NAME`: the link's secret (RFC 7616: the realm
   * names the protection space), offered only to requests to that link's destinations.
   */
  private bindCredential(link: PeerLink): void {
    const secret = this.secretFor(link.name);
    if (secret === undefined) return;
    this.dum.digest.setCredential({ username: this.name, password: secret, realm: realmOf(link.name), destinations: link.destinations() });
  }

  /** The secret of the link with `name`: its own, else the network's. */
  secretFor(name: string): string | undefined {
    return this.configured.get(name)?.secret ?? this.config.federationSecret;
  }

  /** One MESSAGE to the next hop (or, without one, to the domain by DNS). */
  private async send(message: StoredMessage, nextHop: string | undefined, uri?: string): Promise<number> {
    const headers: Record<string, string> = {
      Date: new Date(message.receivedAt).toUTCString(),
      [PATH_HEADER]: formatPath([...(message.path ?? []), this.name]),
      [MESSAGE_ID_HEADER]: message.messageId,
    };
    // RFC 3261 §16.12.1.1: a loose route to the next hop; the Request-URI stays the recipient.
    if (uri !== undefined) headers.Route = `<${uri};lr>`;
    const request = this.dum.newRequest('MESSAGE', message.recipient, {
      from: `<${message.sender}>`,
      to: `<${message.recipient}>`,
      headers,
      body: message.body,
      contentType: message.contentType,
    });
    // RFC 3261 §16.6 item 3: one less than it came with.
    request.setHeader('Max-Forwards', String(Math.max(0, (message.maxForwards ?? 70) - 1)));
    // By DNS (no link): the network's secret, for the domain's own realm at the domain only.
    if (nextHop === undefined && this.config.federationSecret !== undefined) {
      const domain = splitAor(message.recipient).domain;
      if (!this.links.has(domain)) this.dum.digest.setCredential({ username: this.name, password: this.config.federationSecret, realm: realmOf(domain), destinations: [domain] });
    }
    // Credentials up front for a realm answered before: no challenge round trip per message.
    this.dum.digest.preauthorize(request, nextHop !== undefined ? realmOf(nextHop) : undefined);
    const response = await this.dum.send(request).final;
    const status = response.status ?? 500;
    if (status >= 200 && status < 300) this.emit('forwarded', message, nextHop ?? splitAor(message.recipient).domain);
    return status;
  }
}

/** The digest realm a server authenticates neighbours in. */
export function realmOf(name: string): string {
  return `peers@${name}`;
}

/** HA1s of the link secrets: the username is the neighbour's name. */
class PeerCredentials implements CredentialStore {
  constructor(private readonly federation: Federation) {}

  lookup(username: string, realm: string, algorithm: DigestAlgorithm): string | undefined {
    const secret = this.federation.secretFor(username.toLowerCase());
    if (secret === undefined) return undefined;
    return digestHa1(algorithm.replace(/-sess$/i, '') as DigestAlgorithm, username, realm, secret);
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

function bounded(promise: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise.then(() => undefined, () => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_BOUND_MS)))]).finally(() => clearTimeout(timer));
}
