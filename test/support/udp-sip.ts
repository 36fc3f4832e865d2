// A raw UDP SIP peer for interop tests: a node:dgram socket that records every datagram it
// receives (parsed when it is SIP), sends bytes, and asks a server "are you there and done with
// what I sent before?" with an OPTIONS that it retransmits until answered.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { parseMessage, type SipMessage } from '../../src/index.js';
import { sip } from './sip-bytes.js';

export interface Received {
  /** performance.now() at arrival. */
  at: number;
  bytes: Buffer;
  /** Undefined when the datagram is not SIP. */
  message: SipMessage | undefined;
  from: { address: string; port: number };
  /** Which endpoint took it (for peers that collect on several sockets). */
  endpoint: string;
}

export class UdpSipPeer {
  readonly received: Received[] = [];
  private readonly socket: Socket;
  private waiters: Array<() => void> = [];
  private bound = { address: '', port: 0 };

  private constructor(readonly label: string) {
    this.socket = createSocket('udp4');
    this.socket.on('message', (bytes, rinfo) => {
      let message: SipMessage | undefined;
      try {
        message = parseMessage(bytes);
      } catch {
        message = undefined;
      }
      this.received.push({ at: performance.now(), bytes, message, from: { address: rinfo.address, port: rinfo.port }, endpoint: this.label });
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    });
  }

  /** Binds a peer on host:port (0 = any free port); rejects with the bind error (EADDRINUSE…). */
  static async bind(host: string, port = 0, label = `udp:${host}:${port}`): Promise<UdpSipPeer> {
    const peer = new UdpSipPeer(label);
    await new Promise<void>((resolve, reject) => {
      peer.socket.once('error', reject);
      peer.socket.bind(port, host, () => {
        peer.socket.off('error', reject);
        resolve();
      });
    });
    const address = peer.socket.address();
    peer.bound = { address: address.address, port: address.port };
    return peer;
  }

  get address(): string {
    return this.bound.address;
  }

  get port(): number {
    return this.bound.port;
  }

  send(bytes: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(bytes, port, host, (error) => (error ? reject(error) : resolve())));
  }

  /** Resolves with the first received item (from `fromIndex` on) that `match` accepts, or undefined after `timeoutMs`. */
  async waitFor(match: (r: Received) => boolean, timeoutMs: number, fromIndex = 0): Promise<Received | undefined> {
    const deadline = performance.now() + timeoutMs;
    let checked = fromIndex;
    for (;;) {
      for (; checked < this.received.length; checked++) if (match(this.received[checked]!)) return this.received[checked];
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

export function token(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

/** A well-formed OPTIONS whose response comes back to `localPort` (rport). */
export function optionsRequest(localHost: string, localPort: number, remote: { host: string; port: number }, callId = `ping-${token()}`): Buffer {
  return sip([
    `OPTIONS sip:ping@${remote.host}:${remote.port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${localHost}:${localPort};branch=z9hG4bK-${token()};rport`,
    'Max-Forwards: 70',
    `From: <sip:probe@${localHost}:${localPort}>;tag=${token(4)}`,
    `To: <sip:ping@${remote.host}:${remote.port}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
  ]);
}

/**
 * Sends an OPTIONS from `peer` to host:port and resolves with its final response; the same bytes
 * (same branch) are sent again every `retransmitMs` (RFC 3261 Timer E, not doubled) until it comes
 * or `timeoutMs` passes (then undefined).
 */
export async function ping(peer: UdpSipPeer, host: string, port: number, timeoutMs = 5000, retransmitMs = 500): Promise<SipMessage | undefined> {
  const callId = `ping-${token()}`;
  const bytes = optionsRequest(peer.address, peer.port, { host, port }, callId);
  const from = peer.received.length;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    await peer.send(bytes, port, host);
    const left = deadline - performance.now();
    if (left <= 0) return undefined;
    const got = await peer.waitFor(
      (r) => r.message !== undefined && !r.message.isRequest && r.message.status >= 200 && safeCallId(r.message) === callId,
      Math.min(retransmitMs, left),
      from,
    );
    if (got) return got.message;
  }
}

/** The Call-ID, or undefined when the message has none readable. */
export function safeCallId(message: SipMessage): string | undefined {
  try {
    return message.callId;
  } catch {
    return undefined;
  }
}
