import type { LocalContact } from '../../message/local-contact.js';
import { EventEmitter } from 'eventemitter3';
import { generateCallId } from '../../message/builder.js';
import type { NameAddr } from '../../message/name-addr.js';
import { parseRetryAfter } from '../../message/header-values.js';
import { formatParams } from '../../message/params.js';
import type { SipMessage } from '../../message/sip-message.js';
import { parseUri } from '../../message/uri.js';
import type { Tuple } from '../../transport/types.js';
import type { TimerHandle } from '../../util/clock.js';
import type { ClosableUsage, DialogUsageManager } from './dialog-usage-manager.js';
import { DumError } from './dum-error.js';
import { refreshDelayMs, retryBackoffMs } from './timing.js';
import { sameUri } from './uri-equality.js';

export interface RegisterOptions {
  /** The Request-URI; default the AOR's domain (§10.2: "the domain of the location service"). */
  registrar?: string;
  /** To and From; default the DUM's AOR. */
  aor?: string;
  /** Seconds asked for; default 3600. */
  expires?: number;
  contactParams?: Record<string, string | null>;
  /** RFC 5626: +sip.instance, reg-id, keep-alives, and a new flow when this one fails. */
  outbound?: { regId: number };
  /** A Contact URI of our own choosing; default our AOR's user at the address the transport fills in. */
  contact?: string;
}

/** One binding of the AOR, as the registrar's 200 listed it. */
export interface Binding {
  contact: string;
  /** Seconds left when the registrar answered. */
  expires: number;
  instance?: string;
  regId?: number;
  params: Record<string, string | null>;
}

export interface ClientRegistrationEvents {
  registered: [bindings: Binding[], response: SipMessage];
  refreshed: [bindings: Binding[], response: SipMessage];
  failed: [error: DumError, response: SipMessage | undefined];
  removed: [response: SipMessage];
}

export type RegistrationState = 'registering' | 'registered' | 'retrying' | 'removing' | 'removed';

/** RFC 5626 §4.4.1: "…the UA… SHOULD send keep-alives every 95 to 120 seconds" without a Flow-Timer. */
const DEFAULT_FLOW_TIMER_S = 120;

/**
 * A binding we keep at a registrar (RFC 3261 §10.2): registered, refreshed before it runs out with
 * the same Call-ID and a higher CSeq (§10.2.4), fixed up after a 423 (§10.2.8), retried with
 * RFC 5626 §4.5's backoff after failures, and — with outbound — kept alive on its flow and
 * registered again on a new flow when that one fails (RFC 5626 §4.4).
 */
export class ClientRegistration extends EventEmitter<ClientRegistrationEvents> implements ClosableUsage {
  readonly ready: Promise<Binding[]>;
  private currentState: RegistrationState = 'registering';
  private readonly registrarUri: string;
  private readonly aorText: string;
  private readonly callId = generateCallId();
  private cseq = 0;
  private requested: number;
  private granted: number | undefined;
  private current: Binding[] = [];
  private timer: TimerHandle | undefined;
  private failures = 0;
  private settleReady: { resolve: (b: Binding[]) => void; reject: (e: DumError) => void } | undefined;
  /** Registrations, fetches and removals go one at a time (each needs the previous CSeq). */
  private queue: Promise<unknown> = Promise.resolve();
  private flow: Tuple | undefined;
  /** Our Contact as the transport filled it in, to find our binding in the 200. */
  private sentContact: NameAddr | undefined;
  private readonly stopWatchingFlows: () => void;

  constructor(
    private readonly dum: DialogUsageManager,
    private readonly options: RegisterOptions,
  ) {
    super();
    this.aorText = options.aor ?? dum.aor.uri.toString();
    const aor = dum.aor.uri;
    this.registrarUri = options.registrar ?? `${aor.scheme}:${aor.host}${aor.port !== undefined ? `:${aor.port}` : ''}`;
    this.requested = options.expires ?? 3600;
    this.ready = new Promise<Binding[]>((resolve, reject) => (this.settleReady = { resolve, reject }));
    // Nobody has to await `ready`; a rejection nobody listens to must not take the process down.
    this.ready.catch(() => undefined);
    // Only an outbound registration is tied to its flow (RFC 5626 §4.4.1); a plain Contact is
    // reached over a new connection when the old one closes (RFC 3261 §18), so nothing to redo.
    this.stopWatchingFlows = options.outbound
      ? dum.stack.onFlowEnded((flow) => {
          if (this.flow && sameTuple(flow.remote, this.flow)) this.flowEnded();
        })
      : () => undefined;
    this.enqueue(() => this.register());
  }

