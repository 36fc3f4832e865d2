import { ParleyError } from '../../util/errors.js';
import type { Advertised } from './route-table.js';

/** The event package of a link (RFC 6665 §7.2: a package name; docs/federation.md). */
export const ROUTES_EVENT = 'parley-routes';
export const ROUTES_TYPE = 'application/parley-routes+json';
export const HELLO_TYPE = 'application/parley-hello+json';
export const NETWORK_TYPE = 'application/parley-network+json';

/** Headers of a relayed MESSAGE (docs/federation.md "Hop-by-hop store-and-forward"). */
export const PATH_HEADER = 'Parley-Path';
export const MESSAGE_ID_HEADER = 'Parley-Message-ID';

/** Who a server is: its name, this run's boot id, and the URI neighbours reach it at. */
export interface Hello {
  server: string;
  boot: string;
  uri: string;
}

/** A NOTIFY body of the `parley-routes` package. */
export interface RoutesDocument extends Hello {
  version: number;
  full: boolean;
  routes: Advertised[];
}

/** A federation document that does not parse. Code: `FEDERATION_BAD_DOCUMENT`. */
export class DocumentError extends ParleyError {}

/** Bodies are small; a larger one is not ours. */
const MAX_DOCUMENT_BYTES = 1_048_576;
const NAME = /^[a-z0-9.-]{1,253}$|^\[[0-9a-f:.]+\]$/;

export function formatRoutes(document: RoutesDocument): string {
  const routes = document.routes.filter((r) => r.path !== undefined).map((r) => ({ domain: r.domain, path: r.path }));
  const withdrawn = document.routes.filter((r) => r.path === undefined).map((r) => r.domain);
  return JSON.stringify({ server: document.server, boot: document.boot, uri: document.uri, version: document.version, full: document.full, routes, withdrawn });
}

/** Reads a NOTIFY body; throws DocumentError when any field is missing or of the wrong kind. */
export function parseRoutes(body: Uint8Array): RoutesDocument {
  const value = parseObject(body);
  const hello = helloFields(value);
  const { version, full, routes, withdrawn } = value;
  if (!Number.isInteger(version) || (version as number) < 1) throw bad('"version" must be a positive integer');
  if (typeof full !== 'boolean') throw bad('"full" must be true or false');
  if (!Array.isArray(routes) || !Array.isArray(withdrawn)) throw bad('"routes" and "withdrawn" must be lists');
  const out: Advertised[] = [];
  for (const route of routes as unknown[]) {
    const r = route as { domain?: unknown; path?: unknown };
    if (typeof route !== 'object' || route === null || !isName(r.domain) || !Array.isArray(r.path) || r.path.length === 0 || !r.path.every(isName))
      throw bad('each route must be { "domain": NAME, "path": [NAME, …] }');
    out.push({ domain: r.domain, path: r.path as string[] });
  }
  for (const domain of withdrawn as unknown[]) {
    if (!isName(domain)) throw bad('"withdrawn" must list domain names');
    out.push({ domain, path: undefined });
  }
  return { ...hello, version: version as number, full, routes: out };
}

/** `Parley-Path`: every server that stored the message, first to last. */
export function formatPath(servers: readonly string[]): string {
  return servers.join(', ');
}

/** `Parley-Path: a.example, b.example` → the servers, lower-cased; absent → none. */
export function parsePath(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
}

/** A neighbour's `Parley-Message-ID`, when it is one we can key on (a token, at most 256 characters). */
export function parseRelayedMessageId(header: string | undefined): string | undefined {
  const id = header?.trim();
  return id !== undefined && id.length > 0 && id.length <= 256 && !/\s/.test(id) ? id : undefined;
}

export function formatHello(hello: Hello): string {
  return JSON.stringify({ server: hello.server, boot: hello.boot, uri: hello.uri });
}

export function parseHello(body: Uint8Array | string): Hello {
  return helloFields(parseObject(typeof body === 'string' ? Buffer.from(body) : body));
}

function helloFields(value: Record<string, unknown>): Hello {
  const { server, boot, uri } = value;
  if (!isName(server)) throw bad('"server" must be a domain name');
  if (typeof boot !== 'string' || boot.length === 0 || boot.length > 100) throw bad('"boot" must be a short string');
  if (typeof uri !== 'string' || !/^sips?:[^\s<>"]+$/i.test(uri)) throw bad('"uri" must be a sip: URI');
  return { server, boot, uri };
}

function parseObject(body: Uint8Array): Record<string, unknown> {
  if (body.length > MAX_DOCUMENT_BYTES) throw bad(`over ${MAX_DOCUMENT_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (cause) {
    throw new DocumentError('FEDERATION_BAD_DOCUMENT', `not JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('not a JSON object');
  return value as Record<string, unknown>;
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value);
}

function bad(why: string): DocumentError {
  return new DocumentError('FEDERATION_BAD_DOCUMENT', why);
}
