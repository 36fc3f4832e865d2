import { isIP } from 'node:net';
import { TransportError } from './transport-error.js';
import type { TransportProtocol, Tuple } from './types.js';

const PROTOCOLS: readonly TransportProtocol[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];

/** Default ports (RFC 3261 §19.1.2; RFC 7118 uses the HTTP ports). */
export function defaultPort(protocol: TransportProtocol): number {
  switch (protocol) {
    case 'tls':
      return 5061;
    case 'ws':
      return 80;
    case 'wss':
      return 443;
    default:
      return 5060;
  }
}

/** `PROTO:HOST:PORT` as ARCHITECTURE.md writes listen addresses: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`. */
export function parseListenAddress(text: string): Tuple {
  const m = /^(udp|tcp|tls|ws|wss):(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new TransportError('TRANSPORT_BAD_ADDRESS', `not a listen address (PROTO:HOST:PORT): ${JSON.stringify(text)}`);
  const protocol = m[1] as TransportProtocol;
  const address = m[2]!.startsWith('[') ? m[2]!.slice(1, -1) : m[2]!;
  const port = m[3] === undefined ? defaultPort(protocol) : Number(m[3]);
  if (port > 65535) throw new TransportError('TRANSPORT_BAD_ADDRESS', `port out of range in ${text}`);
  if (m[2]!.startsWith('[') && isIP(address) !== 6) throw new TransportError('TRANSPORT_BAD_ADDRESS', `bad IPv6 address in ${text}`);
  return { protocol, address, port };
}

export function formatTuple(tuple: Tuple): string {
  return `${tuple.protocol}:${formatHostPort(tuple.address, tuple.port)}`;
}

/** `host:port`, IPv6 in brackets. */
export function formatHostPort(address: string, port: number): string {
  return `${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
}

/** The key connections are found by: (protocol, address, port). */
export function tupleKey(tuple: Tuple): string {
  return `${tuple.protocol}|${tuple.address}|${tuple.port}`;
}

export function isProtocol(text: string): text is TransportProtocol {
  return (PROTOCOLS as readonly string[]).includes(text);
}

/** 4 or 6, by the address's family (host names count as 4). */
export function family(address: string): 4 | 6 {
  return isIP(address) === 6 ? 6 : 4;
}
