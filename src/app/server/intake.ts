import { createHash } from 'node:crypto';
import type { SipMessage } from '../../message/sip-message.js';
import type { Tuple } from '../../transport/types.js';
import type { RequestAuthenticator } from '../../tu/dum/digest-authenticator.js';
import { acceptsType, mediaTypeOf } from '../../tu/dum/media-types.js';
import type { Answer } from '../../tu/dum/pager.js';
import { MESSAGE_ID_HEADER, parsePath, parseRelayedMessageId, PATH_HEADER } from '../federation/documents.js';
import type { Federation } from '../federation/federation.js';
import { CpimError, cpimAddress, cpimHeader, imdnHeaders, parseCpim } from '../im/cpim.js';
import type { Logger } from '../logger.js';
import { aorOf, displayAor, splitAor, type Aor } from '../store/aor.js';
import type { AccountStore, MessageLog, NewMessage, StoredMessage } from '../store/store.js';
import { StoreError } from '../store/store-error.js';
import type { WallClock } from '../wall-clock.js';
import type { ServerConfig } from './server-config.js';

// MESSAGE intake at a server that stores and forwards (RFC 3428 §7), as a pipeline of named
// steps run in a fixed order (docs/server.md "Sending"). Each step either continues with a
// context it may have added to, or answers; the first answer is the one sent. The order is the
// contract: an unauthenticated request learns nothing about recipients, a request that fails
// authentication and the quota gets the 401, not the 480.

/** What the steps need of the server; a test gives its own. */
export interface IntakeServer {
  readonly config: Readonly<
    Pick<ServerConfig, 'acceptForeign' | 'maxForwards' | 'maxMessageBytes' | 'acceptedTypes' | 'maxStoredPerUser' | 'maxCommitBacklog'> &
      Partial<Pick<ServerConfig, 'maxStoredPerSender' | 'maxStoredBytesPerUser'>>
  >;
  /** The domains we are home to. */
  readonly domains: ReadonlySet<string>;
  /** Peers, a network secret or discovery: MESSAGEs from other domains must come from a server. */
  readonly federated: boolean;
  readonly store: Pick<AccountStore, 'account'> & Pick<MessageLog, 'append' | 'stored' | 'commitBacklog' | 'mailbox'>;
  /** The disk floor (minFreeDiskBytes): true while the data directory's file system is too full. */
  readonly diskLow?: () => boolean;
  /** Digest for our users, a realm per domain. */
  readonly users: RequestAuthenticator;
  readonly federation: Pick<Federation, 'hasPeerCredentials' | 'authenticatePeer' | 'accepts'>;
  /** `receivedAt` of what is stored. */
  readonly clock: WallClock;
  readonly logger: Logger;
  /** A new message is durable (not a duplicate): announce it, deliver it or relay it. */
  took(message: StoredMessage, local: boolean): void;
}

/** What the steps learn about one MESSAGE, each field set by the step named beside it. */
export interface IntakeContext {
  readonly request: SipMessage;
  /** Where it came from (failed authentications are counted and logged per source). */
  readonly source: Tuple | undefined;
  /** authenticate: the From AOR, and who vouched for it. */
  readonly sender: Aor;
  readonly senderDomain: string;
  /** authenticate: the neighbour that handed it to us (docs/federation.md), or undefined for a user. */
  readonly peer: string | undefined;
  /** loop: the servers it was stored at before us (a neighbour's Parley-Path). */
  readonly path: readonly string[];
  /** route: the Request-URI AOR; local when we are its home. */
  readonly recipient: Aor;
  readonly local: boolean;
  readonly maxForwards: number;
  /** policy: the outer Content-Type. */
  readonly contentType: string;
  /** parse-cpim, then dedupe: the identity the store keeps it once under. */
  readonly messageId: string;
  /** parse-cpim: the sender asked for a positive delivery notification (RFC 5438 §6.3). */
  readonly notify: boolean;
}

export type StepOutcome = { readonly continue: IntakeContext } | { readonly answer: Answer };

export type IntakeStepName = 'authenticate' | 'loop' | 'route' | 'policy' | 'parse-cpim' | 'dedupe' | 'quota' | 'store';

export interface IntakeStep {
  readonly name: IntakeStepName;
  run(context: IntakeContext, server: IntakeServer): StepOutcome | Promise<StepOutcome>;
}

const next = (context: IntakeContext): StepOutcome => ({ continue: context });
const answer = (response: Answer): StepOutcome => ({ answer: response });

/**
 * 1. Who sends it. From one of our domains: digest as that very user (`401`, `403`). From
 * another domain on a federated server: digest as a neighbour in our peers realm. Otherwise
 * `403` unless `acceptForeign`.
 */
