import { readFileSync } from 'node:fs';
import { createResponse } from '../message/builder.js';
import { SipParseError } from '../message/parse-error.js';
import { validateMessage } from '../message/validate.js';
import { formatHostPort, formatTuple } from '../transport/address.js';
import { createTransport } from '../transport/create-transport.js';
import type { TlsOptions } from '../transport/tls-transport.js';
import { TransportError } from '../transport/transport-error.js';
import { TransportSelector } from '../transport/transport-selector.js';
import type { Transport, TransportEvent } from '../transport/types.js';
import { Fifo } from '../util/fifo.js';

export interface ResponderArgs {
  listen: string[];
  status: number;
  tls: TlsOptions | undefined;
}

const USAGE = 'usage: parley responder --listen PROTO:HOST:PORT... [--status CODE] [--cert FILE --key FILE]';

export function parseResponderArgs(args: string[]): ResponderArgs | string {
  const listen: string[] = [];
  let status = 200;
  let cert: string | undefined;
  let key: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = args[i + 1];
    if (arg === '--listen' && value !== undefined) listen.push(value);
    else if (arg === '--status' && value !== undefined) status = Number(value);
    else if (arg === '--cert' && value !== undefined) cert = value;
    else if (arg === '--key' && value !== undefined) key = value;
    else return `unknown or incomplete argument "${arg}"\n${USAGE}`;
    i++;
  }
  if (listen.length === 0) return USAGE;
  if (!Number.isInteger(status) || status < 200 || status > 699) return `--status must be a final status code (200-699)\n${USAGE}`;
  if ((cert === undefined) !== (key === undefined)) return `--cert and --key go together\n${USAGE}`;
  const tls = cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : undefined;
  return { listen, status, tls };
}

/**
 * A UAS that answers every request (except ACK) with one status, for load and interop tests
 * (ARCHITECTURE.md). Stateless until the transaction layer lands: each request, retransmissions
 * included, gets its own response. A request the validator refuses gets the validator's answer.
 */
export async function runResponder(
  args: ResponderArgs,
  out: (line: string) => void,
): Promise<{ transports: Transport[]; stop: () => Promise<void> }> {
  const transports: Transport[] = [];
  const selector = new TransportSelector({ transports: [] });
  const events = new Fifo<TransportEvent>((event) => {
    if (event.type !== 'message' || !event.message.isRequest) return;
    const request = event.message;
    if (request.method === 'ACK') return;
    try {
      const verdict = validateMessage(request);
      if (verdict.action === 'drop') return;
      const status = verdict.action === 'reply' ? verdict.status : args.status;
      const headers: Record<string, string[]> = {};
      if (verdict.action === 'reply') for (const [name, value] of verdict.headers) (headers[name] ??= []).push(value);
      // RFC 3261 §12.1.1: a 2xx to INVITE carries a Contact.
      if (request.method === 'INVITE' && status < 300) {
        const local = event.local;
        const transport = local.protocol === 'udp' ? '' : `;transport=${local.protocol}`;
        headers.Contact = [`<sip:${formatHostPort(local.address, local.port)}${transport}>`];
      }
      const response = createResponse(request, status, undefined, { headers });
      // A failed send is also pushed as a 'failure' event; a stateless responder has no one to tell.
      selector.respond(response, event).catch(() => undefined);
    } catch (error) {
      if (!(error instanceof SipParseError) && !(error instanceof TransportError)) throw error;
    }
  });
  try {
    for (const listen of args.listen) {
      const transport = createTransport(listen, { sink: events, tls: args.tls });
      await transport.start();
      transports.push(transport);
      selector.add(transport);
      out(`listening ${formatTuple(transport.local)}`);
    }
  } catch (error) {
    await Promise.all(transports.map((t) => t.close()));
    throw error;
  }
  return { transports, stop: async () => void (await Promise.all(transports.map((t) => t.close()))) };
}

export async function responderCommand(args: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const parsed = parseResponderArgs(args);
  if (typeof parsed === 'string') {
    err(parsed);
    return 2;
  }
  let running: Awaited<ReturnType<typeof runResponder>>;
  try {
    running = await runResponder(parsed, out);
  } catch (error) {
    err(`parley responder: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void running.stop().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}
