import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ClientError, ParleyClient, type ChatMessage, type ClientOptions } from '../app/client/parley-client.js';
import { parseArguments, positiveInteger, type FlagKind } from './arguments.js';
import { readPassword } from './password.js';

type Print = (line: string) => void;

const DEFAULT_SERVER = 'sip:127.0.0.1:5060;transport=tcp';
const CLIENT_FLAGS: Record<string, FlagKind> = { server: 'string', user: 'string', password: 'string', state: 'string', ca: 'list', 'ca-only': 'boolean' };
const CLIENT_USAGE = '--user USER@DOMAIN [--server SIP-URI] [--password P] [--state DIR] [--ca FILE]... [--ca-only]';

/** The flags every client command shares, checked; the password asked for when not given. */
async function clientOptions(
  command: string,
  args: string[],
  extra: Record<string, FlagKind>,
  err: Print,
): Promise<{ options: ClientOptions; parsed: Exclude<ReturnType<typeof parseArguments>, string> } | number> {
  const usage = `usage: parley ${command} ${CLIENT_USAGE}${command === 'send' ? ' --to USER@DOMAIN --text TEXT [--wait-delivery SECONDS]' : command === 'listen' ? ' [--json]' : ''}`;
  const parsed = parseArguments(args, { ...CLIENT_FLAGS, ...extra });
  if (typeof parsed === 'string' || parsed.positional.length > 0 || !parsed.strings.has('user')) {
    err(typeof parsed === 'string' ? `${parsed}\n${usage}` : usage);
    return 2;
  }
  const caFiles = parsed.lists.get('ca') ?? [];
  if (parsed.booleans.has('ca-only') && caFiles.length === 0) {
    err(`parley ${command}: --ca-only needs --ca FILE\n${usage}`);
    return 2;
  }
  const ca: Buffer[] = [];
  for (const file of caFiles) {
    try {
      ca.push(readFileSync(file));
    } catch (error) {
      err(`parley ${command}: cannot read --ca ${file}: ${(error as Error).message}`);
      return 2;
    }
  }
  const user = parsed.strings.get('user')!;
  const password = await readPassword(parsed.strings.get('password'), `password for ${user}: `);
  if (password === undefined) {
    err(`parley ${command}: a password is needed: --password P, PARLEY_PASSWORD, or a terminal to type it on`);
    return 2;
  }
  const options: ClientOptions = { server: parsed.strings.get('server') ?? DEFAULT_SERVER, user, password };
  const state = parsed.strings.get('state');
  if (state !== undefined) options.stateDir = state;
  if (ca.length > 0) {
    options.ca = ca;
    options.systemCa = !parsed.booleans.has('ca-only');
  }
  return { options, parsed };
}

async function connect(command: string, options: ClientOptions, err: Print): Promise<ParleyClient | number> {
  try {
    return await ParleyClient.connect(options);
  } catch (error) {
    err(`parley ${command}: ${describe(error)}`);
    return 1;
  }
}

