import { channel } from 'node:diagnostics_channel';
import { createResponse } from '../message/builder.js';
import type { SipMessage } from '../message/sip-message.js';
import { DEFAULT_BODY_TYPES, KNOWN_METHODS, Refusal, uasVerdict, type ValidationOptions } from '../message/validate.js';
import type { ServerTransaction } from '../transaction/server-transaction.js';
import type { InboundRequest } from '../transaction/transaction-layer.js';
import { InboundServerRequest, type ServerRequest, type UasProfile } from './transaction-user.js';
import type { TuSelector } from './tu-selector.js';

/** What a TU without a profile is checked against: the stack's defaults alone. */
const NO_PROFILE: UasProfile = Object.freeze({});

/** Requests the UAS core answered itself: `{ request, status, detail }`. */
const rejectChannel = channel('parley:uas:reject');

export interface UasCoreOptions {
  /** What a TU without a profile of its own is checked against (the stack's `validation`). */
  defaults: ValidationOptions;
  /** Retry-After seconds on 503s. */
  retryAfterSeconds: number;
  /** True while the stack stops: new requests get 503. */
  stopping(): boolean;
}

/**
 * The UAS core (RFC 3261 §8.2) between the transaction layer and the TUs: it picks the TU, runs
 * §8.2's checks in the RFC's order against what that TU supports (405/501 → 416 → 482 → 420 →
 * 415), and answers what fails *through the request's server transaction* — so a 415 to an
 * INVITE is retransmitted on Timer G and its ACK absorbed like any final response (§17.2.1).
 * What passes waits in the TU's queue, where overload is refused with 503 (ARCHITECTURE.md).
 */
export class UasCore {
  /** §8.2.2.2: ongoing server transactions of requests without a To tag, by From tag, Call-ID and CSeq. */
  private readonly ongoing = new Map<string, ServerTransaction>();

  constructor(
    private readonly tus: TuSelector,
    private readonly options: UasCoreOptions,
  ) {}

  receive(inbound: InboundRequest): void {
    const request = new InboundServerRequest(inbound);
    const message = inbound.message;
    const tx = inbound.transaction;
    // An ACK to a 2xx belongs to no transaction and is never answered (§17.1.1.3); a CANCEL was
    // answered by the transaction layer (§9.2). Both go straight to the TU that owns the dialog.
    if (!tx || message.method === 'CANCEL') {
      this.tus.select(message)?.queue.push(request, 'other');
      return;
    }
    if (this.options.stopping()) return this.refuse(request, 503, 'the stack is stopping', { 'Retry-After': String(this.options.retryAfterSeconds) });
    const entry = this.tus.select(message);
    if (!entry) {
      // §8.2.1 with no TU at all for it: 501 for a method nobody here knows, 405 with Allow for a known one.
      const status = KNOWN_METHODS.includes(message.method) ? 405 : 501;
      return this.refuse(request, status, 'no TU takes this method', { Allow: this.tus.allowedMethods().join(', ') });
    }
    const tu = entry.tu;
    const profile = typeof tu.profile === 'function' ? tu.profile(message) : (tu.profile ?? NO_PROFILE);
    const verdict = uasVerdict(message, this.checksFor(profile), (m) => this.merged(m, tx));
    if (verdict.action === 'reply') {
      const headers: Record<string, string[]> = {};
      for (const [name, value] of verdict.headers) (headers[name] ??= []).push(value);
      this.refuse(request, verdict.status, verdict.detail, headers, verdict.reason);
      tu.refused?.(message, verdict.status);
      return;
    }
    // Congestion (ARCHITECTURE.md): new requests wait in the TU's TimeLimitFifo; when its oldest
    // has waited too long, refuse with 503 + Retry-After.
    if (!entry.queue.push(request, 'request')) {
      this.refuse(request, 503, 'the TU is overloaded', { 'Retry-After': String(this.options.retryAfterSeconds) });
      tu.refused?.(message, 503);
    }
  }

  /** A server transaction ended: it no longer takes part in merged-request detection. */
  terminated(tx: ServerTransaction): void {
    const key = mergeKey(tx.request);
    if (key !== undefined && this.ongoing.get(key) === tx) this.ongoing.delete(key);
  }

  /** Ongoing requests the core remembers for §8.2.2.2 (for tests and leak checks). */
  get ongoingCount(): number {
    return this.ongoing.size;
  }

  /**
   * §8.2.2.2: "If the request has no tag in the To header field, the UAS core MUST check the
   * request against ongoing transactions. If the From tag, Call-ID, and CSeq exactly match those
   * associated with an ongoing transaction, but the request does not match that transaction…,
   * the UAS core SHOULD generate a 482 (Loop Detected) response" — a forked copy arriving by
   * another path. Otherwise the request becomes the one on record.
   */
  private merged(message: SipMessage, tx: ServerTransaction): Refusal | undefined {
    const key = mergeKey(message);
    if (key === undefined) return undefined;
    const existing = this.ongoing.get(key);
    if (existing && existing !== tx && !existing.terminated) return new Refusal(482, 'a merged request: this one arrived on another branch already');
    this.ongoing.set(key, tx);
    return undefined;
  }

  /** A profile over the stack's defaults, merged once per profile object (this runs for every request). */
  private checksFor(profile: UasProfile): ValidationOptions {
    let checks = this.profileChecks.get(profile);
    if (checks) return checks;
    const defaults = this.options.defaults;
    checks = {
      methods: profile.methods ?? defaults.methods,
      supportedSchemes: profile.schemes ?? defaults.supportedSchemes,
      supportedExtensions: profile.extensions ?? defaults.supportedExtensions,
      tuChecksRequire: profile.tuChecksRequire ?? defaults.tuChecksRequire,
      acceptedBodyTypes: profile.bodyTypes ?? defaults.acceptedBodyTypes ?? DEFAULT_BODY_TYPES,
    };
    this.profileChecks.set(profile, checks);
    return checks;
  }

  /** checksFor's results; a profile a TU drops is collected with its entry. */
  private readonly profileChecks = new WeakMap<UasProfile, ValidationOptions>();

  private refuse(request: ServerRequest, status: number, detail: string, headers: Record<string, string | string[]>, reason?: string): void {
    if (rejectChannel.hasSubscribers) rejectChannel.publish({ request: request.message, status, detail });
    request.send(createResponse(request.message, status, reason, { headers }));
  }
}

/** From tag, Call-ID and CSeq of a request outside a dialog; undefined inside one (or for ACK/CANCEL). */
function mergeKey(message: SipMessage): string | undefined {
  if (message.method === 'ACK' || message.method === 'CANCEL') return undefined;
  if (message.to.tag !== undefined) return undefined;
  const cseq = message.cseq;
  return `${message.from.tag ?? ''}\n${message.callId}\n${cseq.seq} ${cseq.method}`;
}
