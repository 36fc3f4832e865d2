import type { Server, Socket } from 'node:net';
import { connect, createServer, type SecureContextOptions } from 'node:tls';
import { isIP } from 'node:net';
import { StreamTransport, type StreamTransportOptions } from './stream-transport.js';
import type { Tuple } from './types.js';

export interface TlsOptions extends SecureContextOptions {
  /** Verify the peer's certificate (default true for connections we open). */
  rejectUnauthorized?: boolean;
  /** The name to verify the server certificate against (SNI); default the target address. */
  servername?: string;
  /** Ask clients for a certificate (mutual TLS). */
  requestCert?: boolean;
}

export interface TlsTransportOptions extends StreamTransportOptions {
  tls: TlsOptions;
}

/** SIP over TLS (RFC 3261 §26.2): `sips:` and `;transport=tls`. */
export class TlsTransport extends StreamTransport {
  readonly protocol = 'tls' as const;
  private readonly tls: TlsOptions;

  constructor(options: TlsTransportOptions) {
    super('tls', options, true);
    this.tls = options.tls;
  }

  protected createServer(onSocket: (socket: Socket) => void): Server {
    const { servername: _servername, ...context } = this.tls;
    const server = createServer({ ...context, requestCert: this.tls.requestCert ?? false }, onSocket);
    // A client that fails the handshake must not stop the server.
    server.on('tlsClientError', () => undefined);
    return server;
  }

  protected connectSocket(target: Tuple, ready: () => void): Socket {
    const { requestCert: _requestCert, servername, ...context } = this.tls;
    // SNI carries host names only (RFC 6066 §3); an IP target is checked against the
    // certificate's IP subjectAltName by Node's default identity check.
    const name = servername ?? (isIP(target.address) ? undefined : target.address);
    const socket = connect({
      ...context,
      host: target.address,
      port: target.port,
      rejectUnauthorized: this.tls.rejectUnauthorized ?? true,
      ...(name === undefined ? {} : { servername: name }),
    });
    socket.once('secureConnect', ready);
    return socket;
  }
}
