import { parseUri, type SipUri } from '../message/uri.js';
import { SipParseError } from '../message/parse-error.js';
import { DnsError } from '../dns/dns-error.js';
import { SipResolver } from '../dns/sip-resolver.js';
import { parseNameserver, type Nameserver } from '../dns/system-files.js';
import { formatHostPort } from '../transport/address.js';

const USAGE = 'usage: parley resolve SIP-URI [--dns HOST:PORT]... [--prefer-ipv6]';

interface ResolveArgs {
  uri: SipUri;
  nameservers: Nameserver[] | undefined;
  preferIpv6: boolean;
}

function parseResolveArgs(args: string[]): ResolveArgs | string {
  const nameservers: Nameserver[] = [];
  let uriText: string | undefined;
  let preferIpv6 = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--dns') {
      const value = args[++i];
      if (value === undefined) return `--dns needs HOST:PORT\n${USAGE}`;
      try {
        nameservers.push(parseNameserver(value));
      } catch (error) {
        if (error instanceof DnsError) return `${error.message}\n${USAGE}`;
        throw error;
      }
    } else if (arg === '--prefer-ipv6') preferIpv6 = true;
    else if (arg.startsWith('-')) return `unknown argument "${arg}"\n${USAGE}`;
    else if (uriText !== undefined) return `one SIP-URI at a time\n${USAGE}`;
    else uriText = arg;
  }
  if (uriText === undefined) return USAGE;
  let uri: SipUri;
  try {
    uri = parseUri(uriText);
  } catch (error) {
    if (error instanceof SipParseError) return `not a SIP URI: ${JSON.stringify(uriText)} (${error.message})\n${USAGE}`;
    throw error;
  }
  if (!uri.isSip) return `RFC 3263 resolves sip: and sips: URIs, not ${uri.scheme}:\n${USAGE}`;
  return { uri, nameservers: nameservers.length ? nameservers : undefined, preferIpv6 };
}

/**
 * `parley resolve SIP-URI [--dns HOST:PORT]`: the RFC 3263 targets for a request to the URI, one
 * `PROTO HOST:PORT` line each, in the order the stack would try them. Exit 0 with targets, 1 with
 * none, 2 for bad arguments.
 */
export async function resolveCommand(args: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const parsed = parseResolveArgs(args);
  if (typeof parsed === 'string') {
    err(`parley: ${parsed}`);
    return 2;
  }
  const resolver = new SipResolver({
    ...(parsed.nameservers && { nameservers: parsed.nameservers }),
    // A person asking sees every transport Parley speaks.
    transports: ['udp', 'tcp', 'tls', 'ws', 'wss'],
    preferIpv6: parsed.preferIpv6,
  });
  try {
    const list = resolver.resolve(parsed.uri);
    const targets = await list.all();
    for (const t of targets) out(`${t.transport} ${formatHostPort(t.address, t.port)}`);
    if (targets.length > 0) return 0;
    const why = list.error ? `${list.error.code}: ${list.error.message}` : 'DNS_NO_TARGETS';
    err(`parley: no targets for ${parsed.uri.toString()} (${why})`);
    return 1;
  } finally {
    resolver.close();
  }
}
