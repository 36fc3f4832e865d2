// The MESSAGE intake pipeline (src/app/server/intake.ts, docs/server.md "Sending") on its own,
// against a server made of fakes: the steps have the documented names and run in the documented
// order, the first answer wins (a request that fails both authentication and the quota gets
// the 401, one that fails the quota and nothing before it the 480), nothing after an answer
// runs, and a request that passes everything is stored once with the intake's wall clock.
//
// No sockets: requests are parsed from bytes, the authenticator and the federation are stubs,
// the store records what it is asked.
import { expect } from 'chai';
import {
  createResponse,
  INTAKE_STEPS,
  parseMessage,
  runIntake,
  type Account,
  type AuthOutcome,
  type IntakeServer,
  type IntakeStep,
  type IntakeStepName,
  type NewMessage,
  type SipMessage,
  type StoredMessage,
} from '../../src/index.js';

const DOMAIN = 'localhost';
const ALICE = `sip:alice@${DOMAIN}`;
const BOB = `sip:bob@${DOMAIN}`;
const NOW = Date.parse('2026-11-21T10:00:00.000Z');

/** A MESSAGE from alice to `to` with a text/plain body (or the given one). */
function message(options: { to?: string; body?: string; contentType?: string; from?: string } = {}): SipMessage {
  const body = Buffer.from(options.body ?? 'hello', 'utf8');
  const head = [
    `MESSAGE ${options.to ?? BOB} SIP/2.0`,
    'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-intake-1;rport',
    'Max-Forwards: 70',
    `From: <${options.from ?? ALICE}>;tag=a1`,
    `To: <${options.to ?? BOB}>`,
    'Call-ID: intake-test-1',
    'CSeq: 1 MESSAGE',
    `Content-Type: ${options.contentType ?? 'text/plain'}`,
    `Content-Length: ${body.length}`,
    '',
    '',
  ].join('\r\n');
  return parseMessage(Buffer.concat([Buffer.from(head, 'utf8'), body]));
}

interface Fake {
  server: IntakeServer;
  appended: NewMessage[];
  took: Array<{ message: StoredMessage; local: boolean }>;
}

/** A server whose checks each pass or fail as told. */
function fakeServer(options: { auth?: 'ok' | 'refuse'; mailboxFull?: boolean; backlog?: number; accounts?: string[] } = {}): Fake {
  const appended: NewMessage[] = [];
  const took: Fake['took'] = [];
  const accounts = new Set(options.accounts ?? [ALICE, BOB]);
  const server: IntakeServer = {
    config: { acceptForeign: false, maxForwards: 70, maxMessageBytes: 100, acceptedTypes: ['text/*', 'message/cpim'], maxStoredPerUser: 10, maxCommitBacklog: 5 },
    domains: new Set([DOMAIN]),
    federated: false,
    store: {
      account: (aor: string): Account | undefined => (accounts.has(aor) ? { aor, hashes: { MD5: '', 'SHA-256': '', 'SHA-512-256': '' }, createdAt: 0 } : undefined),
      stored: () => (options.mailboxFull ? 10 : 0),
      get commitBacklog() {
        return options.backlog ?? 0;
      },
      append: (m: NewMessage) => {
        appended.push(m);
        return Promise.resolve({ id: appended.length, duplicate: false });
      },
    },
    users: {
      authenticate: (request: SipMessage): Promise<AuthOutcome> =>
        Promise.resolve(
          options.auth === 'refuse'
            ? { ok: false, status: 401, response: createResponse(request, 401), reason: 'no credentials' }
            : { ok: true, username: 'alice', realm: DOMAIN, algorithm: 'MD5' },
        ),
    },
    federation: {
      hasPeerCredentials: () => false,
      authenticatePeer: () => Promise.reject(new Error('not federated')),
      accepts: () => false,
    },
    clock: { now: () => NOW },
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
    took: (m, local) => void took.push({ message: m, local }),
  };
  return { server, appended, took };
}

/** The documented steps, each recording its name when it runs. */
function traced(): { steps: IntakeStep[]; ran: IntakeStepName[] } {
  const ran: IntakeStepName[] = [];
  const steps = INTAKE_STEPS.map((step) => ({ name: step.name, run: (...args: Parameters<IntakeStep['run']>) => (ran.push(step.name), step.run(...args)) }));
  return { steps, ran };
}

