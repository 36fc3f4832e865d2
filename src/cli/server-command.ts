import { ConfigError, readConfigFile, resolveConfig, type ServerConfig } from '../app/server/server-config.js';
import { ParleyServer } from '../app/server/parley-server.js';
import { displayAor } from '../app/store/aor.js';
import { formatTuple } from '../transport/address.js';
import { parseArguments, positiveInteger } from './arguments.js';

const USAGE =
  'usage: parley server [--config FILE] [--domain D]... [--listen PROTO:HOST:PORT]... [--data DIR]\n' +
  '                     [--retention-days N] [--max-message-bytes N] [--accept-foreign] [--cert FILE --key FILE]';

/** The configuration from the file (if any), then the flags over it (docs/server.md). */
export function serverConfigFromArgs(args: string[]): ServerConfig | string {
  const parsed = parseArguments(args, {
    config: 'string',
    domain: 'list',
    listen: 'list',
    data: 'string',
    'retention-days': 'string',
    'max-message-bytes': 'string',
    'accept-foreign': 'boolean',
    cert: 'string',
    key: 'string',
  });
  if (typeof parsed === 'string') return `${parsed}\n${USAGE}`;
  if (parsed.positional.length > 0) return `unexpected argument "${parsed.positional[0]!}"\n${USAGE}`;
  try {
    const config: Partial<ServerConfig> = parsed.strings.has('config') ? readConfigFile(parsed.strings.get('config')!) : {};
    if (parsed.lists.has('domain')) config.domains = parsed.lists.get('domain')!;
    if (parsed.lists.has('listen')) config.listen = parsed.lists.get('listen')!;
    if (parsed.strings.has('data')) config.data = parsed.strings.get('data')!;
    if (parsed.booleans.has('accept-foreign')) config.acceptForeign = true;
    const retention = parsed.strings.get('retention-days');
    if (retention !== undefined) config.retentionDays = Number(retention);
    const maxBytes = positiveInteger(parsed.strings.get('max-message-bytes'), 'max-message-bytes');
    if (typeof maxBytes === 'string') return maxBytes;
    if (maxBytes !== undefined) config.maxMessageBytes = maxBytes;
    const cert = parsed.strings.get('cert');
    const key = parsed.strings.get('key');
    if ((cert === undefined) !== (key === undefined)) return `--cert and --key go together\n${USAGE}`;
    if (cert !== undefined && key !== undefined) config.tls = { cert, key };
    return resolveConfig(config);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
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
