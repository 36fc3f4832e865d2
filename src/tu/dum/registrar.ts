import { wallClockOf } from '../../util/wall-clock.js';
import { EventEmitter } from 'eventemitter3';
import { createResponse } from '../../message/builder.js';
import type { NameAddr } from '../../message/name-addr.js';
import { formatParams } from '../../message/params.js';
import type { SipMessage } from '../../message/sip-message.js';
import { parseUri, type SipUri } from '../../message/uri.js';
import type { TimerHandle } from '../../util/clock.js';
import type { ServerRequest } from '../transaction-user.js';
import { unquoteInstance } from './client-registration.js';
import { DUM_EXTENSIONS, type DialogUsageManager } from './dialog-usage-manager.js';
import type { RequestAuthenticator } from './digest-authenticator.js';
import type { LocationStore, StoredBinding } from './location-store.js';
import { sameUri } from './uri-equality.js';

export interface RegistrarOptions {
  /** Domains served (Request-URI and To host, case-insensitive). */
  domains: string[];
  store: LocationStore;
  /** A `DigestAuthenticator`, or one that picks the realm per request. Without one, nobody is asked for credentials. */
  authenticator?: RequestAuthenticator;
  /**
   * May `username`, authenticated in `realm`, register `aor`? Default: the AOR's user is the
   * username and, when the realm is one of `domains`, the AOR's host is that realm (RFC 3261
   * §10.3 step 6: the account is user and domain, so alice of one domain never binds alice of
   * another); a realm that names no served domain (one realm for all) checks the user only.
   */
  authorize?: (username: string, aor: string, realm: string) => boolean | Promise<boolean>;
  /** Default 60 s: shorter (and under an hour, not 0) → 423. */
  minExpires?: number;
  /** Default 86,400 s: longer is lowered to it. */
  maxExpires?: number;
  /** Default 3,600 s: for contacts with no expires parameter in a request with no Expires. */
  defaultExpires?: number;
}

export interface RegistrarEvents {
  /** An AOR's bindings after a change (a REGISTER, an expiry, a failed flow). */
  bindings: [aor: string, bindings: StoredBinding[]];
  expired: [aor: string, binding: StoredBinding];
}

