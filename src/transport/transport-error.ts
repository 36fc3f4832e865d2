import { ParleyError } from '../util/errors.js';
import type { Tuple } from './types.js';

/**
 * Why a message could not be sent or a connection died. Stable codes:
 * TRANSPORT_REFUSED, TRANSPORT_RESET, TRANSPORT_TLS, TRANSPORT_UNREACHABLE, TRANSPORT_TIMEOUT,
 * TRANSPORT_CLOSED, TRANSPORT_FLOW_FAILED, TRANSPORT_LIMIT, TRANSPORT_TOO_LARGE, TRANSPORT_NO_TRANSPORT, TRANSPORT_BAD_ADDRESS.
 */
export type TransportErrorCode =
  | 'TRANSPORT_REFUSED'
  | 'TRANSPORT_RESET'
  | 'TRANSPORT_TLS'
  | 'TRANSPORT_UNREACHABLE'
  | 'TRANSPORT_TIMEOUT'
  | 'TRANSPORT_CLOSED'
  | 'TRANSPORT_FLOW_FAILED'
  | 'TRANSPORT_LIMIT'
  | 'TRANSPORT_TOO_LARGE'
  | 'TRANSPORT_NO_TRANSPORT'
  | 'TRANSPORT_BAD_ADDRESS';

const UNREACHABLE = ['EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAFNOSUPPORT', 'EINVAL'];
const RESET = ['ECONNRESET', 'EPIPE', 'ECONNABORTED'];

/** Whether an error came from the network path itself (refused, reset, unreachable, timed out). */
export function isNetworkError(error: unknown): boolean {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  return errno === 'ECONNREFUSED' || errno === 'ETIMEDOUT' || RESET.includes(errno) || UNREACHABLE.includes(errno);
}

export class TransportError extends ParleyError {
  declare readonly code: TransportErrorCode;
  readonly target: Tuple | undefined;

  constructor(code: TransportErrorCode, message: string, target?: Tuple, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.target = target;
  }

  /** Maps a socket error (errno codes, TLS failures) to a TransportError. */
  static fromSocketError(error: unknown, target: Tuple | undefined): TransportError {
    if (error instanceof TransportError) return error;
    const errno = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
    const text = error instanceof Error ? error.message : String(error);
    let code: TransportErrorCode;
    if (errno === 'ECONNREFUSED') code = 'TRANSPORT_REFUSED';
    else if (RESET.includes(errno)) code = 'TRANSPORT_RESET';
    else if (errno === 'ETIMEDOUT') code = 'TRANSPORT_TIMEOUT';
    else if (UNREACHABLE.includes(errno)) code = 'TRANSPORT_UNREACHABLE';
    else if (errno.startsWith('ERR_TLS') || errno.startsWith('ERR_SSL') || /certificate|ssl|tls|self[- ]signed/i.test(`${errno} ${text}`)) {
      code = 'TRANSPORT_TLS';
    } else if (errno === 'EMSGSIZE') code = 'TRANSPORT_TOO_LARGE';
    else code = 'TRANSPORT_RESET';
    return new TransportError(code, `${text}${errno ? ` (${errno})` : ''}`, target, error);
  }
}
