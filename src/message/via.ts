import { HOST_CHAR, IPV6_CHAR, isDigit } from './char-class.js';
import { copyParams, emptyParams, formatParams, readHeaderParams, type Params } from './params.js';
import { ValueReader } from './value-reader.js';

/**
 * One Via value (RFC 3261 §20.42, §25.1):
 *   via-parm = sent-protocol LWS sent-by *( SEMI via-params )
 *   sent-protocol = protocol-name SLASH protocol-version SLASH transport
 *   sent-by = host [ COLON port ]
 * with `received`, `rport` (RFC 3581), `branch`, `maddr` and `ttl` read from the parameters.
 */
export class Via {
  /** e.g. `SIP/2.0`. */
  protocol: string;
  /** Uppercased: UDP, TCP, TLS, SCTP, WS, WSS or any other token. */
  transport: string;
  host: string;
  port: number | undefined;
  params: Params;

  /** `params` is used as given (not copied). */
  constructor(init: { protocol?: string; transport: string; host: string; port?: number | undefined; params?: Params }) {
    this.protocol = init.protocol ?? 'SIP/2.0';
    this.transport = upperTransport(init.transport);
    this.host = init.host;
    this.port = init.port;
    this.params = init.params ?? emptyParams();
  }

  get branch(): string | undefined {
    return this.params.branch ?? undefined;
  }

  set branch(value: string | undefined) {
    if (value === undefined) delete this.params.branch;
    else this.params.branch = value;
  }

  get received(): string | undefined {
    return this.params.received ?? undefined;
  }

  /** RFC 3581: a number once filled in, `null` when requested (present without a value). */
  get rport(): number | null | undefined {
    if (!('rport' in this.params)) return undefined;
    const v = this.params.rport;
    if (v === null || v === undefined) return null;
    const n = Number(v);
    return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : null;
  }

  get maddr(): string | undefined {
    return this.params.maddr ?? undefined;
  }

  get ttl(): number | undefined {
    const v = this.params.ttl;
    return v === null || v === undefined ? undefined : Number(v);
  }

  /** RFC 3261 §17.1.3 / §17.2.3: a branch starting with the magic cookie is RFC 3261-compliant. */
  get hasMagicCookie(): boolean {
    return this.branch?.startsWith('z9hG4bK') ?? false;
  }

  /** `host[:port]` as written. */
  get sentBy(): string {
    return this.port === undefined ? this.host : `${this.host}:${this.port}`;
  }

  clone(): Via {
    return new Via({ ...this.fields(), params: copyParams(this.params) });
  }

  private fields(): { protocol: string; transport: string; host: string; port: number | undefined } {
    return { protocol: this.protocol, transport: this.transport, host: this.host, port: this.port };
  }

  toString(): string {
    return `${this.protocol}/${this.transport} ${this.sentBy}${formatParams(this.params)}`;
  }
}

const SLASH = 0x2f;
const COLON = 0x3a;

/** Parses one Via value (already split from its neighbours at top-level commas). */
export function parseVia(text: string, header = 'via'): Via {
  const reader = new ValueReader(text, header);
  let protocol: string;
  if (text.startsWith('SIP/2.0/')) {
    // The form nearly every Via has: no white space inside sent-protocol.
    reader.pos = 8;
    reader.skipLws();
    protocol = 'SIP/2.0';
  } else {
    reader.skipLws();
    const name = reader.token('a protocol name');
    reader.expect(SLASH, '"/"');
    const version = reader.token('a protocol version');
    reader.expect(SLASH, '"/"');
    protocol = `${name}/${version}`;
  }
  const transport = reader.token('a transport');
  const before = reader.pos;
  reader.skipLws();
  if (reader.pos === before) reader.fail('expected white space before sent-by');
  if (reader.pos === text.length) reader.fail('no sent-by');
  const { host, port } = readHostPort(reader);
  const params = emptyParams();
  readHeaderParams(reader, params);
  return new Via({ protocol, transport, host, port, params });
}

/** Transport names uppercased, the usual ones as constants (no allocation per Via). */
function upperTransport(transport: string): string {
  switch (transport) {
    case 'UDP':
    case 'udp':
      return 'UDP';
    case 'TCP':
    case 'tcp':
      return 'TCP';
    case 'TLS':
    case 'tls':
      return 'TLS';
    case 'WS':
    case 'ws':
      return 'WS';
    case 'WSS':
    case 'wss':
      return 'WSS';
    default:
      return transport.toUpperCase();
  }
}

/** host [ COLON port ], host being a hostname, IPv4 address or IPv6 reference. */
function readHostPort(reader: ValueReader): { host: string; port: number | undefined } {
  const s = reader.text;
  const start = reader.pos;
  let p = start;
  if (s.charCodeAt(p) === 0x5b) {
    p++;
    while (p < s.length && IPV6_CHAR[s.charCodeAt(p)] === 1) p++;
    if (s.charCodeAt(p) !== 0x5d) reader.fail('bad IPv6 reference');
    p++;
  } else {
    while (p < s.length && s.charCodeAt(p) < 0x80 && HOST_CHAR[s.charCodeAt(p)] === 1) p++;
    if (p === start) reader.fail('expected a host');
  }
  reader.pos = p;
  const host = s.slice(start, p);
  let port: number | undefined;
  if (reader.eat(COLON)) {
    const portStart = reader.pos;
    let value = 0;
    while (reader.pos < s.length && isDigit(s.charCodeAt(reader.pos)) && reader.pos - portStart < 6) {
      value = value * 10 + s.charCodeAt(reader.pos) - 0x30;
      reader.pos++;
    }
    if (reader.pos === portStart || value > 65535) reader.fail('bad port');
    port = value;
  }
  return { host, port };
}
