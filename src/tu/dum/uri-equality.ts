import type { SipUri } from '../../message/uri.js';

/** uri-parameters that must appear in both URIs or neither (RFC 3261 §19.1.4). */
const MUST_MATCH = ['user', 'ttl', 'method', 'maddr', 'transport'];

/**
 * RFC 3261 §19.1.4: are two SIP/SIPS URIs equivalent? (A registrar compares Contact URIs with
 * this, §10.3 step 7.) Userinfo is case-sensitive, the rest is not; a component with a default
 * value is not the same as one left out; parameters in both must match, and user, ttl, method,
 * maddr and transport must be in both or neither. URI headers are not compared (Contacts
 * carry none that matter to a binding).
 */
export function sameUri(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if (a.user !== b.user || a.password !== b.password) return false;
  if (a.host.toLowerCase() !== b.host.toLowerCase() || a.port !== b.port) return false;
  for (const name of MUST_MATCH) {
    if ((name in a.params) !== (name in b.params)) return false;
  }
  for (const name of Object.keys(a.params)) {
    if (!(name in b.params)) continue;
    const x = a.params[name];
    const y = b.params[name];
    if ((x ?? '').toLowerCase() !== (y ?? '').toLowerCase()) return false;
  }
  return true;
}
