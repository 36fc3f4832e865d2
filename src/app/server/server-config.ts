import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParleyError } from '../../util/errors.js';

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
  /** PEM files for `tls:` listeners. */
  tls?: { cert: string; key: string };
  /** A message is dropped this many days after it was stored, acknowledged or not. */
  retentionDays: number;
  /** A larger MESSAGE body is refused with 413. */
  maxMessageBytes: number;
  /** Messages kept for one user (delivered ones are deleted every minute); more → 480 with Retry-After. */
  maxStoredPerUser: number;
  /** Messages waiting for the disk; more → 503 with Retry-After. */
  maxCommitBacklog: number;
  /** Body types taken (a CPIM message's inner type too); others → 415 with Accept. */
  acceptedTypes: string[];
  /** Take MESSAGEs from senders of domains we do not serve, unauthenticated. */
  acceptForeign: boolean;
  /** Redelivery backoff: first wait and cap, in ms (doubling in between). */
  deliveryRetryMs: [number, number];
  /** MESSAGEs in flight to one device at a time, sent in log order (1: each waits for the previous 2xx). */
  deliveryWindow: number;
}

const defaults: ServerConfig = {
  domains: ['localhost'],
  listen: ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'],
  data: './parley-data',
  retentionDays: 30,
  maxMessageBytes: 65_536,
  maxStoredPerUser: 10_000,
  maxCommitBacklog: 20_000,
  acceptedTypes: ['text/*', 'message/cpim', 'message/imdn+xml', 'application/json'],
  acceptForeign: false,
  deliveryRetryMs: [1000, 300_000],
  deliveryWindow: 32,
};
export const DEFAULT_CONFIG: Readonly<ServerConfig> = Object.freeze(defaults);

const KEYS = new Set<string>(['domains', 'listen', 'data', 'tls', ...Object.keys(DEFAULT_CONFIG)]);

/** The defaults, then `base` (a config file's object), each field checked. */
export function resolveConfig(base: Partial<ServerConfig> = {}): ServerConfig {
  for (const key of Object.keys(base)) if (!KEYS.has(key)) throw new ConfigError('CONFIG_INVALID', `unknown configuration field "${key}"`);
  const config: ServerConfig = { ...DEFAULT_CONFIG, ...stripUndefined(base) } as ServerConfig;
  const list = (name: 'domains' | 'listen' | 'acceptedTypes'): void => {
    const value = config[name] as unknown;
    if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string' && v.length > 0))
      throw new ConfigError('CONFIG_INVALID', `"${name}" must be a non-empty list of strings`);
  };
  list('domains');
  list('listen');
  list('acceptedTypes');
  config.domains = config.domains.map((d) => d.toLowerCase());
  for (const domain of config.domains) if (!/^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/.test(domain)) throw new ConfigError('CONFIG_INVALID', `"${domain}" is not a domain name`);
  if (typeof config.data !== 'string' || config.data === '') throw new ConfigError('CONFIG_INVALID', '"data" must be a directory path');
  const positive = (name: keyof ServerConfig, integer = true): void => {
    const value = config[name];
    if (typeof value !== 'number' || !(value > 0) || (integer && !Number.isInteger(value))) throw new ConfigError('CONFIG_INVALID', `"${name}" must be a positive ${integer ? 'integer' : 'number'}`);
  };
  positive('retentionDays', false);
  positive('maxMessageBytes');
  positive('maxStoredPerUser');
  positive('maxCommitBacklog');
  positive('deliveryWindow');
  if (typeof config.acceptForeign !== 'boolean') throw new ConfigError('CONFIG_INVALID', '"acceptForeign" must be true or false');
  const retry = config.deliveryRetryMs as unknown;
  if (!Array.isArray(retry) || retry.length !== 2 || !retry.every((v) => typeof v === 'number' && v > 0) || retry[0] > retry[1])
    throw new ConfigError('CONFIG_INVALID', '"deliveryRetryMs" must be [first, cap] in ms with first <= cap');
  if (config.tls !== undefined && (typeof config.tls.cert !== 'string' || typeof config.tls.key !== 'string'))
    throw new ConfigError('CONFIG_INVALID', '"tls" must be { "cert": FILE, "key": FILE }');
  return config;
}

/** The database file inside a data directory (the server and `parley user` open the same one). */
export function databasePath(data: string): string {
  return join(data, 'parley.db');
}

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
