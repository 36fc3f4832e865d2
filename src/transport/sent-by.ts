import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { defaultPort, family } from './address.js';
import { TransportError } from './transport-error.js';
import type { Transport } from './types.js';

/** What a transport puts in a Via's sent-by and a Contact it fills (RFC 3261 §18.1.1, §8.1.1.8). */
export interface SentBy {
  /** A host name or an address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

/** `HOST` or `HOST:PORT` (IPv6 in brackets when a port follows) as `--advertise-host` takes it. */
export function parseAdvertised(text: string): { host: string; port: number | undefined } {
  const value = text.trim();
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(value);
  const plain = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(value);
  const m = bracketed ?? plain ?? (isIP(value) === 6 ? [value, value, undefined] : undefined);
  if (!m) throw new TransportError('TRANSPORT_BAD_ADDRESS', `not an advertised HOST[:PORT]: ${JSON.stringify(text)}`);
  const host = m[1]!;
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new TransportError('TRANSPORT_BAD_ADDRESS', `port out of range in ${text}`);
  if (isUnspecified(host)) throw new TransportError('TRANSPORT_BAD_ADDRESS', `${host} cannot be advertised: it is the wildcard, no one can reach it`);
  return { host, port };
}

/** 0.0.0.0 and :: — the addresses a socket binds to mean "every interface", never a destination. */
export function isUnspecified(address: string): boolean {
  return isIP(address) === 6 ? /^[0:]+$/.test(address) : address === '0.0.0.0';
}

/**
 * The sent-by of a transport: what it was told to advertise; else its bound address — except
 * that a wildcard bind (0.0.0.0, ::) is never advertised (nobody can send to it): the first
 * non-internal interface address of the same family stands in for it, or loopback when the
 * machine has none.
 */
export function sentByOf(transport: Transport, advertised: { host: string; port: number | undefined } | undefined): SentBy {
  const local = transport.local;
  const port = advertised?.port ?? local.port ?? defaultPort(transport.protocol);
  if (advertised) return { host: advertised.host, port };
  if (!isUnspecified(local.address)) return { host: local.address, port };
  return { host: interfaceAddress(family(local.address) === 6 ? 6 : 4), port };
}

function interfaceAddress(wanted: 4 | 6): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      const isFamily = wanted === 4 ? a.family === 'IPv4' : a.family === 'IPv6';
      // Link-local IPv6 needs a zone to be reachable; it is no sent-by.
      if (isFamily && !a.internal && !(wanted === 6 && a.address.toLowerCase().startsWith('fe80'))) return a.address;
    }
  }
  return wanted === 4 ? '127.0.0.1' : '::1';
}
