import type { NameAddr } from '../../message/name-addr.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { Tuple } from '../../transport/types.js';
import type { ServerRequest } from '../transaction-user.js';

/**
 * A handler's decision about a request: a status, a status with a reason and headers, or a whole
 * response built for it (a digest challenge from `DigestAuthenticator.authenticate`).
 */
export type Answer = number | { status: number; reason?: string; headers?: Record<string, string | string[]> } | SipMessage;

/** RFC 3428: what `sendMessage` sends. */
export interface MessageOptions {
  /** The Request-URI and To. */
  to: string;
  /** Sent as text/plain;charset=utf-8. */
  text?: string;
  /** Any content type (RFC 3428 §8: MESSAGE bodies are MIME). */
  body?: Uint8Array | string;
  contentType?: string;
  headers?: Record<string, string | string[]>;
  /** Default the DUM's AOR. */
  from?: string;
}

/** A pager-mode MESSAGE that arrived (RFC 3428 §7). */
export class IncomingMessage {
  readonly request: SipMessage;
  readonly source: Tuple;

  constructor(private readonly server: ServerRequest) {
    this.request = server.message;
    this.source = server.source;
  }

  get from(): NameAddr {
    return this.request.from;
  }

  get to(): NameAddr {
    return this.request.to;
  }

  get contentType(): string | undefined {
    return this.request.contentType;
  }

  get body(): Buffer {
    return this.request.body;
  }

  /** The body decoded as UTF-8. */
  get text(): string {
    return this.request.body.toString('utf8');
  }

  /** The stream connection it came on (undefined over UDP). */
  get connectionId(): number | undefined {
    return this.server.connectionId;
  }
}