/** A REGISTER that must fail as a whole (§10.3: "the update MUST be aborted and the request fails"). */
class Refused {
  constructor(
    readonly status: number,
    readonly reason?: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

/**
 * A registrar (RFC 3261 §10.3, RFC 5626 §6, RFC 3327): takes REGISTERs through its DUM, runs
 * §10.3's steps in their order, keeps bindings in a LocationStore, and answers with every
 * current binding. Requests for one AOR run one at a time, so each sees the last one's result.
 */
export class Registrar extends EventEmitter<RegistrarEvents> {
  private readonly domains: Set<string>;
  private readonly minExpires: number;
  private readonly maxExpires: number;
  private readonly defaultExpires: number;
  private readonly perAor = new Map<string, Promise<unknown>>();
  /** Flows bindings were registered over, for RFC 5626 §6's "flow failed" removals. */
  private readonly flows = new Map<number, Set<string>>();
  private readonly expiryTimers = new Map<string, TimerHandle>();
  private readonly stopWatchingFlows: () => void;

  constructor(
    private readonly dum: DialogUsageManager,
    private readonly options: RegistrarOptions,
  ) {
    super();
    this.domains = new Set(options.domains.map((d) => d.toLowerCase()));
    this.minExpires = options.minExpires ?? 60;
    this.maxExpires = options.maxExpires ?? 86_400;
    this.defaultExpires = options.defaultExpires ?? 3600;
    dum.onRegister((request) => this.receive(request));
    // RFC 5626 §6: a binding registered over an outbound flow ends with the flow.
    this.stopWatchingFlows = dum.stack.onFlowEnded((flow) => void this.flowFailed(flow.connectionId, true));
  }

  /** The current bindings of an AOR (any URI of it: parameters are dropped, §10.3 step 5). */
  async lookup(uri: SipUri | string): Promise<StoredBinding[]> {
    const aor = canonicalAor(typeof uri === 'string' ? parseUri(uri, 'to') : uri);
    const now = this.dum.clock.now();
    return (await this.options.store.get(aor)).filter((b) => b.expiresAt > now);
  }

  /**
   * RFC 5626 §6: the flow with this connection id died; its bindings go. With `outboundOnly`,
   * only those registered with a reg-id (the others may still be reached at their Contact).
   */
  async flowFailed(connectionId: number, outboundOnly = false): Promise<void> {
    const aors = this.flows.get(connectionId);
    if (!aors) return;
    this.flows.delete(connectionId);
    await Promise.all(
      [...aors].map((aor) =>
        this.serialized(aor, async () => {
          const now = this.dum.clock.now();
          const before = (await this.options.store.get(aor)).filter((b) => b.expiresAt > now);
          const after = before.filter((b) => b.flow?.connectionId !== connectionId || (outboundOnly && b.regId === undefined));
          if (after.length === before.length) return;
          await this.options.store.put(aor, after);
          this.emit('bindings', aor, after);
        }),
      ),
    );
  }

  /** Stops watching flows and expiry timers (the bindings stay in the store). */
  close(): void {
    this.stopWatchingFlows();
    for (const timer of this.expiryTimers.values()) timer.cancel();
    this.expiryTimers.clear();
  }

  private async receive(request: ServerRequest): Promise<void> {
    const message = request.message;
    try {
      // §10.3 step 1: "…whether it has access to bindings for the domain identified in the Request-URI".
      if (!this.serves(message.requestUri.host)) throw new Refused(404, 'Domain Not Served');
      // Step 2: "…the registrar… MUST process the Require header field values as described for UASs".
      const unsupported = message.require.filter((tag) => !DUM_EXTENSIONS.includes(tag));
      if (unsupported.length > 0) throw new Refused(420, undefined, { Unsupported: unsupported.join(', ') });
      // Step 3: "A registrar SHOULD authenticate the UAC".
      let username: string | undefined;
      let realm = '';
      const authenticator = this.options.authenticator;
      if (authenticator) {
        const outcome = await authenticator.authenticate(message, { source: request.source });
        if (!outcome.ok) {
          request.send(outcome.response);
          return;
        }
        username = outcome.username;
        realm = outcome.realm;
      }
      const to = message.to.uri;
      const aor = canonicalAor(to);
      // Step 4: "…the registrar SHOULD determine if the authenticated user is authorized to modify
      // registrations for this address-of-record".
      if (username !== undefined && !(await this.mayRegister(username, realm, aor, to))) throw new Refused(403, 'Not Your Address');
      // Step 5: "If the address-of-record in the To header field… is not valid for the domain in
      // the Request-URI, the registrar MUST send a 404".
      if (!this.serves(to.host)) throw new Refused(404, 'Not Found');
      await this.serialized(aor, () => this.update(request, aor));
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      const headers = Object.keys(error.headers).length > 0 ? error.headers : undefined;
      this.dum.answer(request, error.status, error.reason, headers);
    }
  }

  /** Steps 6–8 for one AOR: compute the new set, store it whole, answer with it. */
  private async update(request: ServerRequest, aor: string): Promise<void> {
    const message = request.message;
    const now = this.dum.clock.now();
    const current = (await this.options.store.get(aor)).filter((b) => b.expiresAt > now);
    const callId = message.callId;
    const cseq = message.cseq.seq;
    let next = current;
    let usedOutbound = false;
    if (message.hasHeader('contact')) {
      if (message.wildcardContact) next = this.removeAll(message, current);
      else {
        const changes = this.changes(message, now);
        for (const change of changes) change.binding = withFlow(change.binding, request);
        next = [...current];
        for (const change of changes) {
          usedOutbound ||= change.binding.regId !== undefined;
          const index = next.findIndex((b) => sameBinding(b, change.binding));
          const existing = index === -1 ? undefined : next[index]!;
          // Step 7: same Call-ID and a CSeq not higher → "the update MUST be aborted".
          if (existing && existing.callId === callId && cseq <= existing.cseq) throw new Refused(500, 'Stale CSeq');
          if (change.expires === 0) {
            if (index !== -1) next.splice(index, 1);
          } else if (index === -1) next.push(change.binding);
          else next[index] = change.binding;
        }
      }
      // "…committed… if and only if all binding updates and additions succeed": one put.
      try {
        await this.options.store.put(aor, next);
      } catch {
        throw new Refused(500, 'Location Store Failed');
      }
      this.track(aor, current, next);
      this.emit('bindings', aor, next);
    }
    // Step 8: "…Contact header field values enumerating all current bindings… an expires parameter…
    // The response SHOULD include a Date header field".
    const headers: Record<string, string | string[]> = { Date: new Date(wallClockOf(this.dum.clock).now()).toUTCString() };
    if (next.length > 0) headers.Contact = next.map((b) => contactValue(b, now));
    if (usedOutbound && message.supported.includes('outbound')) headers.Require = 'outbound';
    const path = message.headers('path');
    if (path.length > 0 && message.supported.includes('path')) headers.Path = path;
    request.send(createResponse(message, 200, undefined, { headers }));
  }

  /** Step 6: `Contact: *` — alone and with Expires: 0, removing every binding (CSeq rules apply). */
  private removeAll(message: SipMessage, current: StoredBinding[]): StoredBinding[] {
    if (message.contact.length > 0 || message.headers('contact').length !== 1 || message.expires !== 0) {
      throw new Refused(400, 'Invalid Wildcard Contact');
    }
    for (const binding of current) {
      if (binding.callId === message.callId && message.cseq.seq <= binding.cseq) throw new Refused(500, 'Stale CSeq');
    }
    return [];
  }

  /** Step 7's expiry per contact, with 423 for too brief and the maximum applied. */
  private changes(message: SipMessage, now: number): Array<{ binding: StoredBinding; expires: number }> {
    const headerExpires = message.expires;
    const contacts = message.contact;
    const viaCount = message.via.length;
    const path = message.headers('path');
    const outboundSupported = message.supported.includes('outbound');
    const out: Array<{ binding: StoredBinding; expires: number }> = [];
    const seenRegIds = new Set<string>();
    for (const contact of contacts) {
      const param = contact.params.expires;
      let expires = param !== undefined && param !== null && /^\d+$/.test(param) ? Number(param) : (headerExpires ?? this.defaultExpires);
      // "If and only if the requested expiration interval is greater than zero AND smaller than one
      // hour AND less than a registrar-configured minimum, the registrar MAY reject… 423".
      if (expires > 0 && expires < 3600 && expires < this.minExpires) {
        throw new Refused(423, undefined, { 'Min-Expires': String(this.minExpires) });
      }
      expires = Math.min(expires, this.maxExpires);
      const binding = this.bindingFrom(contact, message, expires, now);
      if (binding.regId !== undefined) {
        // RFC 5626 §6: "the registrar MUST… reject… (400)… more than one Contact… with the same reg-id and instance".
        const key = `${binding.instance ?? ''}\n${binding.regId}`;
        if (seenRegIds.has(key)) throw new Refused(400, 'Duplicate reg-id');
        seenRegIds.add(key);
        // RFC 5626 §6: over more than one hop, the edge proxy must have put an outbound Path
        // (";ob") in, else "439 (First Hop Lacks Outbound Support)".
        if (outboundSupported && viaCount > 1 && !path.some((p) => /;\s*ob\b/i.test(p))) throw new Refused(439);
        if (!outboundSupported) {
          delete binding.regId;
        }
      }
      out.push({ binding, expires });
    }
    return out;
  }

  private bindingFrom(contact: NameAddr, message: SipMessage, expires: number, now: number): StoredBinding {
    const params: Record<string, string | null> = { ...contact.params };
    delete params.expires;
    const binding: StoredBinding = {
      contact: contact.uri.toString(),
      expiresAt: now + expires * 1000,
      callId: message.callId,
      cseq: message.cseq.seq,
      params,
    };
    const q = params.q;
    if (q !== undefined && q !== null && Number.isFinite(Number(q))) binding.q = Number(q);
    const instance = params['+sip.instance'];
    if (instance !== undefined && instance !== null) binding.instance = unquoteInstance(instance);
    const regId = params['reg-id'];
    if (regId !== undefined && regId !== null && /^\d+$/.test(regId) && binding.instance !== undefined) binding.regId = Number(regId);
    const path = message.headers('path');
    if (path.length > 0) binding.path = path;
    return binding;
  }

  private async mayRegister(username: string, realm: string, aor: string, to: SipUri): Promise<boolean> {
    if (this.options.authorize) return this.options.authorize(username, aor, realm);
    if (to.user !== username) return false;
    return !this.serves(realm) || to.host.toLowerCase() === realm.toLowerCase();
  }

  private serves(host: string): boolean {
    return this.domains.has(host.toLowerCase());
  }

  /** Runs `work` after every earlier request for the same AOR. */
  private serialized<T>(aor: string, work: () => Promise<T>): Promise<T> {
    const previous = this.perAor.get(aor) ?? Promise.resolve();
    const run = previous.then(work, work);
    const settled = run.catch(() => undefined);
    this.perAor.set(aor, settled);
    void settled.then(() => {
      if (this.perAor.get(aor) === settled) this.perAor.delete(aor);
    });
    return run;
  }

  /** Keeps the flow index and the expiry timer of an AOR in step with its new bindings. */
  private track(aor: string, before: StoredBinding[], after: StoredBinding[]): void {
    for (const b of before) if (b.flow?.connectionId !== undefined) this.flows.get(b.flow.connectionId)?.delete(aor);
    for (const b of after) {
      const id = b.flow?.connectionId;
      if (id === undefined) continue;
      let set = this.flows.get(id);
      if (!set) this.flows.set(id, (set = new Set()));
      set.add(aor);
    }
    this.expiryTimers.get(aor)?.cancel();
    this.expiryTimers.delete(aor);
    if (after.length === 0) return;
    const soonest = Math.min(...after.map((b) => b.expiresAt));
    const timer = this.dum.timer(Math.max(0, soonest - this.dum.clock.now()), () => {
      this.expiryTimers.delete(aor);
      void this.expire(aor);
    });
    this.expiryTimers.set(aor, timer);
  }

  private expire(aor: string): Promise<void> {
    return this.serialized(aor, async () => {
      const now = this.dum.clock.now();
      const all = await this.options.store.get(aor);
      const live = all.filter((b) => b.expiresAt > now);
      if (live.length !== all.length) await this.options.store.put(aor, live);
      this.track(aor, all, live);
      for (const binding of all) if (binding.expiresAt <= now) this.emit('expired', aor, binding);
      if (live.length !== all.length) this.emit('bindings', aor, live);
    });
  }
}

/** The binding with the flow its REGISTER came over (RFC 5626 §6: the way back to the device). */
function withFlow(binding: StoredBinding, request: ServerRequest): StoredBinding {
  const flow: NonNullable<StoredBinding['flow']> = { ...request.source };
  if (request.connectionId !== undefined) flow.connectionId = request.connectionId;
  return { ...binding, flow };
}

/** §10.3 step 5: the To URI in canonical form — scheme, user and host, no parameters or headers. */
export function canonicalAor(uri: SipUri): string {
  const user = uri.user !== undefined ? `${uri.user}@` : '';
  const port = uri.port !== undefined ? `:${uri.port}` : '';
  return `${uri.scheme}:${user}${uri.host.toLowerCase()}${port}`;
}

/** The same binding: the same instance and reg-id under outbound (RFC 5626 §6), else the same URI (§19.1.4). */
function sameBinding(a: StoredBinding, b: StoredBinding): boolean {
  if (a.regId !== undefined || b.regId !== undefined) return a.instance === b.instance && a.regId === b.regId;
  return sameUri(parseUri(a.contact, 'contact'), parseUri(b.contact, 'contact'));
}

function contactValue(binding: StoredBinding, now: number): string {
  const expires = Math.max(0, Math.round((binding.expiresAt - now) / 1000));
  return `<${binding.contact}>${formatParams(binding.params)};expires=${expires}`;
}
