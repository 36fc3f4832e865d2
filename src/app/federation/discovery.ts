import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'eventemitter3';
import { generateBranch, generateCallId, generateTag } from '../../message/builder.js';
import { parseMessage } from '../../message/parse-message.js';
import type { DiscoveryConfig } from '../server/server-config.js';
import { formatHello, parseHello, type Hello } from './documents.js';

export interface DiscoveryEvents {
  /** Another server announced itself. */
  hello: [hello: Hello];
}

/** The header that carries a HELLO's identity (docs/federation.md "Discovery"). */
const HELLO_HEADER = 'Parley-Hello';

/**
 * Seed 002's HELLO on SIP's multicast group (RFC 3261 §10.2.6 names 224.0.1.75 for multicast
 * registration): every `intervalMs` an OPTIONS datagram to the group carrying who we are.
 * Servers that hear it answer by linking to us (the unicast WELCOME is their SUBSCRIBE).
 */
export class Discovery extends EventEmitter<DiscoveryEvents> {
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: DiscoveryConfig,
    private readonly hello: () => Hello,
  ) {
    super();
  }

  /** Joins the group and announces at once, then every interval. */
  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    this.socket = socket;
    socket.on('message', (data) => this.onDatagram(data));
    // A bad datagram or a send that fails must not take the server down: discovery is best effort.
    socket.on('error', () => undefined);
    // Bound to the group address (not the wildcard), so it never collides with a SIP listener on the same port.
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.config.port, this.config.group, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.addMembership(this.config.group, this.config.interface);
    socket.setMulticastInterface(this.config.interface);
    socket.setMulticastLoopback(true);
    socket.setMulticastTTL(1);
    this.announce();
    this.timer = setInterval(() => this.announce(), this.config.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    try {
      this.socket?.close();
    } catch {
      // Already closed.
    }
    this.socket = undefined;
  }

  /** One HELLO to the group. */
  announce(): void {
    const socket = this.socket;
    if (!socket) return;
    const me = this.hello();
    const { group, port } = this.config;
    const text =
      `OPTIONS sip:${group} SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP ${this.config.interface}:${port};branch=${generateBranch()}\r\n` +
      `Max-Forwards: 1\r\n` +
      `From: <sip:parley@${me.server}>;tag=${generateTag()}\r\n` +
      `To: <sip:${group}>\r\n` +
      `Call-ID: ${generateCallId()}\r\n` +
      `CSeq: 1 OPTIONS\r\n` +
      `${HELLO_HEADER}: ${formatHello(me)}\r\n` +
      `Content-Length: 0\r\n\r\n`;
    socket.send(text, port, group);
  }

  private onDatagram(data: Buffer): void {
    let hello: Hello;
    try {
      const message = parseMessage(data);
      const header = message.header(HELLO_HEADER);
      if (!message.isRequest || message.method !== 'OPTIONS' || header === undefined) return;
      hello = parseHello(header);
    } catch {
      return; // not a HELLO: someone else's traffic on the group
    }
    if (hello.server === this.hello().server) return; // our own, looped back
    this.emit('hello', hello);
  }
}