async function authenticate(context: IntakeContext, server: IntakeServer): Promise<StepOutcome> {
  const { request } = context;
  let sender: Aor;
  try {
    sender = aorOf(request.from.uri.toString());
  } catch {
    return answer({ status: 400, reason: 'From is not an address of the form user@domain' });
  }
  const senderDomain = splitAor(sender).domain;
  const ours = server.domains.has(senderDomain);
  // A server speaks when it answers our peers realm, or when a foreign sender may only come
  // through one (federated, and not acceptForeign): only with the link's secret (docs/federation.md).
  const fromServer = server.federated && (server.federation.hasPeerCredentials(request) || (!ours && !server.config.acceptForeign));
  let peer: string | undefined;
  if (fromServer) {
    const outcome = await server.federation.authenticatePeer(request);
    if (!outcome.ok) return answer(outcome.response);
    peer = outcome.name;
  } else if (ours) {
    // Every MESSAGE from one of our users is authenticated, and only as themselves (docs/server.md).
    const outcome = await server.users.authenticate(request, { source: context.source });
    if (!outcome.ok) return answer(outcome.response);
    // The account is user and realm (its domain): alice of another of our domains is not this alice.
    const account = `sip:${outcome.username}@${outcome.realm.toLowerCase()}`;
    if (account !== sender) return answer({ status: 403, reason: `${displayAor(account)} may not send as ${displayAor(sender)}` });
  } else if (!server.config.acceptForeign) {
    return answer({ status: 403, reason: `Senders of ${senderDomain} are not accepted here` });
  }
  return next({ ...context, sender, senderDomain, peer });
}

/** 2. A message that has been here before is in a loop (RFC 3261 §16.3 item 4, RFC 5393): `482`. */
function loop(context: IntakeContext, server: IntakeServer): StepOutcome {
  const { peer, senderDomain } = context;
  const path = peer !== undefined ? parsePath(context.request.header(PATH_HEADER)) : [];
  if (path.some((domain) => server.domains.has(domain))) return answer({ status: 482, reason: 'Loop Detected' });
  // Our users speak for themselves: a neighbour never hands us one of their messages.
  if (peer !== undefined && server.domains.has(senderDomain)) return answer({ status: 403, reason: `${peer} may not send as ${displayAor(context.sender)}` });
  return next({ ...context, path });
}

/**
 * 3. Where it goes: an account of ours (`404`), or another domain — relayed only for our users
 * and neighbours (`403`), with hops left (RFC 3261 §16.3 item 3: `483`), and a route (`404`; a
 * neighbour gets `480` and retries).
 */
function route(context: IntakeContext, server: IntakeServer): StepOutcome {
  const { request, peer } = context;
  let recipient: Aor;
  try {
    recipient = aorOf(request.requestUri.toString());
  } catch {
    return answer({ status: 404, reason: 'No such user' });
  }
  const recipientDomain = splitAor(recipient).domain;
  const local = server.domains.has(recipientDomain);
  // A user's Max-Forwards is capped at ours; a neighbour's is what the path has left.
  const received = request.maxForwards ?? server.config.maxForwards;
  const maxForwards = peer !== undefined ? received : Math.min(received, server.config.maxForwards);
  if (local) {
    if (!server.store.account(recipient)) return answer({ status: 404, reason: 'No such user' });
  } else {
    // We relay only for our users and our neighbours: an anonymous foreign sender may only reach us.
    if (peer === undefined && !server.domains.has(context.senderDomain)) return answer({ status: 403, reason: 'Relaying denied' });
    if (maxForwards <= 0) return answer({ status: 483, reason: 'Too Many Hops' });
    if (!server.federation.accepts(recipientDomain)) {
      // To a neighbour, a route it saw from us that is gone for now: it keeps the message and retries.
      if (peer !== undefined) return answer({ status: 480, reason: 'No route to domain', headers: { 'Retry-After': '5' } });
      return answer({ status: 404, reason: 'No route to domain' });
    }
  }
  return next({ ...context, recipient, local, maxForwards });
}

/** 4. What we take: a body up to `maxMessageBytes` (`413`) of an accepted type (`415` with Accept). */
function policy(context: IntakeContext, server: IntakeServer): StepOutcome {
  const { request } = context;
  if (request.body.length > server.config.maxMessageBytes) return answer({ status: 413, reason: `Message body over ${server.config.maxMessageBytes} bytes` });
  const contentType = request.contentType ?? 'text/plain';
  if (!acceptsType(server.config.acceptedTypes, contentType)) return answer({ status: 415, headers: { Accept: server.config.acceptedTypes.join(', ') } });
  return next({ ...context, contentType });
}

/**
 * 5. A `message/cpim` body (RFC 3862): it must parse (`400`), carry an accepted type (`415`) and
 * the sender's own From (`403`); its IMDN headers (RFC 5438 §6) give the Message-ID and whether
 * a delivery notification is wanted.
 */
function parseCpimBody(context: IntakeContext, server: IntakeServer): StepOutcome {
  if (mediaTypeOf(context.contentType) !== 'message/cpim') return next(context);
  try {
    const cpim = parseCpim(context.request.body);
    if (cpim.contentType !== undefined && !acceptsType(server.config.acceptedTypes, cpim.contentType))
      return answer({ status: 415, headers: { Accept: server.config.acceptedTypes.join(', ') } });
    if (safeAor(cpimAddress(cpimHeader(cpim.headers, 'From')!)) !== context.sender) return answer({ status: 403, reason: 'The CPIM From is not the sender' });
    const imdn = imdnHeaders(cpim);
    return next({ ...context, messageId: imdn.messageId ?? '', notify: imdn.notifications.includes('positive-delivery') });
  } catch (error) {
    if (error instanceof CpimError) return answer({ status: 400, reason: error.message.slice(0, 100) });
    throw error;
  }
}

