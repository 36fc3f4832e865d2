import { connect, createServer, type Server, type Socket } from 'node:net';
import { StreamTransport, type StreamTransportOptions } from './stream-transport.js';
import type { Tuple } from './types.js';

/** SIP over TCP (RFC 3261 §18): reliable, framed by Content-Length. */
export class TcpTransport extends StreamTransport {
  readonly protocol = 'tcp' as const;

  constructor(options: StreamTransportOptions) {
    super('tcp', options, false);
  }

  protected createServer(onSocket: (socket: Socket) => void): Server {
    return createServer({ noDelay: true }, onSocket);
  }

  protected connectSocket(target: Tuple, ready: () => void): Socket {
    const socket = connect({ host: target.address, port: target.port, noDelay: true });
    socket.once('connect', ready);
    return socket;
  }
}