function describe(error: unknown): string {
  if (error instanceof ClientError) {
    if (error.code === 'CLIENT_AUTH_FAILED') return `authentication failed (${error.message}): check the user and password`;
    if (error.code === 'CLIENT_UNREACHABLE') return `cannot reach the server (${error.message})`;
    if (error.code === 'CLIENT_TLS') {
      return `TLS with the server failed (${error.message}): its certificate must chain to a trusted CA (--ca FILE for a private one) and name the --server host`;
    }
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Unregisters and closes, but an interrupted command never waits on the server more than 5 s. */
const closeWithin = (client: ParleyClient, ms = 5000): Promise<void> =>
  Promise.race([client.close().catch(() => undefined), new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);

const untilSignal = (): Promise<void> =>
  new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });

/** `parley send`: exit 0 when the server accepted (and, with --wait-delivery, a device got) it. */
export async function sendCommand(args: string[], out: Print, err: Print): Promise<number> {
  const setup = await clientOptions('send', args, { to: 'string', text: 'string', 'wait-delivery': 'string' }, err);
  if (typeof setup === 'number') return setup;
  const { options, parsed } = setup;
  const to = parsed.strings.get('to');
  const text = parsed.strings.get('text');
  const wait = positiveInteger(parsed.strings.get('wait-delivery'), 'wait-delivery');
  if (to === undefined || text === undefined || typeof wait === 'string') {
    err(typeof wait === 'string' ? wait : `usage: parley send ${CLIENT_USAGE} --to USER@DOMAIN --text TEXT [--wait-delivery SECONDS]`);
    return 2;
  }
  // Sending needs no registration. Waiting for the delivery notification means being a device
  // that can receive it: one of its own ('send'), so it never takes the messages meant for
  // `listen` or `client` (those it is given are acknowledged for this device only, not shown).
  const client = await connect('send', { ...options, device: 'send', expires: 120, register: wait !== undefined }, err);
  if (typeof client === 'number') return client;
  const delivered = new Map<string, Date>();
  client.on('delivered', (id, _by, time) => delivered.set(id, time));
  client.on('message', () => undefined);
  try {
    const result = await client.send(to, text);
    out(`accepted ${result.messageId}`);
    if (wait === undefined) return 0;
    const deadline = Date.now() + wait * 1000;
    while (!delivered.has(result.messageId)) {
      if (Date.now() > deadline) {
        err(`parley send: not delivered within ${wait} s (the server keeps it until a device of ${to} takes it)`);
        return 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    out(`delivered ${result.messageId}`);
    return 0;
  } catch (error) {
    err(`parley send: ${describe(error)}`);
    return 1;
  } finally {
    await client.close();
  }
}

function chatLine(message: ChatMessage, clock: 'date' | 'time'): string {
  const iso = message.time.toISOString();
  const when = clock === 'date' ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : iso.slice(11, 19);
  return `[${when}] ${message.from}: ${message.text}`;
}

/** `parley listen`: one line per incoming message until interrupted, then unregisters. */
export async function listenCommand(args: string[], out: Print, err: Print): Promise<number> {
  const setup = await clientOptions('listen', args, { json: 'boolean' }, err);
  if (typeof setup === 'number') return setup;
  const json = setup.parsed.booleans.has('json');
  const client = await connect('listen', setup.options, err);
  if (typeof client === 'number') return client;
  client.on('message', (message) => {
    out(
      json
        ? JSON.stringify({ from: message.from, to: message.to, messageId: message.messageId, time: message.time.toISOString(), contentType: message.contentType, text: message.text })
        : chatLine(message, 'date'),
    );
  });
  // Delivery notifications for this user are acknowledged, not printed (docs/server.md); a
  // listener must take them, or the client holds them and the server's in-order delivery waits.
  client.on('delivered', () => undefined);
  client.on('status', (status, detail) => err(status === 'retrying' ? `connection lost, retrying: ${detail}` : detail));
  err(`registered as ${client.aor}`);
  await untilSignal();
  await closeWithin(client);
  return 0;
}

const HELP = [
  '/msg USER@DOMAIN TEXT   send TEXT and make USER the current conversation',
  'TEXT                    send to the current conversation',
  '/help                   this text',
  '/quit                   unregister and leave',
  'marks: → sent, ✓ accepted by the server, ✓✓ delivered to a device',
];

/** `parley client`: an interactive chat on the terminal. */
export async function clientCommand(args: string[], out: Print, err: Print): Promise<number> {
  const setup = await clientOptions('client', args, {}, err);
  if (typeof setup === 'number') return setup;
  const client = await connect('client', setup.options, err);
  if (typeof client === 'number') return client;
  out(`registered as ${client.aor}; /help for commands`);
  let current: string | undefined;
  const pending = new Map<string, string>();
  client.on('message', (message) => out(chatLine(message, 'time')));
  client.on('delivered', (id, by) => out(`✓✓ delivered to ${by}: ${pending.get(id) ?? id}`));
  client.on('status', (status, detail) => {
    if (status === 'retrying') out(`(connection lost, retrying: ${detail})`);
    else if (detail === 'registered') out('(connected again)');
  });
  const rl = createInterface({ input: process.stdin, terminal: false });
  // One send at a time: messages typed in a row reach the server, and so the recipient, in order.
  let queue = Promise.resolve();
  const send = (to: string, text: string): Promise<void> => (queue = queue.then(() => sendNow(to, text)));
  const sendNow = async (to: string, text: string): Promise<void> => {
    const label = text.length > 30 ? `${text.slice(0, 30)}…` : text;
    out(`→ sent to ${to}: ${label}`);
    try {
      const result = await client.send(to, text);
      pending.set(result.messageId, label);
      out(`✓ accepted: ${label}`);
    } catch (error) {
      out(`✗ not sent to ${to}: ${describe(error)}`);
    }
  };
  const quit = new Promise<void>((resolve) => {
    rl.on('line', (line) => {
      const text = line.trim();
      if (text === '') return;
      if (text === '/quit') return resolve();
      if (text === '/help') return void HELP.forEach((h) => out(h));
      const msg = /^\/msg\s+(\S+)\s+([\s\S]+)$/.exec(text);
      if (msg) {
        current = msg[1]!;
        return void send(current, msg[2]!);
      }
      if (text.startsWith('/')) return out(`unknown command ${text.split(/\s/)[0]!}; /help lists them`);
      if (current === undefined) return out('no conversation yet: /msg USER@DOMAIN TEXT');
      void send(current, text);
    });
    rl.on('close', resolve);
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await quit;
  rl.close();
  // A terminal (or a pipe still open) would keep the process waiting for input.
  process.stdin.destroy();
  await queue;
  await closeWithin(client);
  out('bye');
  return 0;
}
