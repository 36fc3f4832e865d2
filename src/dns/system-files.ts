import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { DnsError } from './dns-error.js';

/** A DNS server to ask. */
export interface Nameserver {
  readonly address: string;
  readonly port: number;
}

/** What resolv.conf(5) says: nameservers in order, and the `options timeout:N attempts:N`. */
export interface ResolvConf {
  readonly nameservers: Nameserver[];
  readonly timeoutMs?: number;
  readonly attempts?: number;
}

/**
 * Reads resolv.conf(5): `nameserver ADDRESS` lines (port 53; resolv.conf has no port syntax) and
 * `options timeout:N attempts:N`. A missing or unreadable file gives no nameservers.
 */
export function readResolvConf(path: string): ResolvConf {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { nameservers: [] };
  }
  const nameservers: Nameserver[] = [];
  let timeoutMs: number | undefined;
  let attempts: number | undefined;
  for (const raw of text.split('\n')) {
    const words = raw.replace(/[#;].*$/, '').trim().split(/\s+/);
    if (words[0] === 'nameserver' && words[1]) {
      // A scoped IPv6 address (fe80::1%eth0) keeps its zone for the socket.
      const address = words[1];
      if (isIP(address.replace(/%.*$/, ''))) nameservers.push({ address, port: 53 });
    } else if (words[0] === 'options') {
      for (const option of words.slice(1)) {
        const [name, value] = option.split(':');
        const n = Number(value);
        if (name === 'timeout' && n > 0) timeoutMs = Math.min(n, 30) * 1000;
        if (name === 'attempts' && n > 0) attempts = Math.min(n, 5);
      }
    }
  }
  return { nameservers, ...(timeoutMs !== undefined && { timeoutMs }), ...(attempts !== undefined && { attempts }) };
}

/** Host names to addresses, from hosts(5). */
export type HostsTable = ReadonlyMap<string, { readonly v4: readonly string[]; readonly v6: readonly string[] }>;

/**
 * Reads hosts(5): `ADDRESS NAME [ALIAS...]` per line, `#` comments. Names are case-insensitive
 * (kept lower case). A missing or unreadable file gives an empty table.
 */
export function readHostsFile(path: string): HostsTable {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return new Map();
  }
  const table = new Map<string, { v4: string[]; v6: string[] }>();
  for (const raw of text.split('\n')) {
    const [address, ...names] = raw.replace(/#.*$/, '').trim().split(/\s+/);
    if (!address || names.length === 0) continue;
    const family = isIP(address);
    if (family === 0) continue;
    for (const name of names) {
      const key = name.toLowerCase().replace(/\.$/, '');
      let entry = table.get(key);
      if (!entry) table.set(key, (entry = { v4: [], v6: [] }));
      const list = family === 4 ? entry.v4 : entry.v6;
      if (!list.includes(address)) list.push(address);
    }
  }
  return table;
}

/** "HOST:PORT", "[V6]:PORT", or a bare address (port 53). */
export function parseNameserver(text: string): Nameserver {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) return checked(bracketed[1]!, bracketed[2], text);
  if (isIP(text) === 6) return { address: text, port: 53 };
  const [address = '', port] = text.split(':');
  return checked(address, port, text);
}

function checked(address: string, port: string | undefined, text: string): Nameserver {
  const n = port === undefined ? 53 : Number(port);
  if (isIP(address) === 0 || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new DnsError('DNS_BAD_NAMESERVER', `not a nameserver address (HOST:PORT with a numeric host): ${JSON.stringify(text)}`);
  }
  return { address, port: n };
}
