/**
 * Header names: canonical spellings, RFC 3261 §7.3.3 compact forms, and which headers are
 * comma-separated lists (§7.3.1: several rows of a list header equal one row joined by commas).
 *
 * A name read off the wire is matched against this table byte by byte (case-insensitively) so the
 * scanner never allocates a string for a known header name.
 */
export interface HeaderDef {
  /** Lowercase full name: the key every lookup uses. */
  readonly key: string;
  /** The spelling Parley writes when it encodes the header. */
  readonly canonical: string;
  /** True when the grammar is `value *(COMMA value)`. */
  readonly list: boolean;
}

// [canonical name, compact form or '', list header]
const DEFINITIONS: Array<[string, string, boolean]> = [
  ['Accept', '', true],
  ['Accept-Contact', 'a', true],
  ['Accept-Encoding', '', true],
  ['Accept-Language', '', true],
  ['Alert-Info', '', true],
  ['Allow', '', true],
  ['Allow-Events', 'u', true],
  ['Authentication-Info', '', false],
  ['Authorization', '', false],
  ['Call-ID', 'i', false],
  ['Call-Info', '', true],
  ['Contact', 'm', true],
  ['Content-Disposition', '', false],
  ['Content-Encoding', 'e', true],
  ['Content-Language', '', true],
  ['Content-Length', 'l', false],
  ['Content-Type', 'c', false],
  ['CSeq', '', false],
  ['Date', '', false],
  ['Error-Info', '', true],
  ['Event', 'o', false],
  ['Expires', '', false],
  ['Flow-Timer', '', false],
  ['From', 'f', false],
  ['Identity', 'y', false],
  ['Identity-Info', 'n', false],
  ['In-Reply-To', '', true],
  ['Max-Forwards', '', false],
  ['MIME-Version', '', false],
  ['Min-Expires', '', false],
  ['Min-SE', '', false],
  ['Organization', '', false],
  ['P-Asserted-Identity', '', true],
  ['Path', '', true],
  ['Priority', '', false],
  ['Privacy', '', false],
  ['Proxy-Authenticate', '', false],
  ['Proxy-Authorization', '', false],
  ['Proxy-Require', '', true],
  ['RAck', '', false],
  ['Reason', '', true],
  ['Record-Route', '', true],
  ['Refer-To', 'r', false],
  ['Referred-By', 'b', false],
  ['Reject-Contact', 'j', true],
  ['Reply-To', '', false],
  ['Request-Disposition', 'd', true],
  ['Require', '', true],
  ['Retry-After', '', false],
  ['Route', '', true],
  ['RSeq', '', false],
  ['Server', '', false],
  ['Service-Route', '', true],
  ['Session-Expires', 'x', false],
  ['SIP-ETag', '', false],
  ['SIP-If-Match', '', false],
  ['Subject', 's', false],
  ['Subscription-State', '', false],
  ['Supported', 'k', true],
  ['Timestamp', '', false],
  ['To', 't', false],
  ['Unsupported', '', true],
  ['User-Agent', '', false],
  ['Via', 'v', true],
  ['Warning', '', true],
  ['WWW-Authenticate', '', false],
];

const BY_KEY = new Map<string, HeaderDef>();
// Candidates for a wire name, bucketed by (length, first letter) so a lookup compares at most a
// handful of names.
const BUCKETS = new Map<number, Array<{ bytes: Uint8Array; def: HeaderDef }>>();

function bucketKey(length: number, firstLower: number): number {
  return (length << 8) | firstLower;
}

function addName(name: string, def: HeaderDef): void {
  BY_KEY.set(name, def);
  const bytes = Buffer.from(name, 'latin1');
  const key = bucketKey(bytes.length, bytes[0]!);
  let bucket = BUCKETS.get(key);
  if (!bucket) BUCKETS.set(key, (bucket = []));
  bucket.push({ bytes, def });
}

for (const [canonical, compact, list] of DEFINITIONS) {
  const def: HeaderDef = { key: canonical.toLowerCase(), canonical, list };
  addName(def.key, def);
  if (compact) addName(compact, def);
}

/**
 * Looks up a header name held in `text[start, end)` (a Latin-1 decoded head), any case, compact
 * forms too, without allocating. Header names are tokens, so OR-ing 0x20 lowercases the first
 * letter without touching the "-" that known names contain.
 */
export function lookupHeaderName(text: string, start: number, end: number): HeaderDef | undefined {
  const length = end - start;
  const bucket = BUCKETS.get(bucketKey(length, text.charCodeAt(start) | 0x20));
  if (!bucket) return undefined;
  outer: for (const candidate of bucket) {
    const bytes = candidate.bytes;
    for (let i = 1; i < length; i++) {
      const c = text.charCodeAt(start + i);
      if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== bytes[i]) continue outer;
    }
    return candidate.def;
  }
  return undefined;
}

const queryCache = new Map<string, HeaderDef | string>();

/**
 * The lookup key for a header name given by a caller: the canonical lowercase full name for a known
 * header (compact forms expanded), or the lowercased name for any other. Cached, since callers
 * pass the same few literals over and over.
 */
export function headerKey(name: string): string {
  const hit = queryCache.get(name);
  if (hit !== undefined) return typeof hit === 'string' ? hit : hit.key;
  const lower = name.toLowerCase();
  const def = BY_KEY.get(lower);
  if (queryCache.size < 1024) queryCache.set(name, def ?? lower);
  return def ? def.key : lower;
}

/** The definition for a lowercase full key, when the header is known. */
export function headerDef(key: string): HeaderDef | undefined {
  return BY_KEY.get(key);
}

/** How Parley spells a header it writes: the canonical form of a known one, else as given. */
export function canonicalHeaderName(name: string): string {
  return BY_KEY.get(name.toLowerCase())?.canonical ?? name;
}
