import type { SipMessage } from '../message/sip-message.js';
import { TimeLimitFifo, type TimeLimitFifoOptions } from '../util/time-limit-fifo.js';
import type { ServerRequest, TransactionUser, TuFilter } from './transaction-user.js';

/** A registered TU with its filter and its own queue (reSIProcate's TuSelector entries). */
export interface TuEntry {
  readonly tu: TransactionUser;
  readonly filter: TuFilter | undefined;
  readonly queue: TimeLimitFifo<ServerRequest>;
}

/**
 * Picks the TU for each request: the first registered TU whose filter matches, else the default
 * TU. Each TU drains its own TimeLimitFifo, so a slow TU delays and refuses only its own work.
 */
export class TuSelector {
  private readonly entries: TuEntry[] = [];
  private fallback: TuEntry | undefined;

  constructor(private readonly queueOptions: TimeLimitFifoOptions) {}

  add(tu: TransactionUser, filter?: TuFilter): void {
    this.entries.push(this.entry(tu, filter));
  }

  setDefault(tu: TransactionUser): void {
    this.fallback = this.entry(tu, undefined);
  }

  select(request: SipMessage): TuEntry | undefined {
    for (const entry of this.entries) if (matches(entry.filter, request)) return entry;
    return this.fallback;
  }

  /** Methods some TU takes, for the Allow header of a 405 (§21.4.6). */
  allowedMethods(): string[] {
    const methods = new Set<string>();
    for (const entry of this.entries) for (const m of entry.filter?.methods ?? []) methods.add(m);
    return [...methods];
  }

  private entry(tu: TransactionUser, filter: TuFilter | undefined): TuEntry {
    const queue = new TimeLimitFifo<ServerRequest>((request) => tu.onRequest(request), { name: 'tu', ...this.queueOptions }, answerFailure);
    return { tu, filter, queue };
  }
}

function matches(filter: TuFilter | undefined, request: SipMessage): boolean {
  if (!filter) return true;
  if (filter.methods && !filter.methods.includes(request.method)) return false;
  if (filter.domains || filter.users) {
    const uri = request.requestUri;
    if (filter.domains && !filter.domains.some((d) => d.toLowerCase() === uri.host.toLowerCase())) return false;
    if (filter.users && (uri.user === undefined || !filter.users.includes(uri.user))) return false;
  }
  return filter.match ? filter.match(request) : true;
}

/**
 * A TU threw on a request (or its promise rejected): the error boundary between the layers. The
 * request is answered 500 through its transaction (RFC 3261 §21.5.1), unless it had its final
 * response already — a server transaction past Trying/Proceeding ignores another (§17.2).
 */
function answerFailure(request: ServerRequest, error: unknown): void {
  if (!request.transaction || request.message.method === 'CANCEL') return;
  const why = error instanceof Error ? error.message : String(error);
  request.respond(500, undefined, { headers: { Warning: `399 parley "the request's handler failed: ${why.replace(/["\\]/g, "'")}"` } });
}
