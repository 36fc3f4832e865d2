import { parseAdvertised } from '../../transport/sent-by.js';
import { readFileSync } from 'node:fs';
import { ParleyError } from '../../util/errors.js';
import { ACCOUNT_ALGORITHMS, type AccountAlgorithm } from '../store/store.js';

/** A configuration that cannot run. Code: `CONFIG_INVALID`. */
export class ConfigError extends ParleyError {}

/** Everything a Parley server is told (docs/server.md). */
export interface ServerConfig {
  /** Domains this server is home to. */
  domains: string[];
  /** `PROTO:HOST:PORT` listen addresses (ARCHITECTURE.md). */
  listen: string[];
  /** The data directory (database `parley.db` inside); `':memory:'` keeps nothing (tests). */
  data: string;
  /**
   * PEM files for `tls:` listeners; `ca`: PEM files of CAs trusted for the servers this one
   * connects to over TLS (RFC 5922: their certificate must name the SIP domain), in addition to
   * Node's built-in roots, or instead of them with `caOnly`.
   */
  tls?: { cert: string; key: string; ca?: string[]; caOnly?: boolean };
  /** A message is dropped this many days after it was stored, acknowledged or not. */
  retentionDays: number;
  /** A larger MESSAGE body is refused with 413. */
  maxMessageBytes: number;
  /** Messages kept for one user (delivered ones are deleted every minute); more → 480 with Retry-After. */
  maxStoredPerUser: number;
  /** Messages waiting for the disk; more → 503 with Retry-After. */
  maxCommitBacklog: number;
  /** Stream (TCP/TLS/WS) connections per listener; at the limit one is closed to make room (docs/transport-layer.md). */
  maxConnections: number;
  /** Inbound stream connections from one IP address; more are closed at once (0: no limit). */
  maxConnectionsPerSource: number;
  /** An inbound stream connection with no complete SIP message within this long is closed (ms; 0: never). */
  firstMessageTimeoutMs: number;
  /** A SIP message begun on a stream must be complete within this long, or the connection closes (ms; 0: never). */
  partialMessageTimeoutMs: number;
  /** Messages one sender may have kept in one mailbox; more → 480 with Retry-After. Default maxStoredPerUser / 10 (at least 1). */
  maxStoredPerSender: number;
  /** Body bytes kept for one user; a MESSAGE that would go over → 480 with Retry-After. */
  maxStoredBytesPerUser: number;
  /** Free bytes the data directory's file system must keep: below, new MESSAGEs get 503 with Retry-After (0: no floor). */
  minFreeDiskBytes: number;
  /** Wrong digest responses for one account (user@domain) within authFailureWindowMs that block it (403 with Retry-After). */
  authFailureLimit: number;
  /** Wrong digest responses from one source address within authFailureWindowMs that block it. */
  authSourceFailureLimit: number;
  /** The window failures are counted in (ms). */
  authFailureWindowMs: number;
  /** How long a blocked account or source is refused (ms). */
  authBackoffMs: number;
  /** Wrong responses with one nonce after which it is retired (the next use gets a new challenge). */
  nonceFailureLimit: number;
  /** Live nonces tracked per domain (their nc, never evicted while live); when full, 503 with Retry-After. */
  maxTrackedNonces: number;
  /** Body types taken (a CPIM message's inner type too); others → 415 with Accept. */
  acceptedTypes: string[];
  /** Take MESSAGEs from senders of domains we do not serve, unauthenticated. */
  acceptForeign: boolean;
  /**
   * Digest algorithms our users are challenged with, one WWW-Authenticate each, in this order
   * (RFC 8760 §2.3: the first is the one preferred). Clients that read only the first challenge
   * (SIPp 3.6 with -au/-ap, many deployed phones) need MD5 first: docs/server.md.
   */
  digestAlgorithms: AccountAlgorithm[];
  /** Redelivery backoff: first wait and cap, in ms (doubling in between). */
  deliveryRetryMs: [number, number];
  /** MESSAGEs in flight to one device at a time, sent in log order (1: each waits for the previous 2xx). */
  deliveryWindow: number;
  /** MESSAGEs in flight to the next hop per foreign recipient; above 1, a refusal can reorder (docs/federation.md). */
  relayWindow: number;

