import { parseUri } from '../../message/uri.js';
import { StoreError } from './store-error.js';

/** An address of record as the store keys it: `sip:user@domain`, the domain lower-cased. */
export type Aor = string;

/**
 * The canonical AOR of `alice@example.com`, `sip:alice@example.com` or `sips:…` (RFC 3261
 * §10.3 step 5: the AOR is the URI without parameters, the host case-insensitive, the user not).
 */
export function aorOf(address: string): Aor {
  const text = address.trim();
  const uriText = /^sips?:/i.test(text) ? text : `sip:${text}`;
  let user: string | undefined;
  let host: string;
  try {
    const uri = parseUri(uriText, 'aor');
    user = uri.user;
    host = uri.host;
  } catch {
    throw new StoreError('STORE_BAD_ADDRESS', `"${address}" is not an address of the form user@domain`);
  }
  if (user === undefined || user === '') throw new StoreError('STORE_BAD_ADDRESS', `"${address}" has no user part (user@domain)`);
  return `sip:${user}@${host.toLowerCase()}`;
}

/** `alice@example.com` for people: the AOR without its scheme. */
export function displayAor(aor: Aor): string {
  return aor.replace(/^sips?:/i, '');
}

/** The user and domain of a canonical AOR. */
export function splitAor(aor: Aor): { user: string; domain: string } {
  const at = aor.lastIndexOf('@');
  return { user: aor.slice(aor.indexOf(':') + 1, at), domain: aor.slice(at + 1) };
}
