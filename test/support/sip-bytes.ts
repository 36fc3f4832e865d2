// Building SIP test messages as bytes.

export const CRLF = '\r\n';

/**
 * A message from its head lines and body; `{CL}` in a head line becomes the body's length in
 * bytes (UTF-8), which is what Content-Length counts.
 */
export function sip(head: string[], body = ''): Buffer {
  const bodyBytes = Buffer.from(body, 'utf8');
  const text = head.map((l) => l.replace('{CL}', String(bodyBytes.length))).join(CRLF) + CRLF + CRLF;
  return Buffer.concat([Buffer.from(text, 'utf8'), bodyBytes]);
}
