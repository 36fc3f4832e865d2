import type { SipMessage } from '../../message/sip-message.js';
import { ParleyError } from '../../util/errors.js';

export type DumErrorCode =
  | 'DUM_REGISTRATION_FAILED'
  | 'DUM_SUBSCRIPTION_FAILED'
  | 'DUM_SESSION_FAILED'
  | 'DUM_AUTH_FAILED'
  | 'DUM_NO_DIALOG'
  | 'DUM_BAD_STATE'
  | 'DUM_CLOSED';

/** A usage that could not do what the application asked, with the final response when one came. */
export class DumError extends ParleyError {
  override readonly code: DumErrorCode;
  readonly response: SipMessage | undefined;

  constructor(code: DumErrorCode, message: string, response?: SipMessage, cause?: unknown) {
    super(code, message, { cause });
    this.code = code;
    this.response = response;
  }
}
