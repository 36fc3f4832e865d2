import type { ParseLimits } from '../message/scanner.js';
import type { Sink } from '../util/fifo.js';
import { parseListenAddress } from './address.js';
import type { StreamOptions } from './stream-transport.js';
import { TcpTransport } from './tcp-transport.js';
import { TlsTransport, type TlsOptions } from './tls-transport.js';
import { TransportError } from './transport-error.js';
import type { Transport, TransportEvent, Tuple } from './types.js';
import { UdpTransport } from './udp-transport.js';
import { WsTransport } from './ws-transport.js';

export interface CreateTransportOptions extends StreamOptions {
  sink: Sink<TransportEvent>;
  /** Certificate and trust for tls and wss. */
  tls?: TlsOptions;
  /** UDP parse limits. */
  limits?: ParseLimits;
}

/** A transport for a listen address (`udp:127.0.0.1:5060`, `tls:[::1]:5061`…), not yet started. */
export function createTransport(listen: string | Tuple, options: CreateTransportOptions): Transport {
  const { protocol, address, port } = typeof listen === 'string' ? parseListenAddress(listen) : listen;
  switch (protocol) {
    case 'udp':
      return new UdpTransport({ address, port, sink: options.sink, maxMessageSize: options.maxMessageSize, limits: options.limits });
    case 'tcp':
      return new TcpTransport({ ...options, address, port });
    case 'tls':
      if (!options.tls) throw new TransportError('TRANSPORT_TLS', 'a TLS transport needs a certificate and key');
      return new TlsTransport({ ...options, tls: options.tls, address, port });
    case 'ws':
    case 'wss':
      if (protocol === 'wss' && !options.tls) throw new TransportError('TRANSPORT_TLS', 'a WSS transport needs a certificate and key');
      return new WsTransport({ ...options, address, port, secure: protocol === 'wss' });
  }
}
