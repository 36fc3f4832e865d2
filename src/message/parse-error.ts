import { ParleyError } from '../util/errors.js';

/**
 * Why bytes could not be read as SIP. Stable: callers and the CLI report these codes.
 * - SIP_EMPTY: nothing but whitespace.
 * - SIP_BAD_START_LINE: neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2).
 * - SIP_BAD_HEADER: a header line that is not `token HCOLON value` (§7.3), or a fold with no header.
 * - SIP_HEADERS_TOO_LARGE, SIP_TOO_MANY_HEADERS, SIP_BODY_TOO_LARGE: a configured limit was passed.
 * - SIP_BAD_CONTENT_LENGTH: a stream message without a usable Content-Length (§18.3).
 * - SIP_INCOMPLETE: a stream ended in the middle of a message.
 * - SIP_BAD_VALUE: a header value that does not match its grammar (thrown on first access).
 * - SIP_BAD_URI: a URI that does not match RFC 3261 §25.1 (thrown on first access).
 * - SIP_NOT_REQUEST / SIP_NOT_RESPONSE: a request-only or response-only member was used on the other kind.
 */
export type SipParseErrorCode =
  | 'SIP_EMPTY'
  | 'SIP_BAD_START_LINE'
  | 'SIP_BAD_HEADER'
  | 'SIP_HEADERS_TOO_LARGE'
  | 'SIP_TOO_MANY_HEADERS'
  | 'SIP_BODY_TOO_LARGE'
  | 'SIP_BAD_CONTENT_LENGTH'
  | 'SIP_INCOMPLETE'
  | 'SIP_BAD_VALUE'
  | 'SIP_BAD_URI'
  | 'SIP_NOT_REQUEST'
  | 'SIP_NOT_RESPONSE';

export class SipParseError extends ParleyError {
  declare readonly code: SipParseErrorCode;
  /** The canonical (lowercase) name of the header concerned, when there is one. */
  readonly header: string | undefined;
  /** Byte offset into the parsed input, or -1 when the error is not tied to a position. */
  readonly offset: number;

  constructor(code: SipParseErrorCode, message: string, header?: string, offset = -1) {
    super(code, message);
    this.header = header;
    this.offset = offset;
  }
}
