import type { LocalContact } from '../../message/local-contact.js';
import { createDialogRequest, type RoutedRequest } from '../../message/builder.js';
import type { NameAddr } from '../../message/name-addr.js';
import type { SipMessage } from '../../message/sip-message.js';
import type { SipUri } from '../../message/uri.js';
import { DumError } from './dum-error.js';

/** Requests that refresh the remote target (RFC 3261 §12.2, RFC 6665 §4.1.2.2/§4.2.1.2, RFC 3311). */
const TARGET_REFRESH = new Set(['INVITE', 'UPDATE', 'SUBSCRIBE', 'NOTIFY']);

/** §8.1.1.5: an initial CSeq "MUST be less than 2**31". */
const MAX_INITIAL_CSEQ = 2 ** 31 - 1;

export interface DialogRequestInit {
  body?: Uint8Array | string;
  contentType?: string;
  headers?: Record<string, string | number | ReadonlyArray<string | number>>;
  /** Our Contact, for target-refresh requests (§12.2.1.1: they carry one); a LocalContact for the transport to fill. */
  contact?: string | LocalContact;
}

/**
 * The state RFC 3261 §12 keeps for a dialog: its id (Call-ID, local tag, remote tag), both URIs,
 * both CSeq counters, the remote target and the route set — and the requests built from them
 * (§12.2.1.1). Usages (sessions, subscriptions) each own one.
 */
export class Dialog {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  /** From of our requests (without its tag). */
  readonly localUri: NameAddr;
  /** To of our requests (without its tag). */
  readonly remoteUri: NameAddr;
  /** Undefined ("empty", §12.1.1) until we send a request in the dialog. */
  localSeq: number | undefined;
  /** Undefined until the remote sends a request in the dialog (§12.1.2). */
  remoteSeq: number | undefined;
  remoteTarget: SipUri;
  /** Route values, in the order our requests carry them. */
  readonly routeSet: readonly NameAddr[];
  /** We sent the request that made the dialog (we own the Call-ID, §14.1). */
  readonly isUac: boolean;
  readonly secure: boolean;

  private constructor(init: {
    callId: string;
    localTag: string;
    remoteTag: string;
    localUri: NameAddr;
    remoteUri: NameAddr;
    localSeq: number | undefined;
    remoteSeq: number | undefined;
    remoteTarget: SipUri;
    routeSet: NameAddr[];
    isUac: boolean;
    secure: boolean;
  }) {
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.localUri = init.localUri;
    this.remoteUri = init.remoteUri;
    this.localSeq = init.localSeq;
    this.remoteSeq = init.remoteSeq;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.isUac = init.isUac;
    this.secure = init.secure;
  }

  /**
   * §12.1.2: the UAC side, from our request and a response that carries a To tag (a 2xx or a
   * 1xx). The route set is the response's Record-Route in reverse; the remote target its Contact.
   * Also used when a NOTIFY creates the dialog before the SUBSCRIBE's 2xx (RFC 6665 §4.1.2.4): then
   * `response` is that NOTIFY, whose From carries the remote tag and whose Record-Route is taken
   * in order (it is a request from the remote side).
   */
  static asUac(request: SipMessage, answer: SipMessage): Dialog {
    const fromAnswer = answer.isRequest ? answer.from : answer.to;
    const remoteTag = fromAnswer.tag;
    const localTag = request.from.tag;
    if (remoteTag === undefined || localTag === undefined) throw new DumError('DUM_NO_DIALOG', 'a dialog needs tags on both sides');
    const recordRoute = answer.recordRoute.map((r) => r.clone());
    return new Dialog({
      callId: request.callId,
      localTag,
      remoteTag,
      localUri: withoutTag(request.from),
      remoteUri: withoutTag(request.to),
      localSeq: request.cseq.seq,
      remoteSeq: answer.isRequest ? answer.cseq.seq : undefined,
      remoteTarget: contactOf(answer, request.requestUri),
      routeSet: answer.isRequest ? recordRoute : recordRoute.reverse(),
      isUac: true,
      secure: request.requestUri.scheme === 'sips',
    });
  }