/**
 * 6. The identity the store keeps it once under (with sender and recipient): a neighbour's
 * relayed Message-ID, the CPIM one, or else one the request itself names — so a retransmission,
 * or a replay of the same request after a restart, is the same message. The store answers a
 * second copy `duplicate`, and it is taken once.
 */
function dedupe(context: IntakeContext): StepOutcome {
  const { request } = context;
  let messageId = context.messageId === '' ? undefined : context.messageId;
  if (context.peer !== undefined) messageId = parseRelayedMessageId(request.header(MESSAGE_ID_HEADER)) ?? messageId;
  messageId ??= `sip-${createHash('sha256').update(`${request.callId}\n${request.cseq.seq}\n${request.from.tag ?? ''}`).digest('hex').slice(0, 32)}`;
  return next({ ...context, messageId });
}

/**
 * 7. Room for it: the recipient's mailbox — its count, the sender's share of it, its bytes
 * (`480` with Retry-After) — then the disk: its free-space floor and the commit backlog (`503`).
 */
function quota(context: IntakeContext, server: IntakeServer): StepOutcome {
  const { config } = server;
  if (server.store.stored(context.recipient) >= config.maxStoredPerUser) return answer({ status: 480, reason: 'Mailbox full', headers: { 'Retry-After': '60' } });
  const usage = server.store.mailbox?.(context.recipient, context.sender);
  if (usage !== undefined) {
    if (config.maxStoredPerSender !== undefined && usage.fromSender >= config.maxStoredPerSender)
      return answer({ status: 480, reason: 'Mailbox full for this sender', headers: { 'Retry-After': '60' } });
    if (config.maxStoredBytesPerUser !== undefined && usage.bytes + context.request.body.length > config.maxStoredBytesPerUser)
      return answer({ status: 480, reason: 'Mailbox full', headers: { 'Retry-After': '60' } });
  }
  if (server.diskLow?.() === true) return answer({ status: 503, reason: 'Disk nearly full', headers: { 'Retry-After': '60' } });
  if (server.store.commitBacklog >= server.config.maxCommitBacklog) return answer({ status: 503, reason: 'Store busy', headers: { 'Retry-After': '1' } });
  return next(context);
}

/** 8. Durable, then answered: RFC 3428 §7 `202` — accepted for delivery, not yet delivered. */
async function store(context: IntakeContext, server: IntakeServer): Promise<StepOutcome> {
  const { recipient, sender, messageId, contentType, notify, maxForwards } = context;
  const fresh: NewMessage = { recipient, sender, messageId, contentType, body: context.request.body, receivedAt: server.clock.now(), notify, path: [...context.path], maxForwards };
  try {
    const stored = await server.store.append(fresh);
    if (!stored.duplicate) server.took({ ...fresh, id: stored.id }, context.local);
  } catch (error) {
    if (error instanceof StoreError) {
      server.logger.error(`store: ${error.message}`);
      return answer({ status: 503, reason: 'Store unavailable', headers: { 'Retry-After': '5' } });
    }
    throw error;
  }
  return answer(202);
}

/** The steps, in the order they run (docs/server.md "Sending"). */
export const INTAKE_STEPS: readonly IntakeStep[] = Object.freeze([
  { name: 'authenticate', run: authenticate },
  { name: 'loop', run: loop },
  { name: 'route', run: route },
  { name: 'policy', run: policy },
  { name: 'parse-cpim', run: parseCpimBody },
  { name: 'dedupe', run: dedupe },
  { name: 'quota', run: quota },
  { name: 'store', run: store },
]);

/**
 * Runs the steps on one MESSAGE until one answers. A step that answers synchronously is not
 * awaited: from the quota check to the append nothing else runs, so two requests cannot both
 * take the mailbox's last place.
 */
export async function runIntake(request: SipMessage, server: IntakeServer, steps: readonly IntakeStep[] = INTAKE_STEPS, source?: Tuple): Promise<Answer> {
  let context: IntakeContext = { request, source, sender: '', senderDomain: '', peer: undefined, path: [], recipient: '', local: false, maxForwards: server.config.maxForwards, contentType: '', messageId: '', notify: false };
  for (const step of steps) {
    const pending = step.run(context, server);
    const outcome = pending instanceof Promise ? await pending : pending;
    if ('answer' in outcome) return outcome.answer;
    context = outcome.continue;
  }
  // The store step always answers; a pipeline without it has nothing durable to accept.
  return { status: 500, reason: 'Intake ended without an answer' };
}

function safeAor(text: string): Aor | undefined {
  try {
    return aorOf(text);
  } catch {
    return undefined;
  }
}