  // ---- federation (docs/federation.md) ----
  /** Neighbours we link to. */
  peers: PeerConfig[];
  /** The network's shared secret: for peers without their own, and for neighbours that link in unconfigured. */
  federationSecret?: string;
  /** `parley network`'s admin view needs this token (header Parley-Admin-Token) as well as a loopback source. */
  adminToken?: string;
  /** An OPTIONS to every linked neighbour this often. */
  pingIntervalMs: number;
  /** Unanswered pings in a row that take a link down. */
  pingMisses: number;
  /** A down or refused link is tried again after this, doubling to the cap (ms). */
  linkRetryMs: [number, number];
  /** Max-Forwards of a MESSAGE a local user sends, when theirs is higher. */
  maxForwards: number;
  /** Static routes: domain → neighbour name, used when nothing is learned for the domain. */
  routes: Record<string, string>;
  /** No route to a domain → RFC 3263 DNS for it (else 404). */
  dnsFallback: boolean;
  /** Our URI for neighbours; default from the first tcp, tls or udp listener. */
  advertise?: string;
  /**
   * `HOST[:PORT]` every listener puts in its Via sent-by and Contacts instead of its bound
   * address (a server bound to 0.0.0.0 behind NAT); default the bound address, or for a
   * wildcard bind the first interface address of its family — never the wildcard itself.
   */
  advertiseHost?: string;
  /** Multicast discovery (seed 002's HELLO), or false. */
  discovery: DiscoveryConfig | false;
}

/** A neighbour: its name (first domain), where it listens, and the link's secret. */
export interface PeerConfig {
  domain: string;
  uri: string;
  secret?: string;
}

export interface DiscoveryConfig {
  group: string;
  port: number;
  interface: string;
  intervalMs: number;
}

/** `--discover` without more: SIP's multicast group (RFC 3261 §10.2.6: "sip.mcast.net (224.0.1.75)"). */
export const DEFAULT_DISCOVERY: Readonly<DiscoveryConfig> = Object.freeze({ group: '224.0.1.75', port: 5060, interface: '127.0.0.1', intervalMs: 30_000 });

const defaults: ServerConfig = {
  domains: ['localhost'],
  listen: ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'],
  data: './parley-data',
  retentionDays: 30,
  maxMessageBytes: 65_536,
  maxStoredPerUser: 10_000,
  maxCommitBacklog: 20_000,
  maxConnections: 1024,
  maxConnectionsPerSource: 64,
  firstMessageTimeoutMs: 10_000,
  partialMessageTimeoutMs: 30_000,
  maxStoredPerSender: 1000,
  maxStoredBytesPerUser: 104_857_600,
  minFreeDiskBytes: 268_435_456,
  authFailureLimit: 5,
  authSourceFailureLimit: 20,
  authFailureWindowMs: 60_000,
  authBackoffMs: 60_000,
  nonceFailureLimit: 3,
  maxTrackedNonces: 100_000,
  acceptedTypes: ['text/*', 'message/cpim', 'message/imdn+xml', 'application/json'],
  acceptForeign: false,
  digestAlgorithms: ['SHA-512-256', 'SHA-256', 'MD5'],
  deliveryRetryMs: [1000, 300_000],
  deliveryWindow: 32,
  relayWindow: 1,
  peers: [],
  pingIntervalMs: 5000,
  pingMisses: 3,
  linkRetryMs: [1000, 60_000],
  maxForwards: 70,
  routes: {},
  dnsFallback: false,
  discovery: false,
};
export const DEFAULT_CONFIG: Readonly<ServerConfig> = Object.freeze(defaults);

const KEYS = new Set<string>(['domains', 'listen', 'data', 'tls', 'federationSecret', 'adminToken', 'advertise', 'advertiseHost', ...Object.keys(DEFAULT_CONFIG)]);
const DOMAIN = /^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/;

