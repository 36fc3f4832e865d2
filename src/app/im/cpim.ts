import { ParleyError } from '../../util/errors.js';

/** A `message/cpim` body that does not parse. Code: `CPIM_MALFORMED`. */
export class CpimError extends ParleyError {}

/** RFC 5438 §4: the IMDN namespace, declared with `NS: imdn <urn:ietf:params:imdn>`. */
export const IMDN_NAMESPACE = 'urn:ietf:params:imdn';

/** A parsed `message/cpim` body (RFC 3862). */
export interface CpimMessage {
  /** Message headers in order, namespace prefixes as written (`imdn.Message-ID`). */
  headers: Array<[name: string, value: string]>;
  /** The encapsulated MIME entity's headers (Content-Type, Content-Disposition…). */
  mimeHeaders: Array<[name: string, value: string]>;
  contentType: string | undefined;
  content: Buffer;
}

const MAX_HEADER_LINES = 64;

/** The first value of a header, by case-insensitive name. */
export function cpimHeader(headers: CpimMessage['headers'], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find(([n]) => n.toLowerCase() === lower)?.[1];
}

/**
 * RFC 3862 §2: message headers, a blank line, the encapsulated MIME headers, a blank line, the
 * content. CRLF as the RFC says; bare LF is tolerated. Anything else is `CPIM_MALFORMED`.
 */
export function parseCpim(body: Buffer): CpimMessage {
  const first = blockEnd(body, 0);
  if (!first) throw new CpimError('CPIM_MALFORMED', 'message/cpim: no blank line after the message headers');
  const headers = parseHeaderBlock(body.subarray(0, first.end), 'message');
  const second = blockEnd(body, first.next);
  if (!second) throw new CpimError('CPIM_MALFORMED', 'message/cpim: no blank line after the MIME headers');
  const mimeHeaders = parseHeaderBlock(body.subarray(first.next, second.end), 'MIME');
  let content = body.subarray(second.next);
  const declared = cpimHeader(mimeHeaders, 'Content-Length');
  if (declared !== undefined) {
    const length = Number(declared);
    if (!Number.isInteger(length) || length < 0 || length > content.length) throw new CpimError('CPIM_MALFORMED', `message/cpim: Content-Length ${declared} does not fit the content`);
    content = content.subarray(0, length);
  }
  // RFC 3862 §3.2: From, To and DateTime identify the message; From is mandatory.
  if (cpimHeader(headers, 'From') === undefined) throw new CpimError('CPIM_MALFORMED', 'message/cpim: no From header');
  // One originator (RFC 3862 §4.1), and here one recipient: RFC 3862 §4.2 allows several To for
  // a message sent to many, but a MESSAGE has one Request-URI, and a second From or To is how a
  // body would name someone else than what the server checked (the first) to the reader.
  for (const name of ['From', 'To']) {
    if (headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).length > 1) throw new CpimError('CPIM_MALFORMED', `message/cpim: more than one ${name} header`);
  }
  return { headers, mimeHeaders, contentType: cpimHeader(mimeHeaders, 'Content-Type'), content };
}

/** Where the header block starting at `from` ends (`end`) and what follows its blank line (`next`). */
function blockEnd(body: Buffer, from: number): { end: number; next: number } | undefined {
  // An empty block: the blank line comes first.
  if (body[from] === 0x0a) return { end: from, next: from + 1 };
  if (body[from] === 0x0d && body[from + 1] === 0x0a) return { end: from, next: from + 2 };
  const crlf = body.indexOf('\r\n\r\n', from);
  const lf = body.indexOf('\n\n', from);
  if (crlf < 0 && lf < 0) return undefined;
  if (lf >= 0 && (crlf < 0 || lf < crlf)) return { end: lf, next: lf + 2 };
  return { end: crlf, next: crlf + 4 };
}

function parseHeaderBlock(block: Buffer, what: string): Array<[string, string]> {
  const text = block.toString('utf8');
  const lines = text.split(/\r?\n/).filter((line) => line.length > 0);
  if (lines.length > MAX_HEADER_LINES) throw new CpimError('CPIM_MALFORMED', `message/cpim: more than ${MAX_HEADER_LINES} ${what} headers`);
  return lines.map((line) => {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!/^[A-Za-z0-9.!%*_+`'~-]+$/.test(name)) throw new CpimError('CPIM_MALFORMED', `message/cpim: not a ${what} header: ${JSON.stringify(line.slice(0, 80))}`);
    return [name, line.slice(colon + 1).trim()];
  });
}

/** The URI inside `Display Name <uri>` or a bare URI. */
export function cpimAddress(value: string): string {
  const open = value.indexOf('<');
  const close = value.lastIndexOf('>');
  return open >= 0 && close > open ? value.slice(open + 1, close).trim() : value.trim();
}

export interface CpimInit {
  from: string;
  to: string;
  dateTime: Date;
  /** RFC 5438 §6.3: sets NS: imdn and imdn.Message-ID. */
  messageId: string;
  /** RFC 5438 §6.3 imdn.Disposition-Notification values, e.g. ['positive-delivery']. */
  notifications?: string[];
  contentType: string;
  contentDisposition?: string;
  content: Buffer | string;
}

/** Writes a `message/cpim` body with the IMDN headers (RFC 3862 §2, RFC 5438 §6.3). */
export function formatCpim(init: CpimInit): Buffer {
  const content = typeof init.content === 'string' ? Buffer.from(init.content, 'utf8') : init.content;
  const lines = [
    `From: <${init.from}>`,
    `To: <${init.to}>`,
    `DateTime: ${init.dateTime.toISOString()}`,
    `NS: imdn <${IMDN_NAMESPACE}>`,
    `imdn.Message-ID: ${init.messageId}`,
  ];
  if (init.notifications && init.notifications.length > 0) lines.push(`imdn.Disposition-Notification: ${init.notifications.join(', ')}`);
  const mime = [`Content-Type: ${init.contentType}`];
  if (init.contentDisposition) mime.push(`Content-Disposition: ${init.contentDisposition}`);
  mime.push(`Content-Length: ${content.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n${mime.join('\r\n')}\r\n\r\n`, 'utf8'), content]);
}

/** The imdn.* headers of a parsed CPIM message (prefix as declared by its NS header, default `imdn`). */
export function imdnHeaders(message: CpimMessage): { messageId: string | undefined; notifications: string[] } {
  let prefix = 'imdn';
  for (const [name, value] of message.headers) {
    if (name.toLowerCase() !== 'ns') continue;
    const match = /^\s*([^\s<]+)\s*<([^>]*)>/.exec(value);
    if (match && match[2] === IMDN_NAMESPACE) prefix = match[1]!;
  }
  const messageId = cpimHeader(message.headers, `${prefix}.Message-ID`);
  const notifications = (cpimHeader(message.headers, `${prefix}.Disposition-Notification`) ?? '')
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v.length > 0);
  return { messageId, notifications };
}