  get state(): RegistrationState {
    return this.currentState;
  }

  /** Seconds the registrar granted our contact in its last 200. */
  get expires(): number | undefined {
    return this.granted;
  }

  /** Every binding of the AOR in the registrar's last 200. */
  get bindings(): Binding[] {
    return this.current;
  }

  /** §10.2.3: the AOR's current bindings, without changing them. */
  fetch(): Promise<Binding[]> {
    return this.enqueue(async () => {
      const response = await this.send(undefined, undefined);
      if (response.status < 200 || response.status >= 300) {
        throw new DumError('DUM_REGISTRATION_FAILED', `fetching bindings failed: ${response.status} ${response.reason}`, response);
      }
      this.current = bindingsOf(response);
      return this.current;
    });
  }

  /** §10.2.2: removes our binding (Expires: 0). */
  unregister(): Promise<void> {
    return this.remove(false);
  }

  /** §10.2.2: removes every binding of the AOR (`Contact: *`, Expires: 0). */
  unregisterAll(): Promise<void> {
    return this.remove(true);
  }

  /** Unregisters when registered (failures are ignored: the binding expires anyway). */
  async close(): Promise<void> {
    if (this.currentState === 'removed') return;
    await this.unregister().catch(() => undefined);
  }

  private remove(all: boolean): Promise<void> {
    this.stopTimer();
    this.currentState = 'removing';
    return this.enqueue(async () => {
      const response = await this.send(all ? '*' : this.ourContact(), 0);
      this.finish();
      if (response.status < 200 || response.status >= 300) {
        throw new DumError('DUM_REGISTRATION_FAILED', `removing the binding failed: ${response.status} ${response.reason}`, response);
      }
      this.current = bindingsOf(response);
      this.emit('removed', response);
    });
  }

  private isEnding(): boolean {
    return this.currentState === 'removing' || this.currentState === 'removed';
  }

  private finish(): void {
    this.currentState = 'removed';
    this.stopTimer();
    this.stopWatchingFlows();
    if (this.flow && this.options.outbound) this.dum.stack.keepAlive(this.flow, 0);
    this.flow = undefined;
    this.settleReady?.reject(new DumError('DUM_REGISTRATION_FAILED', 'the registration was removed before it succeeded'));
    this.settleReady = undefined;
    this.dum.forget(this);
  }

  private async register(): Promise<void> {
    if (this.isEnding()) return;
    const refresh = this.currentState === 'registered';
    const response = await this.send(this.ourContact(), this.requested, (target) => (this.flow = target));
    if (this.isEnding()) return;
    const status = response.status;
    if (status >= 200 && status < 300) return this.succeeded(response, refresh);
    if (status === 423) {
      // §10.2.8: "…the UA MAY retry the registration with an expiration interval… greater than or
      // equal to the value in the Min-Expires header field".
      const minimum = Number(response.header('min-expires'));
      if (Number.isFinite(minimum) && minimum > this.requested) {
        this.requested = minimum;
        return this.register();
      }
    }
    this.failed(response);
  }

  private succeeded(response: SipMessage, refresh: boolean): void {
    this.failures = 0;
    this.current = bindingsOf(response);
    const ours = this.findOurs(this.current);
    this.granted = ours?.expires ?? response.expires ?? this.requested;
    this.currentState = 'registered';
    if (this.options.outbound && this.flow && this.flow.protocol !== 'udp') {
      // RFC 5626 §4.4.1: keep-alives on the flow at the server's Flow-Timer, else every 120 s.
      const flowTimer = Number(response.header('flow-timer') ?? DEFAULT_FLOW_TIMER_S);
      this.dum.stack.keepAlive(this.flow, (Number.isFinite(flowTimer) && flowTimer > 0 ? flowTimer : DEFAULT_FLOW_TIMER_S) * 1000);
    }
    this.schedule(refreshDelayMs(this.granted));
    if (this.settleReady) {
      this.settleReady.resolve(this.current);
      this.settleReady = undefined;
      this.emit('registered', this.current, response);
    } else if (refresh) this.emit('refreshed', this.current, response);
    else this.emit('registered', this.current, response);
  }