/** The defaults, then `base` (a config file's object), each field checked. */
export function resolveConfig(base: Partial<ServerConfig> = {}): ServerConfig {
  for (const key of Object.keys(base)) if (!KEYS.has(key)) throw new ConfigError('CONFIG_INVALID', `unknown configuration field "${key}"`);
  const config: ServerConfig = { ...DEFAULT_CONFIG, ...stripUndefined(base) } as ServerConfig;
  // The per-sender share follows a mailbox size given without one.
  if (base.maxStoredPerSender === undefined && typeof config.maxStoredPerUser === 'number') config.maxStoredPerSender = Math.max(1, Math.floor(config.maxStoredPerUser / 10));
  const list = (name: 'domains' | 'listen' | 'acceptedTypes'): void => {
    const value = config[name] as unknown;
    if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string' && v.length > 0))
      throw new ConfigError('CONFIG_INVALID', `"${name}" must be a non-empty list of strings`);
  };
  list('domains');
  list('listen');
  list('acceptedTypes');
  config.domains = config.domains.map((d) => d.toLowerCase());
  for (const domain of config.domains) if (!DOMAIN.test(domain)) throw new ConfigError('CONFIG_INVALID', `"${domain}" is not a domain name`);
  if (typeof config.data !== 'string' || config.data === '') throw new ConfigError('CONFIG_INVALID', '"data" must be a directory path');
  if (config.advertiseHost !== undefined) {
    try {
      if (typeof config.advertiseHost !== 'string') throw new Error('not a string');
      parseAdvertised(config.advertiseHost);
    } catch (error) {
      throw new ConfigError('CONFIG_INVALID', `"advertiseHost": ${(error as Error).message}`);
    }
  }
  const positive = (name: keyof ServerConfig, integer = true): void => {
    const value = config[name];
    if (typeof value !== 'number' || !(value > 0) || (integer && !Number.isInteger(value))) throw new ConfigError('CONFIG_INVALID', `"${name}" must be a positive ${integer ? 'integer' : 'number'}`);
  };
  positive('retentionDays', false);
  positive('maxMessageBytes');
  positive('maxStoredPerUser');
  positive('maxCommitBacklog');
  positive('maxConnections');
  for (const name of ['maxConnectionsPerSource', 'firstMessageTimeoutMs', 'partialMessageTimeoutMs'] as const) {
    const value = config[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new ConfigError('CONFIG_INVALID', `"${name}" must be a non-negative integer`);
  }
  positive('maxStoredPerSender');
  positive('maxStoredBytesPerUser');
  if (typeof config.minFreeDiskBytes !== 'number' || !Number.isInteger(config.minFreeDiskBytes) || config.minFreeDiskBytes < 0) throw new ConfigError('CONFIG_INVALID', '"minFreeDiskBytes" must be an integer >= 0');
  for (const name of ['authFailureLimit', 'authSourceFailureLimit', 'authFailureWindowMs', 'authBackoffMs', 'nonceFailureLimit', 'maxTrackedNonces'] as const) positive(name);
  positive('deliveryWindow');
  positive('relayWindow');
  if (typeof config.acceptForeign !== 'boolean') throw new ConfigError('CONFIG_INVALID', '"acceptForeign" must be true or false');
  config.digestAlgorithms = digestAlgorithms(config.digestAlgorithms as unknown);
  const retry = config.deliveryRetryMs as unknown;
  if (!Array.isArray(retry) || retry.length !== 2 || !retry.every((v) => typeof v === 'number' && v > 0) || retry[0] > retry[1])
    throw new ConfigError('CONFIG_INVALID', '"deliveryRetryMs" must be [first, cap] in ms with first <= cap');
  checkFederation(config);
  if (config.tls !== undefined && (typeof config.tls.cert !== 'string' || typeof config.tls.key !== 'string'))
    throw new ConfigError('CONFIG_INVALID', '"tls" must be { "cert": FILE, "key": FILE }');
  if (config.tls?.ca !== undefined && (!Array.isArray(config.tls.ca) || config.tls.ca.length === 0 || config.tls.ca.some((f) => typeof f !== 'string')))
    throw new ConfigError('CONFIG_INVALID', '"tls.ca" must be a list of PEM files');
  if (config.tls?.caOnly !== undefined && (typeof config.tls.caOnly !== 'boolean' || config.tls.ca === undefined))
    throw new ConfigError('CONFIG_INVALID', '"tls.caOnly" must be true or false, with "tls.ca"');
  return config;
}

/**
 * The algorithms as given (names case-insensitive, RFC 7616 §3.3), spelled as RFC 8760 does.
 * Only those an account keeps an HA1 for: a `-sess` variant or another hash would challenge
 * with something no account can answer.
 */
function digestAlgorithms(value: unknown): AccountAlgorithm[] {
  const why = `"digestAlgorithms" must be a non-empty list of distinct names among ${ACCOUNT_ALGORITHMS.join(', ')}`;
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError('CONFIG_INVALID', why);
  const names = value.map((name: unknown) => {
    const known = typeof name === 'string' ? ACCOUNT_ALGORITHMS.find((a) => a.toLowerCase() === name.trim().toLowerCase()) : undefined;
    if (known === undefined) throw new ConfigError('CONFIG_INVALID', `${why}, not ${JSON.stringify(name)}`);
    return known;
  });
  // RFC 8760 §2.3: each challenge for one realm must use a different algorithm.
  if (new Set(names).size !== names.length) throw new ConfigError('CONFIG_INVALID', `${why}: ${names.join(', ')} names one twice`);
  return names;
}

function checkFederation(config: ServerConfig): void {
  const invalid = (why: string): never => {
    throw new ConfigError('CONFIG_INVALID', why);
  };
  if (config.federationSecret !== undefined && (typeof config.federationSecret !== 'string' || config.federationSecret === '')) invalid('"federationSecret" must be a non-empty string');
  if (config.adminToken !== undefined && (typeof config.adminToken !== 'string' || config.adminToken === '')) invalid('"adminToken" must be a non-empty string');
  if (!Array.isArray(config.peers)) invalid('"peers" must be a list of { "domain", "uri", "secret" }');
  config.peers = config.peers.map((peer) => {
    if (typeof peer !== 'object' || peer === null || typeof peer.domain !== 'string' || typeof peer.uri !== 'string') invalid('each of "peers" must be { "domain": NAME, "uri": SIP-URI, "secret"?: S }');
    const domain = peer.domain.toLowerCase();
    if (!DOMAIN.test(domain)) invalid(`peer "${peer.domain}" is not a domain name`);
    if (config.domains.includes(domain)) invalid(`peer "${domain}" is one of our own domains`);
    if (!/^sips?:/i.test(peer.uri)) invalid(`peer ${domain}: "${peer.uri}" is not a sip: or sips: URI`);
    if (peer.secret !== undefined && (typeof peer.secret !== 'string' || peer.secret === '')) invalid(`peer ${domain}: "secret" must be a non-empty string`);
    if (peer.secret === undefined && config.federationSecret === undefined) invalid(`peer ${domain} has no secret: give it one, or set "federationSecret" (--secret)`);
    return { domain, uri: peer.uri, ...(peer.secret !== undefined ? { secret: peer.secret } : {}) };
  });
  const names = config.peers.map((p) => p.domain);
  if (new Set(names).size !== names.length) invalid('a peer is listed twice');
  const positive = (name: 'pingIntervalMs' | 'pingMisses' | 'maxForwards'): void => {
    const value = config[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) invalid(`"${name}" must be a positive integer`);
  };
  positive('pingIntervalMs');
  positive('pingMisses');
  positive('maxForwards');
  const retry = config.linkRetryMs as unknown;
  if (!Array.isArray(retry) || retry.length !== 2 || !retry.every((v) => typeof v === 'number' && v > 0) || retry[0] > retry[1])
    invalid('"linkRetryMs" must be [first, cap] in ms with first <= cap');
  if (typeof config.routes !== 'object' || config.routes === null || Array.isArray(config.routes)) invalid('"routes" must be an object of domain: neighbour');
  config.routes = Object.fromEntries(
    Object.entries(config.routes).map(([domain, via]) => {
      if (!DOMAIN.test(domain.toLowerCase()) || typeof via !== 'string' || !DOMAIN.test(via.toLowerCase())) invalid(`route "${domain}" → "${String(via)}" is not domain → neighbour`);
      return [domain.toLowerCase(), via.toLowerCase()];
    }),
  );
  if (typeof config.dnsFallback !== 'boolean') invalid('"dnsFallback" must be true or false');
  if (config.advertise !== undefined && (typeof config.advertise !== 'string' || !/^sips?:/i.test(config.advertise))) invalid('"advertise" must be a sip: URI');
  const discovery = config.discovery as unknown;
  if (discovery === true) config.discovery = { ...DEFAULT_DISCOVERY };
  else if (discovery !== false) {
    if (typeof discovery !== 'object' || discovery === null) invalid('"discovery" must be false, true or { group, port, interface, intervalMs }');
    const merged = { ...DEFAULT_DISCOVERY, ...(discovery as Partial<DiscoveryConfig>) };
    if (!/^2(2[4-9]|3\d)\./.test(merged.group)) invalid(`discovery group "${merged.group}" is not an IPv4 multicast address`);
    if (!Number.isInteger(merged.port) || merged.port <= 0 || merged.port > 65535) invalid('discovery "port" must be a UDP port');
    if (!Number.isInteger(merged.intervalMs) || merged.intervalMs <= 0) invalid('discovery "intervalMs" must be a positive integer');
    if (config.federationSecret === undefined) invalid('discovery needs "federationSecret" (--secret): discovered neighbours authenticate with it');
    config.discovery = merged;
  }
}

// The database file of a data directory; kept exported here, where it always was.
export { databasePath } from '../store/open-store.js';

/** Reads a JSON configuration file (an object of ServerConfig fields). */
export function readConfigFile(path: string): Partial<ServerConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError('CONFIG_INVALID', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError('CONFIG_INVALID', `${path} is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError('CONFIG_INVALID', `${path} must hold a JSON object`);
  return value as Partial<ServerConfig>;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
