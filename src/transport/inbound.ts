import { createResponse } from '../message/builder.js';
import { parseMessage } from '../message/parse-message.js';
import { SipParseError } from '../message/parse-error.js';
import type { SipMessage } from '../message/sip-message.js';
import { unbracket } from '../message/uri.js';
import type { Via } from '../message/via.js';
import type { ParseLimits } from '../message/scanner.js';
import type { Tuple } from './types.js';

/**
 * RFC 3261 §18.2.1 and RFC 3581 §4, on every request a transport receives: add `received` when
 * the top Via's sent-by host is not the packet's source address (or `rport` was asked for), and
 * fill a bare `rport` with the source port. A request without a readable Via is left alone: the
 * validator answers it.
 */
export function stampReceived(message: SipMessage, source: Tuple): void {
  if (!message.isRequest) return;
  let top: Via | undefined;
  try {
    top = message.via[0];
  } catch (error) {
    if (error instanceof SipParseError) return;
    throw error;
  }
  if (!top) return;
  const host = unbracket(top.host);
  const wantsRport = 'rport' in top.params && top.params.rport === null;
  const differs = host.toLowerCase() !== source.address.toLowerCase();
  if (!differs && !wantsRport) return;
  message.update<Via>('via', 0, (via) => {
    if (differs || wantsRport) via.params.received = source.address;
    if (wantsRport) via.params.rport = String(source.port);
  });
}

/** What to do with one datagram (RFC 3261 §18.3). */
export type DatagramOutcome =
  | { readonly action: 'deliver'; readonly message: SipMessage }
  /** A request whose Content-Length exceeds the datagram: answer with these bytes (a 400). */
  | { readonly action: 'reply'; readonly bytes: Buffer }
  | { readonly action: 'drop'; readonly reason: string };

export function acceptDatagram(bytes: Buffer, limits?: ParseLimits): DatagramOutcome {
  let message: SipMessage;
  try {
    message = parseMessage(bytes, limits);
  } catch (error) {
    if (error instanceof SipParseError) return { action: 'drop', reason: `${error.code}: ${error.message}` };
    throw error;
  }
  // §18.3: "If the transport packet ends before the end of the message body, this is considered
  // an error. If the message is a response, it MUST be discarded. If the message is a request, the
  // element SHOULD generate a 400 (Bad Request) response."
  if (message.bodyTruncated) {
    if (!message.isRequest) return { action: 'drop', reason: 'response shorter than its Content-Length' };
    if (message.method === 'ACK') return { action: 'drop', reason: 'ACK shorter than its Content-Length' };
    return { action: 'reply', bytes: badRequest(message, 'Content-Length larger than the datagram') };
  }
  return { action: 'deliver', message };
}

/** A stateless 400 for a request a transport cannot hand up. */
export function badRequest(request: SipMessage, why: string): Buffer {
  const response = createResponse(request, 400, 'Bad Request', { headers: { Warning: `399 parley "${why}"` } });
  return response.toBuffer();
}
