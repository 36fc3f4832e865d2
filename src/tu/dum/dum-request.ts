import type { SipMessage } from '../../message/sip-message.js';
import type { ClientRequest } from '../../outgoing-request.js';
import { localFailure } from '../../transaction/client-transaction.js';
import type { Target } from '../../transport/transport-selector.js';
import type { DigestClient } from './digest-client.js';

/** RFC 3261 §22.2: challenges answered for one request before its 401/407 goes to the application. */
const MAX_AUTH_ROUNDS = 3;

export interface RequestHooks {
  onProvisional?(response: SipMessage): void;
  /** RFC 6026: another 2xx to an INVITE (a retransmission, or another fork). */
  on2xx?(response: SipMessage): void;
  /** The request was sent again with credentials (CSeq + 1): dialogs and registrations follow it. */
  onResend?(request: SipMessage): void;
}

/**
 * One request of a usage, with RFC 3261 §22.2's challenge loop: a 401/407 for which the digest
 * client has credentials is answered by sending the request again with them (a new transaction,
 * CSeq + 1); the usage sees provisional responses and the final answer of the last attempt only.
 */
export class DumRequest {
  readonly final: Promise<SipMessage>;
  private sent: SipMessage;
  private current: ClientRequest | undefined;
  private cancelled = false;

  constructor(
    request: SipMessage,
    private readonly send: (request: SipMessage) => ClientRequest,
    private readonly digest: DigestClient,
    hooks: RequestHooks = {},
  ) {
    this.sent = request;
    this.final = this.run(hooks);
  }

  /** The request as last sent (with credentials after a challenge). */
  get request(): SipMessage {
    return this.sent;
  }

  /** Where the current attempt went (RFC 3263's choice), once known. */
  get target(): Target | undefined {
    return this.current?.target;
  }

  /** INVITE only: CANCELs the current attempt (§9.1) and stops answering challenges. */
  cancel(): void {
    this.cancelled = true;
    this.current?.cancel();
  }

  private async run(hooks: RequestHooks): Promise<SipMessage> {
    for (let round = 0; ; round++) {
      let client: ClientRequest;
      try {
        client = this.send(this.sent);
      } catch (error) {
        // The stack is stopping, or the request cannot be sent at all: a local 503 (§8.1.3.1).
        return localFailure(this.sent, 503, error instanceof Error ? error.message : String(error));
      }
      this.current = client;
      if (hooks.onProvisional) client.onProvisional(hooks.onProvisional);
      if (hooks.on2xx) client.on2xx(hooks.on2xx);
      if (this.cancelled) client.cancel();
      const response = await client.final;
      const challenged = response.status === 401 || response.status === 407;
      if (challenged && !this.cancelled && round < MAX_AUTH_ROUNDS) {
        const next = this.digest.authorize(this.sent, response);
        if (next) {
          this.sent = next;
          hooks.onResend?.(next);
          continue;
        }
      }
      return response;
    }
  }
}