  private failed(response: SipMessage): void {
    this.failures++;
    this.currentState = 'retrying';
    const error = new DumError('DUM_REGISTRATION_FAILED', `registration failed: ${response.status} ${response.reason}`, response);
    this.emit('failed', error, response);
    if (this.settleReady) {
      this.settleReady.reject(error);
      this.settleReady = undefined;
    }
    // RFC 5626 §4.5: back off; "a 503… with a Retry-After… may cause the UA to wait longer".
    const backoff = retryBackoffMs(this.failures);
    const after = response.status === 503 ? parseRetryAfter(response.header('retry-after')) : undefined;
    this.schedule(after !== undefined ? Math.max(backoff, after * 1000) : backoff);
  }

  /** RFC 5626 §4.4.1: "If the flow fails… the UA MUST form a new flow" — register again now. */
  private flowEnded(): void {
    this.flow = undefined;
    if (this.currentState !== 'registered') return;
    this.stopTimer();
    this.currentState = 'registering';
    this.enqueue(() => this.register());
  }

  private schedule(ms: number): void {
    this.stopTimer();
    this.timer = this.dum.timer(ms, () => {
      this.timer = undefined;
      this.enqueue(() => this.register());
    });
  }

  private stopTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Sends one REGISTER: same Call-ID, next CSeq (§10.2.4); `contact` undefined = a fetch. */
  private async send(contact: string | LocalContact | undefined, expires: number | undefined, sentTo?: (target: Tuple) => void): Promise<SipMessage> {
    const headers: Record<string, string | string[]> = {};
    if (expires !== undefined) headers.Expires = String(expires);
    if (this.options.outbound) headers.Supported = 'outbound, path';
    const request = this.dum.newRequest('REGISTER', this.registrarUri, {
      from: this.aorText,
      to: this.aorText,
      callId: this.callId,
      cseq: ++this.cseq,
      contact,
      headers,
    });
    // A refresh carries the credentials the registrar took last time (no extra challenge).
    this.dum.digest.preauthorize(request);
    const pending = this.dum.send(request, { onResend: (next) => (this.cseq = next.cseq.seq) });
    const response = await pending.final;
    const target = pending.target;
    if (target && sentTo) sentTo(target);
    this.sentContact = pending.request.contact[0];
    return response;
  }

  private ourContact(): string | LocalContact {
    const params: Record<string, string | null> = { ...this.options.contactParams };
    if (this.options.outbound) {
      // RFC 5626 §4.2: "+sip.instance" with the instance URN in quotes, and "reg-id".
      params['+sip.instance'] = `"<${this.dum.instanceId}>"`;
      params['reg-id'] = String(this.options.outbound.regId);
    }
    if (this.options.contact === undefined) return this.dum.contact(params);
    // A Contact URI, written bare or in angle brackets.
    const uri = this.options.contact.trim().replace(/^<(.*)>$/, '$1');
    return `<${uri}>${formatParams(params)}`;
  }

  /** Our binding among those the registrar listed: same instance and reg-id, or the same URI (§19.1.4). */
  private findOurs(bindings: Binding[]): Binding | undefined {
    if (this.options.outbound) {
      const mine = bindings.find((b) => b.instance === this.dum.instanceId && b.regId === this.options.outbound!.regId);
      if (mine) return mine;
    }
    const sent = this.sentContact?.uri;
    if (!sent) return undefined;
    return bindings.find((b) => {
      try {
        return sameUri(parseUri(b.contact, 'contact'), sent);
      } catch {
        return false;
      }
    });
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/** The bindings a registrar's 200 lists (§10.3 step 8): each Contact with its expires. */
export function bindingsOf(response: SipMessage): Binding[] {
  const headerExpires = response.expires;
  return response.contact.map((contact) => {
    const params = { ...contact.params };
    const expiresParam = params.expires;
    const instance = params['+sip.instance'];
    const regId = params['reg-id'];
    const binding: Binding = {
      contact: contact.uri.toString(),
      expires: expiresParam !== undefined && expiresParam !== null ? Number(expiresParam) : (headerExpires ?? 0),
      params,
    };
    if (instance !== undefined && instance !== null) binding.instance = unquoteInstance(instance);
    if (regId !== undefined && regId !== null) binding.regId = Number(regId);
    return binding;
  });
}

/** `"<urn:uuid:…>"` → `urn:uuid:…` (RFC 5626 §4.1's quoting of +sip.instance). */
export function unquoteInstance(value: string): string {
  let v = value;
  if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
  if (v.startsWith('<') && v.endsWith('>')) v = v.slice(1, -1);
  return v;
}

function sameTuple(a: Tuple, b: Tuple): boolean {
  return a.protocol === b.protocol && a.address === b.address && a.port === b.port;
}
