import { ConfigError, DEFAULT_DISCOVERY, readConfigFile, resolveConfig, type DiscoveryConfig, type ServerConfig } from '../app/server/server-config.js';
import { ParleyServer } from '../app/server/parley-server.js';
import { displayAor } from '../app/store/aor.js';
import { formatTuple } from '../transport/address.js';
import { parseArguments, positiveInteger, type ParsedArguments } from './arguments.js';

const USAGE =
  'usage: parley server [--config FILE] [--domain D]... [--listen PROTO:HOST:PORT]... [--advertise-host HOST[:PORT]] [--data DIR]\n' +
  '                     [--retention-days N] [--max-message-bytes N] [--accept-foreign] [--cert FILE --key FILE [--ca FILE]... [--ca-only]]\n' +
  '                     [--digest-algorithms ALG[,ALG]...]   (MD5, SHA-256, SHA-512-256; offered in that order)\n' +
  '                     [--peer DOMAIN=URI]... [--secret S] [--ping-interval MS] [--ping-misses N] [--route DOMAIN=PEER]...\n' +
  '                     [--dns-fallback] [--advertise URI] [--discover] [--discover-group ADDR:PORT] [--discover-interface IP]';

/** The configuration from the file (if any), then the flags over it (docs/server.md). */
export function serverConfigFromArgs(args: string[]): ServerConfig | string {
  const parsed = parseArguments(args, {
    config: 'string',
    domain: 'list',
    listen: 'list',
    'advertise-host': 'string',
    data: 'string',
    'retention-days': 'string',
    'max-message-bytes': 'string',
    'accept-foreign': 'boolean',
    'digest-algorithms': 'string',
    cert: 'string',
    key: 'string',
    ca: 'list',
    'ca-only': 'boolean',
    peer: 'list',
    secret: 'string',
    'admin-token': 'string',
    'ping-interval': 'string',
    'ping-misses': 'string',
    route: 'list',
    'dns-fallback': 'boolean',
    advertise: 'string',
    discover: 'boolean',
    'discover-group': 'string',
    'discover-interface': 'string',
  });
  if (typeof parsed === 'string') return `${parsed}\n${USAGE}`;
  if (parsed.positional.length > 0) return `unexpected argument "${parsed.positional[0]!}"\n${USAGE}`;
  try {
    const config: Partial<ServerConfig> = parsed.strings.has('config') ? readConfigFile(parsed.strings.get('config')!) : {};
    if (parsed.lists.has('domain')) config.domains = parsed.lists.get('domain')!;
    if (parsed.lists.has('listen')) config.listen = parsed.lists.get('listen')!;
    if (parsed.strings.has('advertise-host')) config.advertiseHost = parsed.strings.get('advertise-host')!;
    if (parsed.strings.has('data')) config.data = parsed.strings.get('data')!;
    if (parsed.booleans.has('accept-foreign')) config.acceptForeign = true;
    // `SHA-256,MD5`: challenged in that order (resolveConfig checks the names).
    const algorithms = parsed.strings.get('digest-algorithms');
    if (algorithms !== undefined) config.digestAlgorithms = algorithms.split(',') as ServerConfig['digestAlgorithms'];
    const retention = parsed.strings.get('retention-days');
    if (retention !== undefined) config.retentionDays = Number(retention);
    const maxBytes = positiveInteger(parsed.strings.get('max-message-bytes'), 'max-message-bytes');
    if (typeof maxBytes === 'string') return maxBytes;
    if (maxBytes !== undefined) config.maxMessageBytes = maxBytes;
    const cert = parsed.strings.get('cert');
    const key = parsed.strings.get('key');
    if ((cert === undefined) !== (key === undefined)) return `--cert and --key go together\n${USAGE}`;
    if (cert !== undefined && key !== undefined) config.tls = { ...config.tls, cert, key };
    const ca = parsed.lists.get('ca');
    if ((ca !== undefined || parsed.booleans.has('ca-only')) && config.tls === undefined) return `--ca and --ca-only need --cert and --key (a tls: listener)\n${USAGE}`;
    if (parsed.booleans.has('ca-only') && ca === undefined && config.tls?.ca === undefined) return `--ca-only needs --ca FILE\n${USAGE}`;
    if (ca !== undefined) config.tls = { ...config.tls!, ca };
    if (parsed.booleans.has('ca-only')) config.tls = { ...config.tls!, caOnly: true };
    const federation = federationFlags(parsed, config);
    if (federation !== undefined) return `${federation}\n${USAGE}`;
    return resolveConfig(config);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
}

/** docs/federation.md "Configuration": the flags over the file's fields; a message when one is wrong. */
function federationFlags(parsed: ParsedArguments, config: Partial<ServerConfig>): string | undefined {
  const pairs = (name: string): Array<[string, string]> | string => {
    const out: Array<[string, string]> = [];
    for (const value of parsed.lists.get(name) ?? []) {
      const eq = value.indexOf('=');
      if (eq <= 0 || eq === value.length - 1) return `--${name} takes DOMAIN=${name === 'peer' ? 'URI' : 'PEER'}, not "${value}"`;
      out.push([value.slice(0, eq), value.slice(eq + 1)]);
    }
    return out;
  };
  const peers = pairs('peer');
  if (typeof peers === 'string') return peers;
  if (peers.length > 0) config.peers = [...(config.peers ?? []), ...peers.map(([domain, uri]) => ({ domain, uri }))];
  const routes = pairs('route');
  if (typeof routes === 'string') return routes;
  if (routes.length > 0) config.routes = { ...(config.routes ?? {}), ...Object.fromEntries(routes) };
  const secret = parsed.strings.get('secret') ?? process.env.PARLEY_FEDERATION_SECRET;
  if (secret !== undefined && secret !== '') config.federationSecret = secret;
  const adminToken = parsed.strings.get('admin-token') ?? process.env.PARLEY_ADMIN_TOKEN;
  if (adminToken !== undefined && adminToken !== '') config.adminToken = adminToken;
  for (const [flag, field] of [['ping-interval', 'pingIntervalMs'], ['ping-misses', 'pingMisses']] as const) {
    const value = positiveInteger(parsed.strings.get(flag), flag);
    if (typeof value === 'string') return value;
    if (value !== undefined) config[field] = value;
  }
  if (parsed.booleans.has('dns-fallback')) config.dnsFallback = true;
  if (parsed.strings.has('advertise')) config.advertise = parsed.strings.get('advertise')!;
  const group = parsed.strings.get('discover-group');
  const iface = parsed.strings.get('discover-interface');
  if (parsed.booleans.has('discover') || group !== undefined || iface !== undefined) {
    const discovery: Partial<DiscoveryConfig> = typeof config.discovery === 'object' ? { ...config.discovery } : {};
    if (group !== undefined) {
      const match = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(group);
      if (!match) return `--discover-group takes ADDR:PORT, not "${group}"`;
      discovery.group = match[1]!;
      discovery.port = Number(match[2]);
    }
    if (iface !== undefined) discovery.interface = iface;
    config.discovery = { ...DEFAULT_DISCOVERY, ...discovery };
  }
  return undefined;
}

/** `parley server`: runs until SIGINT/SIGTERM, then stops gracefully. */
export async function serverCommand(args: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const config = serverConfigFromArgs(args);
  if (typeof config === 'string') {
    err(config);
    return 2;
  }
  const stamp = (): string => new Date().toISOString();
  let server: ParleyServer;
  try {
    server = await ParleyServer.start(config, {
      logger: {
        info: (message) => err(`${stamp()} ${message}`),
        warn: (message) => err(`${stamp()} warning: ${message}`),
        error: (message) => err(`${stamp()} error: ${message}`),
      },
    });
  } catch (error) {
    err(`parley server: cannot start: ${(error as Error).message}`);
    return 1;
  }
  server.on('stored', (message) => err(`${stamp()} stored #${message.id} from ${displayAor(message.sender)} for ${displayAor(message.recipient)}`));
  server.on('delivered', (message, device) => err(`${stamp()} delivered #${message.id} to ${displayAor(message.recipient)} (${device})`));
  for (const transport of server.transports) out(`listening ${formatTuple(transport.local)}`);
  out(`domains: ${config.domains.join(', ')}`);
  if (server.federated) out(`network: ${server.federation.name} at ${server.federation.uri}${config.peers.length > 0 ? `, peers ${config.peers.map((p) => p.domain).join(', ')}` : ''}${config.discovery ? `, discovery on ${config.discovery.group}:${config.discovery.port}` : ''}`);
  out(`data: ${config.data}`);
  if (server.store.accounts().length === 0) {
    const data = config.data === './parley-data' ? '' : ` --data ${config.data}`;
    out(`no users yet: add one with "parley user add alice@${config.domains[0]!}${data}"`);
  }
  out('ready');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  err(`${stamp()} stopping`);
  await server.stop();
  return 0;
}
