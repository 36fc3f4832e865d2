import { ParleyError } from '../util/errors.js';

/**
 * Why a DNS lookup gave no records. Stable codes:
 * DNS_TIMEOUT (no nameserver answered), DNS_UNREACHABLE (no nameserver could be reached: refused, no route), DNS_SERVFAIL, DNS_REFUSED, DNS_NXDOMAIN (the name does not
 * exist), DNS_NODATA (the name exists without records of that type), DNS_BAD_RESPONSE (an answer
 * that could not be decoded), DNS_BAD_RECORD (record data that could not be decoded), DNS_BAD_NAME
 * (not a domain name), DNS_BAD_NAMESERVER (not a HOST:PORT), DNS_CLOSED (the resolver was closed), DNS_NO_TARGETS (nothing usable).
 */
export type DnsErrorCode =
  | 'DNS_TIMEOUT'
  | 'DNS_UNREACHABLE'
  | 'DNS_SERVFAIL'
  | 'DNS_REFUSED'
  | 'DNS_NXDOMAIN'
  | 'DNS_NODATA'
  | 'DNS_BAD_RESPONSE'
  | 'DNS_BAD_RECORD'
  | 'DNS_BAD_NAME'
  | 'DNS_BAD_NAMESERVER'
  | 'DNS_CLOSED'
  | 'DNS_NO_TARGETS';

export class DnsError extends ParleyError {
  declare readonly code: DnsErrorCode;

  constructor(code: DnsErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
