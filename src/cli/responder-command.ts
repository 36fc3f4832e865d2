import { readFileSync } from 'node:fs';
import { createResponse } from '../message/builder.js';
import type { SipMessage } from '../message/sip-message.js';
import { SipStack } from '../stack.js';
import { formatTuple } from '../transport/address.js';
import { parseAdvertised } from '../transport/sent-by.js';
import { LocalContact } from '../message/local-contact.js';
import type { TlsOptions } from '../transport/tls-transport.js';
import type { Transport } from '../transport/types.js';
import type { ServerRequest } from '../tu/transaction-user.js';
import type { TimerHandle } from '../util/clock.js';

export interface ResponderArgs {
  listen: string[];
  status: number;
  tls: TlsOptions | undefined;
  /** `--advertise-host HOST[:PORT]`: what every listener puts in Via and Contact instead of its bound address. */
  advertise?: string | undefined;
}

const USAGE = 'usage: parley responder --listen PROTO:HOST:PORT... [--advertise-host HOST[:PORT]] [--status CODE] [--cert FILE --key FILE]';

export function parseResponderArgs(args: string[]): ResponderArgs | string {
  const listen: string[] = [];
  let status = 200;
  let cert: string | undefined;
  let key: string | undefined;
  let advertise: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = args[i + 1];
    if (arg === '--listen' && value !== undefined) listen.push(value);
    else if (arg === '--status' && value !== undefined) status = Number(value);
    else if (arg === '--cert' && value !== undefined) cert = value;
    else if (arg === '--key' && value !== undefined) key = value;
    else if (arg === '--advertise-host' && value !== undefined) advertise = value;
    else return `unknown or incomplete argument "${arg}"\n${USAGE}`;
    i++;
  }
  if (listen.length === 0) return USAGE;
  if (!Number.isInteger(status) || status < 200 || status > 699) return `--status must be a final status code (200-699)\n${USAGE}`;
  if ((cert === undefined) !== (key === undefined)) return `--cert and --key go together\n${USAGE}`;
  if (advertise !== undefined) {
    try {
      parseAdvertised(advertise);
    } catch (error) {
      return `--advertise-host: ${(error as Error).message}\n${USAGE}`;
    }
  }
  const tls = cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : undefined;
  return { listen, status, tls, advertise };
}

/**
 * A UAS on the stack that answers every request (except ACK) with one status, for load and
 * interop tests (ARCHITECTURE.md). The transaction layer absorbs retransmitted requests and
 * answers them with the same response; a malformed request gets the validator's status. A 2xx to
 * INVITE is retransmitted (T1 doubling to T2) until its ACK arrives or 64·T1 passes (RFC 3261
 * §13.3.1.4); a CANCEL gets 200 from the stack and the INVITE it cancels 487.
 */
export async function runResponder(
  args: ResponderArgs,
  out: (line: string) => void,
  options: { t1?: number; t2?: number; tuQueueLimitMs?: number } = {},
): Promise<{ stack: SipStack; transports: readonly Transport[]; stop: () => Promise<void> }> {
  const transports = args.listen.map((listen) => (args.advertise !== undefined ? { listen, advertise: args.advertise } : listen));
  const stack = new SipStack({ transports, tls: args.tls, ...options });
  const t1 = options.t1 ?? 500;
  const t2 = options.t2 ?? 4000;
  /** 2xx responses to INVITE waiting for their ACK, by Call-ID and CSeq number. */
  const awaitingAck = new Map<string, TimerHandle>();
  const ackKey = (m: SipMessage): string => `${m.callId}|${m.cseq.seq}`;

  stack.setDefaultTu({
    onRequest(request: ServerRequest) {
      const message = request.message;
      if (message.method === 'ACK') {
        const key = ackKey(message);
        awaitingAck.get(key)?.cancel();
        awaitingAck.delete(key);
        return;
      }
      if (message.method === 'CANCEL') {
        // §9.2: the stack answered the CANCEL 200; the INVITE, if still pending, ends with 487.
        if (request.cancels?.state === 'proceeding') request.cancels.respond(createResponse(request.cancels.request, 487));
        return;
      }
      const headers: Record<string, LocalContact> = {};
      const invite2xx = message.method === 'INVITE' && args.status < 300;
      // RFC 3261 §12.1.1: a 2xx to INVITE carries a Contact: ours, as the transport it goes out on advertises it.
      if (invite2xx) headers.Contact = new LocalContact(undefined);
      const response = request.respond(args.status, undefined, { headers });
      if (!invite2xx || !request.transaction) return;
      const transaction = request.transaction;
      const key = ackKey(message);
      const giveUp = stack.timers.now() + 64 * t1;
      const retransmit = (interval: number): void => {
        awaitingAck.set(
          key,
          stack.timers.schedule(interval, () => {
            if (stack.timers.now() >= giveUp || transaction.terminated) {
              awaitingAck.delete(key);
              return;
            }
            transaction.respond(response);
            retransmit(Math.min(interval * 2, t2));
          }),
        );
      };
      if (request.source.protocol === 'udp') retransmit(t1);
    },
  });
  await stack.start();
  for (const transport of stack.transports) out(`listening ${formatTuple(transport.local)}`);
  return {
    stack,
    transports: stack.transports,
    stop: async () => {
      for (const timer of awaitingAck.values()) timer.cancel();
      awaitingAck.clear();
      await stack.stop();
    },
  };
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
