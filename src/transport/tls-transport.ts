import type { Server, Socket } from 'node:net';
import { checkServerIdentity, connect, createServer, rootCertificates, type PeerCertificate, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import { StreamTransport, type StreamTransportOptions } from './stream-transport.js';
import type { StreamConnection } from './stream-connection.js';
import { TransportError } from './transport-error.js';
import type { Tuple } from './types.js';

export interface TlsOptions extends SecureContextOptions {
  /** Verify the peer's certificate (default true for connections we open). */
  rejectUnauthorized?: boolean;
  /**
   * The name to verify every server certificate against (and send as SNI), whatever the target
   * says. Default: the target's `tlsDomain` (the SIP domain of the request, RFC 5922 §7.3), else
   * the target address.
   */
  servername?: string;
  /** Ask clients for a certificate (mutual TLS). */
  requestCert?: boolean;
  /**
   * With `ca`: true (default) trusts `ca` in addition to Node's built-in root certificates
   * (`tls.rootCertificates`); false trusts `ca` only (a private network). Without `ca`, the
   * built-in roots are used either way.
   */
  systemCa?: boolean;
}

export interface TlsTransportOptions extends StreamTransportOptions {
  tls: TlsOptions;
}

/** A target that names the SIP domain its certificate must prove (RFC 5922 §7.3). */
export interface TlsTarget extends Tuple {
  /** The host of the URI the request was routed by (Route or Request-URI), before DNS. */
  readonly tlsDomain?: string;
}

/**
 * SIP over TLS (RFC 3261 §26.2): `sips:` and `;transport=tls`. A connection this side opens
 * verifies the server's certificate chain and, per RFC 5922 §7.3, that the certificate names the
 * SIP domain the request is for (`target.tlsDomain`); an IP-literal domain is checked against the
 * certificate's IP subjectAltNames. A connection is reused for a domain only when the
 * certificate it presented names that domain too.
 */
export class TlsTransport extends StreamTransport {
  readonly protocol = 'tls' as const;
  private readonly tls: TlsOptions;
  /** The identity the next connectSocket must verify (set around the synchronous super.connect). */
  private connectingFor: string | undefined;
  /** Outbound connections: the identity each was opened for, and its socket (for its certificate). */
  private readonly outbound = new Map<number, { identity: string | undefined; socket: TLSSocket }>();
  /** The identity the connectSocket inside super.connect verifies, and the socket it made. */
  private pendingIdentity: string | undefined;
  private lastSocket: TLSSocket | undefined;

  constructor(options: TlsTransportOptions) {
    super('tls', options, true);
    this.tls = options.tls;
  }

  protected createServer(onSocket: (socket: Socket) => void): Server {
    const { servername: _servername, systemCa: _systemCa, ...context } = this.tls;
    const server = createServer({ ...context, ca: trustAnchors(this.tls), requestCert: this.tls.requestCert ?? false }, onSocket);
    // A client that fails the handshake must not stop the server.
    server.on('tlsClientError', () => undefined);
    return server;
  }

  override send(bytes: Buffer, target: Tuple, tid?: string): Promise<number | undefined> {
    const identity = this.identityFor(target);
    const tuple: Tuple = { protocol: target.protocol, address: target.address, port: target.port };
    if (identity !== undefined) {
      const found = this.connections.find(tuple);
      // RFC 5922 §7.3 for every request: a connection opened (or accepted) for another name is
      // not used unless its certificate names this domain too; a new connection is opened.
      if (found?.isOpen && !this.mayCarry(found, identity)) return this.sendOnNew(bytes, tuple, identity, tid);
    }
    // super.send finds or opens the connection synchronously, before its first await.
    this.connectingFor = identity;
    const sent = super.send(bytes, tuple, tid);
    this.connectingFor = undefined;
    return sent;
  }

  protected override connect(target: Tuple): StreamConnection {
    const identity = this.connectingFor;
    this.connectingFor = undefined;
    return this.openFor(target, identity);
  }

  protected connectSocket(target: Tuple, ready: () => void): Socket {
    const { requestCert: _requestCert, servername: _servername, systemCa: _systemCa, ...context } = this.tls;
    const identity = this.pendingIdentity ?? target.address;
    // SNI carries host names only (RFC 6066 §3).
    const sni = isIP(identity) === 0 ? identity : undefined;
    const socket = connect({
      ...context,
      ca: trustAnchors(this.tls),
      host: target.address,
      port: target.port,
      rejectUnauthorized: this.tls.rejectUnauthorized ?? true,
      ...(sni === undefined ? {} : { servername: sni }),
      // Called by Node after the chain verified; `host` is the SNI name or the address.
      checkServerIdentity: (_host, cert) => checkSipIdentity(identity, cert),
    });
    socket.once('secureConnect', ready);
    this.lastSocket = socket;
    return socket;
  }

  private openFor(target: Tuple, identity: string | undefined): StreamConnection {
    this.pendingIdentity = identity;
    try {
      const connection = super.connect(target);
      const socket = this.lastSocket;
      if (socket) {
        this.outbound.set(connection.id, { identity: identity?.toLowerCase(), socket });
        socket.once('close', () => this.outbound.delete(connection.id));
      }
      return connection;
    } finally {
      this.pendingIdentity = undefined;
      this.lastSocket = undefined;
    }
  }

  /** The name a connection to `target` must prove: the configured servername, the SIP domain, or the address. */
  private identityFor(target: Tuple): string | undefined {
    return this.tls.servername ?? (target as TlsTarget).tlsDomain;
  }

  /** May an open connection carry a request for `identity`? */
  private mayCarry(connection: StreamConnection, identity: string): boolean {
    const opened = this.outbound.get(connection.id);
    if (!opened) return false;
    if (opened.identity === identity.toLowerCase()) return true;
    if (opened.identity === undefined && identity === connection.remote.address) return true;
    // Still handshaking for another name: the certificate is not known yet.
    const cert = opened.socket.getPeerCertificate?.();
    if (!cert || Object.keys(cert).length === 0) return false;
    return checkSipIdentity(identity, cert) === undefined;
  }

  private async sendOnNew(bytes: Buffer, target: Tuple, identity: string, tid: string | undefined): Promise<number> {
    try {
      if (bytes.length > this.maxMessageSize) {
        throw new TransportError('TRANSPORT_TOO_LARGE', `${bytes.length} bytes is over the limit of ${this.maxMessageSize}`, target);
      }
      const connection = this.openFor(target, identity);
      await connection.write(bytes);
      return connection.id;
    } catch (error) {
      const failure = TransportError.fromSocketError(error, target);
      this.sink.push({ type: 'failure', tid, target, error: failure });
      throw failure;
    }
  }
}

/** What a TLS context trusts: `ca` with (default) or without Node's built-in roots; undefined = the built-in roots. */
function trustAnchors(options: TlsOptions): SecureContextOptions['ca'] {
  const ca = options.ca;
  if (ca === undefined) return undefined;
  if (options.systemCa === false) return ca;
  return [...rootCertificates, ...(Array.isArray(ca) ? ca : [ca])];
}

/**
 * The SIP domain identities a certificate carries (RFC 5922 §7.1): each subjectAltName URI of
 * scheme `sip` without a user part (its host), each DNS name that is not a wildcard, and — only
 * when there is no subjectAltName at all — the subject's CN. Lower-cased.
 */
export function sipDomainIdentities(cert: PeerCertificate): string[] {
  const names = altNames(cert.subjectaltname);
  if (names.length === 0) {
    const cn = cert.subject?.CN as string | string[] | undefined;
    const all = cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
    return all.filter((name) => /^[a-z0-9.-]+$/i.test(name)).map((name) => name.toLowerCase());
  }
  const identities: string[] = [];
  for (const { type, value } of names) {
    if (type === 'DNS') {
      if (!value.includes('*')) identities.push(value.toLowerCase());
    } else if (type === 'URI') {
      const match = /^sip:([^;?>]*)/i.exec(value);
      // "Implementations MUST NOT accept a SIP URI identity that contains a userpart."
      if (!match || match[1]!.includes('@')) continue;
      const host = match[1]!.replace(/:\d+$/, '');
      if (host !== '') identities.push(host.toLowerCase());
    }
  }
  return identities;
}

/**
 * RFC 5922 §7.2/§7.3: undefined when `cert` proves `identity` (a SIP domain, or an IP address,
 * checked against the IP subjectAltNames as Node does), else the error the handshake fails with.
 * Domains compare case-insensitively and whole: no suffix and no wildcard matches.
 */
export function checkSipIdentity(identity: string, cert: PeerCertificate): Error | undefined {
  const bare = identity.replace(/^\[|\]$/g, '');
  if (isIP(bare) !== 0) return checkServerIdentity(bare, cert);
  const wanted = bare.toLowerCase().replace(/\.$/, '');
  const identities = sipDomainIdentities(cert);
  if (identities.some((name) => name.replace(/\.$/, '') === wanted)) return undefined;
  const error = new Error(
    `the certificate does not name the SIP domain ${wanted} (RFC 5922): it names ${identities.length > 0 ? identities.join(', ') : 'no SIP domain'}`,
  ) as Error & { code: string; reason: string; host: string };
  error.code = 'ERR_TLS_CERT_ALTNAME_INVALID';
  error.reason = error.message;
  error.host = wanted;
  return error;
}

/** `DNS:a, URI:sip:b, IP Address:1.2.3.4` (values with a comma come JSON-quoted) → entries. */
function altNames(text: string | undefined): Array<{ type: string; value: string }> {
  const entries: Array<{ type: string; value: string }> = [];
  if (!text) return entries;
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === ',') i++;
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(i, j + 1)) as string;
      } catch {
        value = text.slice(i + 1, j);
      }
      i = j + 1;
    } else {
      const comma = text.indexOf(', ', i);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(i, end);
      i = end;
    }
    entries.push({ type, value });
  }
  return entries;
}
