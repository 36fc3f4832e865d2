import { NETWORK_TYPE } from '../app/federation/documents.js';
import type { NetworkView } from '../app/federation/federation.js';
import { SipStack } from '../stack.js';
import { DialogUsageManager } from '../tu/dum/dialog-usage-manager.js';
import { parseArguments } from './arguments.js';

const USAGE = 'usage: parley network [--server SIP-URI] [--token T] [--json]';
const DEFAULT_SERVER = 'sip:127.0.0.1:5060;transport=tcp';
/** A server that does not answer within this is reported as not answering. */
const ANSWER_WITHIN_MS = 5000;

/**
 * `parley network`: a server's neighbours and routes (docs/federation.md "The admin view"),
 * asked for with an OPTIONS that accepts the view's type.
 */
export async function networkCommand(args: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const parsed = parseArguments(args, { server: 'string', token: 'string', json: 'boolean' });
  if (typeof parsed === 'string' || parsed.positional.length > 0) {
    err(`${typeof parsed === 'string' ? parsed : `unexpected argument "${parsed.positional[0]!}"`}\n${USAGE}`);
    return 2;
  }
  const server = parsed.strings.get('server') ?? DEFAULT_SERVER;
  // The server's adminToken (docs/federation.md "The admin view"), when it has one.
  const token = parsed.strings.get('token') ?? process.env.PARLEY_ADMIN_TOKEN;
  // The view is given to this machine only, so we speak from loopback.
  const stack = new SipStack({ transports: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'] });
  await stack.start();
  const dum = new DialogUsageManager(stack, { aor: 'sip:admin@127.0.0.1' });
  try {
    let timer: NodeJS.Timeout | undefined;
    const response = await Promise.race([
      dum.request('OPTIONS', { to: server, headers: { Accept: NETWORK_TYPE, ...(token ? { 'Parley-Admin-Token': token } : {}) } }),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ANSWER_WITHIN_MS))),
    ]).finally(() => clearTimeout(timer));
    if (!response) {
      err(`parley network: ${server} did not answer within ${ANSWER_WITHIN_MS / 1000} s`);
      return 1;
    }
    const status = response.status ?? 500;
    if (status >= 300) {
      err(`parley network: ${server}: ${status} ${response.reason ?? ''}`.trimEnd());
      return 1;
    }
    if (!(response.contentType ?? '').toLowerCase().startsWith(NETWORK_TYPE)) {
      err(`parley network: ${server} answered without a network view (not a Parley server, or not asked from this machine)`);
      return 1;
    }
    const text = response.body.toString('utf8');
    if (parsed.booleans.has('json')) {
      out(text);
      return 0;
    }
    for (const line of formatView(JSON.parse(text) as NetworkView)) out(line);
    return 0;
  } finally {
    await dum.close();
    await stack.stop();
  }
}

/** The table of docs/federation.md. */
export function formatView(view: NetworkView): string[] {
  const lines = [`server ${view.server} (${view.domains.join(', ')})`, 'neighbours'];
  if (view.neighbours.length === 0) lines.push('  none');
  const nameWidth = Math.max(0, ...view.neighbours.map((n) => n.name.length), ...view.routes.map((r) => r.domain.length));
  for (const n of view.neighbours) {
    const since = new Date(n.since).toTimeString().slice(0, 8);
    lines.push(`  ${n.name.padEnd(nameWidth)}  ${n.state.padEnd(10)}  ${n.uri}  since ${since}${n.origin === 'config' ? '' : ` (${n.origin})`}`);
  }
  lines.push('routes');
  for (const r of view.routes) {
    if (r.nextHop === null) {
      lines.push(`  ${r.domain.padEnd(nameWidth)}  local`);
      continue;
    }
    const hops = `${r.path.length} hop${r.path.length === 1 ? '' : 's'}`;
    lines.push(`  ${r.domain.padEnd(nameWidth)}  via ${r.nextHop}  ${r.static ? 'static' : `${hops}  ${r.path.join(' > ')}`}`);
  }
  lines.push(`relaying ${view.relaying}`);
  return lines;
}