/** The status of an answer, whatever its form. */
function statusOf(answer: Awaited<ReturnType<typeof runIntake>>): number {
  if (typeof answer === 'number') return answer;
  return 'status' in answer && typeof answer.status === 'number' ? answer.status : -1;
}

describe('MESSAGE intake as named steps (src/app/server/intake.ts)', () => {
  it('has the steps of docs/server.md, in this order', () => {
    expect(INTAKE_STEPS.map((s) => s.name)).to.deep.equal(['authenticate', 'loop', 'route', 'policy', 'parse-cpim', 'dedupe', 'quota', 'store']);
  });

  it('failing authentication and the quota: the 401 (authentication first); nothing after it runs, nothing stored', async () => {
    const { server, appended } = fakeServer({ auth: 'refuse', mailboxFull: true });
    const { steps, ran } = traced();
    const answer = await runIntake(message(), server, steps);
    expect(statusOf(answer)).to.equal(401);
    expect(ran).to.deep.equal(['authenticate']);
    expect(appended).to.have.length(0);
  });

  it('failing the quota only: 480 Mailbox full with Retry-After 60, after every check before it', async () => {
    const { server, appended } = fakeServer({ mailboxFull: true });
    const { steps, ran } = traced();
    const answer = await runIntake(message(), server, steps);
    expect(answer).to.deep.equal({ status: 480, reason: 'Mailbox full', headers: { 'Retry-After': '60' } });
    expect(ran).to.deep.equal(['authenticate', 'loop', 'route', 'policy', 'parse-cpim', 'dedupe', 'quota']);
    expect(appended).to.have.length(0);
  });

  it('an unknown recipient and a full mailbox: the route step answers 404 before the quota is asked', async () => {
    const { server } = fakeServer({ mailboxFull: true, accounts: [ALICE] });
    const { steps, ran } = traced();
    expect(await runIntake(message(), server, steps)).to.deep.equal({ status: 404, reason: 'No such user' });
    expect(ran).to.deep.equal(['authenticate', 'loop', 'route']);
  });

  it('a body too large and a broken CPIM body: 413 from policy, before the CPIM is parsed', async () => {
    const { server } = fakeServer();
    const { steps, ran } = traced();
    const answer = await runIntake(message({ contentType: 'message/cpim', body: 'x'.repeat(101) }), server, steps);
    expect(answer).to.deep.equal({ status: 413, reason: 'Message body over 100 bytes' });
    expect(ran).to.deep.equal(['authenticate', 'loop', 'route', 'policy']);
  });

  it('a broken CPIM body and a full mailbox: 400 from parse-cpim (the quota comes after it, as documented)', async () => {
    const { server } = fakeServer({ mailboxFull: true });
    const { steps, ran } = traced();
    expect(statusOf(await runIntake(message({ contentType: 'message/cpim', body: 'not cpim' }), server, steps))).to.equal(400);
    expect(ran).to.deep.equal(['authenticate', 'loop', 'route', 'policy', 'parse-cpim']);
  });

  it('the commit backlog full: 503 Store busy with Retry-After 1', async () => {
    const { server } = fakeServer({ backlog: 5 });
    expect(await runIntake(message(), server)).to.deep.equal({ status: 503, reason: 'Store busy', headers: { 'Retry-After': '1' } });
  });

  it('passing everything: every step runs once, in order; stored with the clock time and the derived Message-ID; 202', async () => {
    const { server, appended, took } = fakeServer();
    const { steps, ran } = traced();
    expect(await runIntake(message(), server, steps)).to.equal(202);
    expect(ran).to.deep.equal(['authenticate', 'loop', 'route', 'policy', 'parse-cpim', 'dedupe', 'quota', 'store']);
    expect(appended).to.have.length(1);
    const stored = appended[0]!;
    expect(stored.receivedAt).to.equal(NOW);
    expect(stored.recipient).to.equal(BOB);
    expect(stored.sender).to.equal(ALICE);
    expect(stored.messageId).to.match(/^sip-[0-9a-f]{32}$/);
    expect(stored.body.toString('utf8')).to.equal('hello');
    expect(took.map((t) => [t.message.id, t.local])).to.deep.equal([[1, true]]);
  });
});