  /** §12.1.1: the UAS side, from the request that makes the dialog and the tag we put in our To. */
  static asUas(request: SipMessage, localTag: string): Dialog {
    const remoteTag = request.from.tag;
    if (remoteTag === undefined) throw new DumError('DUM_NO_DIALOG', 'the request has no From tag');
    return new Dialog({
      callId: request.callId,
      localTag,
      remoteTag,
      localUri: withoutTag(request.to),
      remoteUri: withoutTag(request.from),
      localSeq: undefined,
      remoteSeq: request.cseq.seq,
      remoteTarget: contactOf(request, request.from.uri),
      routeSet: request.recordRoute.map((r) => r.clone()),
      isUac: false,
      secure: request.requestUri.scheme === 'sips',
    });
  }

  /** The key the DUM files the dialog under. */
  get key(): string {
    return dialogKey(this.callId, this.localTag, this.remoteTag);
  }

  /**
   * §12.2.2: a request from the remote side. Lower CSeq than the last one → out of order (the
   * caller answers 500); otherwise the remote CSeq moves on and a target-refresh request
   * updates the remote target.
   */
  receive(request: SipMessage): 'ok' | 'out-of-order' {
    const seq = request.cseq.seq;
    if (request.method === 'ACK' || request.method === 'CANCEL') return 'ok';
    if (this.remoteSeq !== undefined && seq < this.remoteSeq) return 'out-of-order';
    this.remoteSeq = seq;
    if (TARGET_REFRESH.has(request.method)) this.refreshTarget(request);
    return 'ok';
  }

  /** §12.2.1.2: a 2xx to our target-refresh request names the new remote target. */
  refreshTarget(message: SipMessage): void {
    const contact = message.contact[0];
    if (contact) this.remoteTarget = contact.uri.clone();
  }

  /** The next CSeq number for a request of ours (§12.2.1.1: "incremented by one"). */
  nextSeq(): number {
    this.localSeq = this.localSeq === undefined ? 1 + Math.floor(Math.random() * (MAX_INITIAL_CSEQ / 2)) : this.localSeq + 1;
    return this.localSeq;
  }

  /**
   * §12.2.1.1: a request inside the dialog, from `createDialogRequest`: To/From/Call-ID from the
   * dialog, CSeq one more than the last (or `seq`), Request-URI and Route from the route set and
   * remote target. One routed to a strict router carries its next hop (its Request-URI, §8.1.2),
   * which the DUM hands to the stack.
   */
  createRequest(method: string, init: DialogRequestInit = {}, seq?: number): RoutedRequest {
    return createDialogRequest(this, {
      method,
      cseq: seq ?? this.nextSeq(),
      contact: init.contact,
      headers: init.headers,
      body: init.body,
      contentType: init.contentType,
    });
  }

  /**
   * §13.2.2.4: the ACK for a 2xx — built like a request in the dialog but with the INVITE's CSeq
   * number, a new branch, and the INVITE's credentials (§22.1: the ACK carries what the INVITE did).
   */
  createAck(invite: SipMessage): RoutedRequest {
    const ack = this.createRequest('ACK', {}, invite.cseq.seq);
    for (const name of ['authorization', 'proxy-authorization']) {
      for (const value of invite.headers(name)) ack.addHeader(name === 'authorization' ? 'Authorization' : 'Proxy-Authorization', value);
    }
    return ack;
  }
}

export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\n${localTag}\n${remoteTag}`;
}

function withoutTag(address: NameAddr): NameAddr {
  const copy = address.clone();
  copy.tag = undefined;
  return copy;
}

/** The remote target: the message's Contact URI (§12.1.1 / §12.1.2), else `fallback`. */
function contactOf(message: SipMessage, fallback: SipUri): SipUri {
  const contact = message.contact[0];
  return (contact ? contact.uri : fallback).clone();
}
