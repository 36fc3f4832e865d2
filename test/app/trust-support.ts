// Raw SIP over UDP with digest done by hand, for the trust tests (issue 16): an attacker on
// loopback controls every byte — realm, nonce, nc, the To of a REGISTER, the From of a MESSAGE.
import { randomBytes } from 'node:crypto';
import { digestHa1, digestResponse, parseMessage, type SipMessage } from '../../src/index.js';
import { sip } from '../support/sip-bytes.js';
import { UdpSipPeer } from '../support/udp-sip.js';

export const HOST = '127.0.0.1';

export function hex(bytes = 6): string {
  return randomBytes(bytes).toString('hex');
}

export interface Challenge {
  realm: string;
  nonce: string;
  opaque?: string;
  stale: boolean;
}

/** The MD5 challenge of a 401 (the tests run servers with digestAlgorithms ['MD5']). */
export function challengeOf(response: SipMessage): Challenge {
  const value = response.headers('www-authenticate')[0];
  if (value === undefined) throw new Error(`no WWW-Authenticate in ${response.status}`);
  const param = (name: string): string | undefined => new RegExp(`${name}="?([^",]*)"?`).exec(value)?.[1];
  return { realm: param('realm')!, nonce: param('nonce')!, opaque: param('opaque'), stale: /stale=true/i.test(value) };
}

export interface RequestSpec {
  method: 'REGISTER' | 'MESSAGE' | 'SUBSCRIBE';
  uri: string;
  from: string;
  to: string;
  /** Extra header lines. */
  headers?: string[];
  body?: string;
  contentType?: string;
  callId?: string;
  cseq?: number;
}

export interface Credentials {
  username: string;
  realm: string;
  password: string;
  nonce: string;
  nc: number;
  opaque?: string;
}

/** A UDP peer that sends requests as bytes and waits for their final responses. */
export class RawClient {
  private constructor(
    readonly peer: UdpSipPeer,
    readonly serverPort: number,
    /** The address it sends from (127.0.0.2 is another source on Linux loopback). */
    readonly host: string,
  ) {}

  static async open(serverPort: number, host = HOST): Promise<RawClient> {
    return new RawClient(await UdpSipPeer.bind(host), serverPort, host);
  }

  get port(): number {
    return this.peer.port;
  }

  bytes(spec: RequestSpec, credentials?: Credentials): Buffer {
    const body = spec.body ?? '';
    const callId = spec.callId ?? `trust-${hex()}`;
    const lines = [
      `${spec.method} ${spec.uri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${this.host}:${this.peer.port};branch=z9hG4bK-${hex()};rport`,
      'Max-Forwards: 70',
      `From: <${spec.from}>;tag=${hex(4)}`,
      `To: <${spec.to}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${spec.cseq ?? 1} ${spec.method}`,
      ...(spec.headers ?? []),
    ];
    if (credentials) lines.push(`Authorization: ${authorization(spec, credentials)}`);
    if (body.length > 0) lines.push(`Content-Type: ${spec.contentType ?? 'text/plain'}`);
    lines.push('Content-Length: {CL}');
    return sip(lines, body);
  }

  /** Sends one request (retransmitted every 500 ms like Timer E) and resolves with its final response. */
  async send(spec: RequestSpec, credentials?: Credentials, timeoutMs = 5000): Promise<SipMessage> {
    const callId = spec.callId ?? `trust-${hex()}`;
    const bytes = this.bytes({ ...spec, callId }, credentials);
    const from = this.peer.received.length;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      await this.peer.send(bytes, this.serverPort, HOST);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${spec.method} ${spec.uri}: no final response`);
      const got = await this.peer.waitFor((r) => isFinalFor(r.bytes, callId), Math.min(500, left), from);
      if (got) return got.message!;
    }
  }

  /**
   * A request with credentials computed for the first challenge the server gives in `realm`
   * (the 401 to the same request without credentials), then answered with nc `nc`.
   */
  async sendAuthenticated(spec: RequestSpec, account: { username: string; realm: string; password: string }): Promise<SipMessage> {
    return (await this.authenticated(spec, account)).response;
  }

  /** As sendAuthenticated, also giving the nonce used. */
  async authenticated(spec: RequestSpec, account: { username: string; realm: string; password: string }): Promise<{ response: SipMessage; nonce: string | undefined }> {
    const first = await this.send(spec);
    if (first.status !== 401) return { response: first, nonce: undefined };
    const challenge = challengeOf(first);
    const response = await this.send({ ...spec, cseq: (spec.cseq ?? 1) + 1 }, { ...account, nonce: challenge.nonce, nc: 1, opaque: challenge.opaque });
    return { response, nonce: challenge.nonce };
  }

  close(): Promise<void> {
    return this.peer.close();
  }
}

function isFinalFor(bytes: Buffer, callId: string): boolean {
  try {
    const message = parseMessage(bytes);
    return !message.isRequest && message.status >= 200 && message.callId === callId;
  } catch {
    return false;
  }
}

/** An MD5 Authorization (qop=auth) for `spec` with these credentials. */
export function authorization(spec: Pick<RequestSpec, 'method' | 'uri'>, c: Credentials): string {
  const nc = c.nc.toString(16).padStart(8, '0');
  const cnonce = hex(4);
  const response = digestResponse({ algorithm: 'MD5', ha1: digestHa1('MD5', c.username, c.realm, c.password), nonce: c.nonce, method: spec.method, uri: spec.uri, qop: 'auth', nc, cnonce });
  const opaque = c.opaque !== undefined ? `, opaque="${c.opaque}"` : '';
  return `Digest username="${c.username}", realm="${c.realm}", nonce="${c.nonce}", uri="${spec.uri}", response="${response}", algorithm=MD5, qop=auth, nc=${nc}, cnonce="${cnonce}"${opaque}`;
}

/** The Contact (and Expires) lines of a REGISTER from this client. */
export function contactLines(client: RawClient, user: string, expires = 600): string[] {
  return [`Contact: <sip:${user}@${client.host}:${client.port}>`, `Expires: ${expires}`];
}
