import type { SipMessage } from '../message/sip-message.js';
import { MAGIC_COOKIE } from '../message/builder.js';

/**
 * RFC 3261 §17.1.3: a response matches a client transaction by the top Via's branch and the CSeq
 * method (CANCEL shares its INVITE's branch).
 */
export function clientKey(branch: string, method: string): string {
  return `c|${branch}|${method}`;
}

export function clientKeyOfResponse(response: SipMessage): string | undefined {
  const branch = response.via[0]?.branch;
  return branch === undefined ? undefined : clientKey(branch, response.cseq.method);
}

/**
 * RFC 3261 §17.2.3: a request matches a server transaction by the top Via's branch (with the
 * magic cookie), its sent-by, and the method — an ACK matching its INVITE. Without the cookie
 * (RFC 2543), by Request-URI, From tag, Call-ID, CSeq number and the top Via (§17.2.3, last
 * paragraphs); an ACK there matches the INVITE whose response it acknowledges.
 */
export function serverKey(request: SipMessage, methodOverride?: string): string {
  const top = request.via[0]!;
  const method = methodOverride ?? (request.method === 'ACK' ? 'INVITE' : request.method);
  const branch = top.branch;
  if (branch !== undefined && branch.startsWith(MAGIC_COOKIE) && branch.length > MAGIC_COOKIE.length) {
    return `s|${branch}|${top.sentBy.toLowerCase()}|${method}`;
  }
  return `s2543|${request.requestUriText}|${request.from.tag ?? ''}|${request.callId}|${request.cseq.seq}|${top.toString()}|${method}`;
}
