// Registration through the dialog usage manager (docs/dum.md, "Registration"), end to end over
// real sockets on 127.0.0.1:
//
//  1. Per transport (UDP, then TCP, same cases): a client DUM (ClientRegistration from
//     dum.register, RFC 3261 §10.2) against a registrar DUM (Registrar, §10.3) with digest
//     authentication (DigestAuthenticator, MemoryCredentialStore holding alice/secret). Both stacks
//     share one ManualClock: protocol time only moves when a test advances it, while real I/O is
//     awaited by polling (a real-time cap, never a sleep on a protocol timer). Registration with
//     the 401 round trip, the refresh instant max(g/2, g−60) (§10.2.4) with pre-emptive
//     credentials, a stale nonce on refresh (RFC 7616 §3.3), expiry of a binding nobody refreshes,
//     unregister (§10.2.2), unregisterAll (Contact: *), 423 (§10.2.8), a wrong password, someone
//     else's AOR (403), fetch (§10.2.3).
//  2. RFC 5626 outbound over TCP: two devices of alice (instance ids, reg-id 1), Require: outbound
//     in the 200, the same instance + reg-id from a new contact replacing its binding, and
//     registrar.flowFailed(connectionId) removing the binding on a dead flow (§6).
//  3. Hand-written REGISTERs from a raw UDP socket against a registrar without authentication:
//     exact statuses and headers for each step of §10.3 (404, 420, 400, 423, 500 all-or-nothing,
//     max expires, the expires parameter over the header, the 200 listing every binding with
//     Date, fetch, q).
//
// REGISTERs are counted on the diagnostics channel 'parley:message:in' (every stack in this
// process publishes there; only registrars receive REGISTERs, only clients receive REGISTER
// responses), one per top-Via branch so a retransmission is never counted twice.
import { expect } from 'chai';
import { channel } from 'node:diagnostics_channel';
import {
  DialogUsageManager,
  DigestAuthenticator,
  DumError,
  ManualClock,
  MemoryCredentialStore,
  MemoryLocationStore,
  parseUri,
  Registrar,
  SipStack,
  type NameAddr,
  type SipMessage,
  type Tuple,
} from '../../src/index.js';
import { sip } from '../support/sip-bytes.js';
import { token, UdpSipPeer } from '../support/udp-sip.js';
import { until, within } from '../support/waiting.js';

type DumOptions = NonNullable<ConstructorParameters<typeof DialogUsageManager>[1]>;
type RegistrarOptions = ConstructorParameters<typeof Registrar>[1];
type RegisterOptions = NonNullable<Parameters<DialogUsageManager['register']>[0]>;
type ClientRegistration = ReturnType<DialogUsageManager['register']>;
type StoredBinding = Awaited<ReturnType<Registrar['lookup']>>[number];
type Binding = Awaited<ClientRegistration['ready']>[number];
type Protocol = 'udp' | 'tcp';

const HOST = '127.0.0.1';
const DOMAIN = 'example.com';
const AOR = 'sip:alice@example.com';
/** ManualClock time at the start of every test (a real date, so Date and nonces look ordinary). */
const T0 = Date.UTC(2025, 2, 1, 12, 0, 0);
/** Idle stream connections are closed after this on the clock; tests leap hours, so keep them. */
const DAY_MS = 86_400_000;
/** Real time allowed for loopback I/O to settle before a wait gives up. */
const IO_CAP_MS = 5000;
const INSTANCE_A = 'urn:uuid:4f8c7a10-2b1e-4d0a-9a3e-00000000000a';
const INSTANCE_B = 'urn:uuid:4f8c7a10-2b1e-4d0a-9a3e-00000000000b';

// ---- stacks ---------------------------------------------------------------------------------

const stacks: SipStack[] = [];

/** `idleTimeoutMs` 'default': the stream transports' own default (300 s). */
async function startStack(clock: ManualClock, transports: string[], idleTimeoutMs: number | 'default' = DAY_MS): Promise<SipStack> {
  const stack = new SipStack({ transports, clock, dns: false, stream: idleTimeoutMs === 'default' ? {} : { idleTimeoutMs } });
  stacks.push(stack);
  await stack.start();
  return stack;
}

/** Stops one stack now (and takes it off the afterEach list). */
async function stopStack(stack: SipStack): Promise<void> {
  const at = stacks.indexOf(stack);
  if (at >= 0) stacks.splice(at, 1);
  await stack.stop();
}

/** Stops every stack, the last started first (clients before their registrar). */
async function stopAll(): Promise<void> {
  for (let stack = stacks.pop(); stack; stack = stacks.pop()) await stack.stop();
}

function portOf(stack: SipStack, protocol: Protocol): number {
  const transport = stack.transports.find((t) => t.protocol === protocol);
  if (!transport) throw new Error(`the stack has no ${protocol} transport`);
  return transport.local.port;
}

// ---- waiting on real I/O (the ManualClock stands still meanwhile) -----------------------------



/** The rejection reason of a promise that must reject (within IO_CAP_MS). */
async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  const outcome = await within(
    promise.then(
      (value) => ({ resolved: true as const, value }),
      (error: unknown) => ({ resolved: false as const, error }),
    ),
    what,
  );
  if (outcome.resolved) throw new Error(`${what} resolved (${JSON.stringify(outcome.value)}) where it had to reject`);
  return outcome.error;
}

/**
 * Real time for anything still on the wire to arrive, for "nothing more happened" checks. Nothing
 * here waits on a protocol timer: the ManualClock does not move during it.
 */
function quiet(ms = 150): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- what crossed the wire --------------------------------------------------------------------

/** REGISTER requests and REGISTER responses received by any stack in this process during one test. */
class Wire {
  /** Distinct REGISTER requests (by top Via branch), in arrival order: what registrars saw. */
  readonly registers: SipMessage[] = [];
  /** Distinct responses to REGISTERs (by branch and status), in arrival order: what clients saw. */
  readonly responses: SipMessage[] = [];
  private readonly seen = new Set<string>();
  private readonly inbound = channel('parley:message:in');
  private readonly listener = (payload: unknown): void => {
    const { message } = payload as { message: SipMessage; tuple: Tuple };
    try {
      if (message.cseq.method !== 'REGISTER') return;
      const branch = message.via[0]?.branch ?? '';
      const key = message.isRequest ? `request ${branch}` : `response ${branch} ${message.status}`;
      if (this.seen.has(key)) return;
      this.seen.add(key);
      (message.isRequest ? this.registers : this.responses).push(message);
    } catch {
      // Not ours to judge here: malformed messages are the stack's business.
    }
  };

  constructor() {
    this.inbound.subscribe(this.listener);
  }

  statuses(): number[] {
    return this.responses.map((r) => r.status);
  }

  close(): void {
    this.inbound.unsubscribe(this.listener);
  }
}

// ---- message helpers --------------------------------------------------------------------------

/** A contact as a normalized URI string (Binding.contact and StoredBinding.contact may be bare or bracketed). */
function uriText(contact: string): string {
  const text = contact.trim();
  return parseUri(text.startsWith('<') ? text.slice(1, text.indexOf('>')) : text).toString();
}

/** An instance id without the quotes and angle brackets of the Contact parameter. */
function bareInstance(instance: string | undefined): string | undefined {
  return instance?.replace(/^"|"$/g, '').replace(/^<|>$/g, '');
}

/** The expiry a REGISTER asks for its (first) contact: the contact's expires parameter, else the Expires header. */
function requestedExpires(request: SipMessage): number | undefined {
  const param = request.contact[0]?.params.expires;
  return param !== undefined && param !== null ? Number(param) : request.expires;
}

/** The Contacts of a 200 by URI. */
function listed(response: SipMessage): Map<string, NameAddr> {
  return new Map(response.contact.map((c) => [c.uri.toString(), c]));
}

const RFC1123 = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

// ---- the registrar and its clients ------------------------------------------------------------

interface RegistrarSide {
  stack: SipStack;
  dum: DialogUsageManager;
  registrar: Registrar;
  /** Every 'bindings' event: (aor, bindings). Only fields Binding and StoredBinding share are read. */
  changes: Array<{ aor: string; bindings: Array<{ contact: string; instance?: string }> }>;
  /** Every 'expired' event. */
  expired: Array<{ aor: string; binding: StoredBinding }>;
}

interface ClientSide {
  stack: SipStack;
  dum: DialogUsageManager;
}

/** What one ClientRegistration told the application. */
interface RegistrationLog {
  registered: Array<{ bindings: Binding[]; response: SipMessage }>;
  refreshed: Array<{ bindings: Binding[]; response: SipMessage }>;
  failed: Array<{ error: DumError; response: SipMessage | undefined }>;
  removed: SipMessage[];
}

function track(registration: ClientRegistration): RegistrationLog {
  const log: RegistrationLog = { registered: [], refreshed: [], failed: [], removed: [] };
  registration.on('registered', (bindings, response) => log.registered.push({ bindings, response }));
  registration.on('refreshed', (bindings, response) => log.refreshed.push({ bindings, response }));
  registration.on('failed', (error, response) => log.failed.push({ error, response }));
  registration.on('removed', (response) => log.removed.push(response));
  // Tests that expect a rejection await it themselves; this only keeps a failing test from also
  // reporting an unhandled rejection.
  registration.ready.catch(() => undefined);
  return log;
}

async function startRegistrar(
  clock: ManualClock,
  options: Partial<RegistrarOptions> & { nonceLifetimeSec?: number; authenticate?: boolean; defaultIdleTimeout?: boolean } = {},
  transports = [`udp:${HOST}:0`, `tcp:${HOST}:0`],
): Promise<RegistrarSide> {
  const { nonceLifetimeSec, authenticate = true, defaultIdleTimeout = false, ...registrarOptions } = options;
  const stack = await startStack(clock, transports, defaultIdleTimeout ? 'default' : DAY_MS);
  const dum = new DialogUsageManager(stack);
  const credentials = new MemoryCredentialStore();
  credentials.add('alice', DOMAIN, 'secret');
  credentials.add('bob', DOMAIN, 'bobsecret');
  const registrar = new Registrar(dum, {
    domains: [DOMAIN],
    store: new MemoryLocationStore(),
    ...(authenticate
      ? {
          authenticator: new DigestAuthenticator({
            realm: DOMAIN,
            credentials,
            clock,
            // A day unless a test wants nonces to go stale: the refresh then rides on the
            // pre-emptive credentials of the first registration.
            nonceLifetimeSec: nonceLifetimeSec ?? 86_400,
          }),
        }
      : {}),
    ...registrarOptions,
  });
  const side: RegistrarSide = { stack, dum, registrar, changes: [], expired: [] };
  registrar.on('bindings', (aor, bindings) => side.changes.push({ aor, bindings }));
  registrar.on('expired', (aor, binding) => side.expired.push({ aor, binding }));
  return side;
}

/** A client DUM for alice whose out-of-dialog requests go to the registrar over `protocol`. */
async function startClient(
  clock: ManualClock,
  server: RegistrarSide,
  protocol: Protocol,
  options: Partial<DumOptions> = {},
  transports = [`udp:${HOST}:0`, `tcp:${HOST}:0`],
  idleTimeoutMs: number | 'default' = DAY_MS,
): Promise<ClientSide> {
  const stack = await startStack(clock, transports, idleTimeoutMs);
  const dum = new DialogUsageManager(stack, {
    aor: AOR,
    credentials: [{ username: 'alice', password: 'secret' }],
    outboundProxy: `sip:${HOST}:${portOf(server.stack, protocol)};transport=${protocol}`,
    ...options,
  });
  return { stack, dum };
}

function register(client: ClientSide, options: RegisterOptions = {}): { registration: ClientRegistration; log: RegistrationLog } {
  const registration = client.dum.register({ registrar: `sip:${DOMAIN}`, expires: 600, ...options });
  return { registration, log: track(registration) };
}

/** The Contact URI the transport fills in for a client's default contact (docs/transport-layer.md). */
function expectDefaultContact(contact: string, client: ClientSide, protocol: Protocol): void {
  const uri = parseUri(uriText(contact));
  expect(uri.user).to.equal('alice');
  expect(uri.host).to.equal(HOST);
  expect(uri.port).to.equal(portOf(client.stack, protocol));
  expect(uri.params.transport).to.equal(protocol === 'udp' ? undefined : protocol);
}

// =============================================================================================
// 1. Client registration against an authenticating registrar, per transport
// =============================================================================================

for (const protocol of ['udp', 'tcp'] as const) {
  describe(`DUM registration over ${protocol.toUpperCase()} (ClientRegistration ↔ Registrar with digest)`, function () {
    this.timeout(20_000);
    let clock: ManualClock;
    let wire: Wire;

    beforeEach(() => {
      clock = new ManualClock(T0);
      wire = new Wire();
    });

    afterEach(async () => {
      wire.close();
      await stopAll();
    });

    it('registers through one 401 round trip: ready has the one binding, lookup returns it, the asked expires is granted', async () => {
      const server = await startRegistrar(clock);
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { expires: 600 });
      expect(registration.state).to.equal('registering');

      const bindings = await within(registration.ready, 'registration.ready');
      expect(bindings).to.have.length(1);
      expectDefaultContact(bindings[0]!.contact, client, protocol);
      expect(bindings[0]!.expires).to.equal(600);
      expect(registration.state).to.equal('registered');
      expect(registration.expires).to.equal(600);
      expect(registration.bindings).to.have.length(1);
      expect(uriText(registration.bindings[0]!.contact)).to.equal(uriText(bindings[0]!.contact));
      expect(log.registered).to.have.length(1);
      expect(log.registered[0]!.response.status).to.equal(200);
      expect(log.failed).to.have.length(0);

      // On the wire: REGISTER → 401 → REGISTER with credentials (same Call-ID, CSeq + 1) → 200.
      expect(wire.registers).to.have.length(2);
      expect(wire.statuses()).to.deep.equal([401, 200]);
      const [first, second] = wire.registers as [SipMessage, SipMessage];
      expect(first.requestUri.toString()).to.equal(`sip:${DOMAIN}`);
      expect(first.to.uri.toString()).to.equal(AOR);
      expect(first.from.uri.toString()).to.equal(AOR);
      expect(first.authorization).to.have.length(0);
      expect(second.authorization).to.have.length(1);
      expect(second.authorization[0]!.params.username).to.equal('alice');
      expect(second.authorization[0]!.params.realm).to.equal(DOMAIN);
      expect(second.callId).to.equal(first.callId);
      expect(second.cseq.seq).to.equal(first.cseq.seq + 1);
      expect(requestedExpires(second)).to.equal(600);

      const stored = await server.registrar.lookup(AOR);
      expect(stored).to.have.length(1);
      expect(uriText(stored[0]!.contact)).to.equal(uriText(bindings[0]!.contact));
      expect(stored[0]!.expiresAt).to.equal(T0 + 600_000);
      expect(stored[0]!.callId).to.equal(second.callId);
      expect(stored[0]!.cseq).to.equal(second.cseq.seq);
      expect(stored[0]!.flow?.protocol).to.equal(protocol);
      expect(stored[0]!.flow?.address).to.equal(HOST);
      if (protocol === 'udp') {
        expect(stored[0]!.flow?.port).to.equal(portOf(client.stack, 'udp'));
        expect(stored[0]!.flow?.connectionId).to.equal(undefined);
      } else {
        expect(stored[0]!.flow?.connectionId).to.be.a('number');
      }
      // The same URI looked up as a SipUri.
      expect(await server.registrar.lookup(parseUri(AOR))).to.have.length(1);
      expect(server.changes).to.have.length(1);
      expect(server.changes[0]!.aor).to.equal(AOR);
      expect(server.changes[0]!.bindings).to.have.length(1);
    });

    it('refreshes at max(g/2, g−60) = 540 s of 600 with the same Call-ID, CSeq + 1 and pre-emptive credentials (no 401)', async () => {
      const server = await startRegistrar(clock);
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { expires: 600 });
      await within(registration.ready, 'registration.ready');
      expect(wire.registers).to.have.length(2);

      clock.advance(539_000);
      await quiet();
      expect(wire.registers, 'REGISTERs 1 s before the refresh instant').to.have.length(2);
      expect(log.refreshed).to.have.length(0);

      // 540.4 s: past the instant, short of T1 after it (no UDP retransmission can fall due).
      clock.advance(1_400);
      await until(() => log.refreshed.length >= 1, "'refreshed'");
      await quiet();
      expect(wire.registers, 'REGISTERs after the refresh instant').to.have.length(3);
      expect(wire.statuses()).to.deep.equal([401, 200, 200]);
      const [, second, refresh] = wire.registers as [SipMessage, SipMessage, SipMessage];
      expect(refresh.callId).to.equal(second.callId);
      expect(refresh.cseq.seq).to.equal(second.cseq.seq + 1);
      expect(refresh.authorization, 'pre-emptive Authorization on the refresh').to.have.length(1);
      expect(requestedExpires(refresh)).to.equal(600);
      expect(log.refreshed).to.have.length(1);
      expect(log.refreshed[0]!.response.status).to.equal(200);
      expect(log.refreshed[0]!.bindings).to.have.length(1);
      expect(log.registered).to.have.length(1);
      expect(log.failed).to.have.length(0);
      expect(registration.state).to.equal('registered');
      expect(registration.expires).to.equal(600);

      const stored = await server.registrar.lookup(AOR);
      expect(stored).to.have.length(1);
      expect(stored[0]!.expiresAt).to.equal(T0 + 540_400 + 600_000);
      expect(stored[0]!.cseq).to.equal(refresh.cseq.seq);

      // The next refresh is timed from this 200 (at 540.4 s): 1080.4 s.
      clock.advance(539_000);
      await quiet();
      expect(wire.registers).to.have.length(3);
      clock.advance(1_400);
      await until(() => log.refreshed.length >= 2, "the second 'refreshed'");
      await quiet();
      expect(wire.registers).to.have.length(4);
      expect(wire.registers[3]!.callId).to.equal(second.callId);
      expect(wire.registers[3]!.cseq.seq).to.equal(refresh.cseq.seq + 1);
      expect(wire.statuses()).to.deep.equal([401, 200, 200, 200]);
    });

    it('refreshes at g/2 when that is the later one: 45 s of a 90 s grant', async () => {
      const server = await startRegistrar(clock);
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { expires: 90 });
      await within(registration.ready, 'registration.ready');
      expect(registration.expires).to.equal(90);

      clock.advance(44_000);
      await quiet();
      expect(wire.registers).to.have.length(2);
      clock.advance(1_400);
      await until(() => log.refreshed.length >= 1, "'refreshed'");
      await quiet();
      expect(wire.registers).to.have.length(3);
      expect(wire.registers[2]!.cseq.seq).to.equal(wire.registers[1]!.cseq.seq + 1);
      expect(wire.registers[2]!.callId).to.equal(wire.registers[1]!.callId);
      expect((await server.registrar.lookup(AOR))[0]!.expiresAt).to.equal(T0 + 45_400 + 90_000);
    });

    if (protocol === 'tcp') {
      it('without outbound, idle TCP connections closing (default 300 s) bring no REGISTER before the refresh instant', async () => {
        // docs/dum.md: the refresh comes at max(g/2, g−60); registering again when a flow closes
        // is RFC 5626 §4.4.1 behaviour, listed for outbound only. A plain RFC 3261 contact
        // (sip:alice@host:port;transport=tcp) is reached by opening a new connection to it.
        const server = await startRegistrar(clock, { defaultIdleTimeout: true });
        const client = await startClient(clock, server, protocol, {}, [`udp:${HOST}:0`, `tcp:${HOST}:0`], 'default');
        const { registration, log } = register(client, { expires: 3600 });
        await within(registration.ready, 'registration.ready');
        expect(wire.registers).to.have.length(2);

        // To 3500 s in 100 s steps, letting the idle closes (at 300 s) reach both stacks.
        for (let t = 100; t <= 3500; t += 100) {
          clock.advance(100_000);
          await quiet(30);
        }
        await quiet();
        expect(wire.registers, 'REGISTERs before the refresh instant (3540 s)').to.have.length(2);
        expect(log.refreshed).to.have.length(0);
        expect((await server.registrar.lookup(AOR))[0]!.expiresAt).to.equal(T0 + 3_600_000);

        // The refresh itself goes out on a new connection.
        clock.advance(40_400);
        await until(() => log.refreshed.length >= 1, "'refreshed'");
        await quiet();
        expect(wire.registers).to.have.length(3);
        expect(wire.statuses()).to.deep.equal([401, 200, 200]);
        expect((await server.registrar.lookup(AOR))[0]!.expiresAt).to.equal(T0 + 3_540_400 + 3_600_000);
      });
    }

    it('a refresh whose pre-emptive nonce went stale gets 401 stale=true and is sent once more (4 REGISTERs in all)', async () => {
      // Default nonce lifetime (300 s) on the shared clock: by the refresh at 540 s the nonce is stale.
      const server = await startRegistrar(clock, { nonceLifetimeSec: 300 });
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { expires: 600 });
      await within(registration.ready, 'registration.ready');

      clock.advance(540_400);
      await until(() => log.refreshed.length >= 1, "'refreshed'");
      await quiet();
      expect(wire.registers).to.have.length(4);
      expect(wire.statuses()).to.deep.equal([401, 200, 401, 200]);
      const staleChallenge = wire.responses[2]!;
      expect(staleChallenge.wwwAuthenticate.length).to.be.greaterThan(0);
      for (const challenge of staleChallenge.wwwAuthenticate) expect(challenge.params.stale?.toLowerCase()).to.equal('true');
      const [, second, refresh, again] = wire.registers as [SipMessage, SipMessage, SipMessage, SipMessage];
      expect(refresh.authorization[0]!.params.nonce).to.equal(second.authorization[0]!.params.nonce);
      expect(again.authorization[0]!.params.nonce).to.not.equal(refresh.authorization[0]!.params.nonce);
      expect([refresh.callId, again.callId]).to.deep.equal([second.callId, second.callId]);
      expect([refresh.cseq.seq, again.cseq.seq]).to.deep.equal([second.cseq.seq + 1, second.cseq.seq + 2]);
      expect(log.refreshed).to.have.length(1);
      expect(log.failed).to.have.length(0);
      expect((await server.registrar.lookup(AOR))[0]!.expiresAt).to.equal(T0 + 540_400 + 600_000);
    });

    it('a binding nobody refreshes is gone from lookup once its time has passed', async () => {
      const server = await startRegistrar(clock);
      // The client runs on a clock of its own that never moves: it registers, then vanishes.
      const client = await startClient(new ManualClock(T0), server, protocol);
      const { registration } = register(client, { expires: 600 });
      const [binding] = await within(registration.ready, 'registration.ready');
      await stopStack(client.stack);
      await quiet();

      clock.advance(599_000);
      await quiet();
      const before = await server.registrar.lookup(AOR);
      // A binding without outbound does not depend on the connection it came over (RFC 5626 §6 is for outbound flows).
      expect(before, 'one second before expiry').to.have.length(1);
      expect(uriText(before[0]!.contact)).to.equal(uriText(binding!.contact));

      clock.advance(1_001);
      await quiet();
      expect(await server.registrar.lookup(AOR), 'after expiry').to.deep.equal([]);
      // 'expired' is optional (lookup filtering suffices), but when it comes it names this binding, once.
      expect(server.expired.length).to.be.at.most(1);
      if (server.expired.length === 1) {
        expect(server.expired[0]!.aor).to.equal(AOR);
        expect(uriText(server.expired[0]!.binding.contact)).to.equal(uriText(binding!.contact));
      }
      expect(wire.registers).to.have.length(2);
    });

    it("unregister(): our contact with expires 0, 'removed', lookup empty, no refresh afterwards", async () => {
      const server = await startRegistrar(clock);
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { expires: 600 });
      const [binding] = await within(registration.ready, 'registration.ready');

      await within(registration.unregister(), 'unregister()');
      expect(log.removed).to.have.length(1);
      expect(log.removed[0]!.status).to.equal(200);
      expect(registration.state).to.equal('removed');
      expect(await server.registrar.lookup(AOR)).to.deep.equal([]);
      expect(server.changes.at(-1)).to.deep.equal({ aor: AOR, bindings: [] });

      expect(wire.registers).to.have.length(3);
      expect(wire.statuses()).to.deep.equal([401, 200, 200]);
      const [, second, removal] = wire.registers as [SipMessage, SipMessage, SipMessage];
      expect(removal.wildcardContact).to.equal(false);
      expect(removal.contact).to.have.length(1);
      expect(removal.contact[0]!.uri.toString()).to.equal(uriText(binding!.contact));
      expect(requestedExpires(removal)).to.equal(0);
      expect(removal.callId).to.equal(second.callId);
      expect(removal.cseq.seq).to.equal(second.cseq.seq + 1);
      expect(removal.authorization).to.have.length(1);
      // The 200 of a removal lists no binding of ours (there is none left).
      expect(wire.responses[2]!.contact).to.have.length(0);

      clock.advance(600_000);
      await quiet();
      expect(wire.registers, 'no refresh after unregister()').to.have.length(3);
    });

    it('unregisterAll(): Contact: * with Expires: 0 removes the bindings of two clients with different contacts', async () => {
      const server = await startRegistrar(clock);
      const one = await startClient(clock, server, protocol);
      const two = await startClient(clock, server, protocol);
      const first = register(one, { expires: 600 });
      const [b1] = await within(first.registration.ready, 'first ready');
      const second = register(two, { expires: 600 });
      const secondBindings = await within(second.registration.ready, 'second ready');
      expectDefaultContact(b1!.contact, one, protocol);
      // The second 200 lists both bindings of the AOR.
      expect(secondBindings).to.have.length(2);
      expect(second.registration.bindings).to.have.length(2);
      const stored = await server.registrar.lookup(AOR);
      expect(stored.map((b) => uriText(b.contact)).sort()).to.deep.equal(secondBindings.map((b) => uriText(b.contact)).sort());
      expect(new Set(stored.map((b) => uriText(b.contact))).size).to.equal(2);

      await within(first.registration.unregisterAll(), 'unregisterAll()');
      expect(first.log.removed).to.have.length(1);
      expect(first.log.removed[0]!.status).to.equal(200);
      expect(first.registration.state).to.equal('removed');
      expect(await server.registrar.lookup(AOR)).to.deep.equal([]);

      expect(wire.registers).to.have.length(5);
      expect(wire.statuses()).to.deep.equal([401, 200, 401, 200, 200]);
      const all = wire.registers[4]!;
      expect(all.header('contact')).to.equal('*');
      expect(all.headerLineCount('contact')).to.equal(1);
      expect(all.expires).to.equal(0);
      expect(all.callId).to.equal(wire.registers[1]!.callId);
      expect(all.cseq.seq).to.equal(wire.registers[1]!.cseq.seq + 1);
    });

    it('423: asked 60 where the minimum is 120 → sent again at once with 120; 3 REGISTERs (401, 423, 200)', async () => {
      const server = await startRegistrar(clock, { minExpires: 120 });
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { expires: 60 });
      const bindings = await within(registration.ready, 'registration.ready');

      expect(wire.registers).to.have.length(3);
      expect(wire.statuses()).to.deep.equal([401, 423, 200]);
      expect(wire.responses[1]!.header('min-expires')).to.equal('120');
      expect(wire.registers.map(requestedExpires)).to.deep.equal([60, 60, 120]);
      const [, second, third] = wire.registers as [SipMessage, SipMessage, SipMessage];
      expect(third.callId).to.equal(second.callId);
      expect(third.cseq.seq).to.equal(second.cseq.seq + 1);
      expect(third.authorization, 'pre-emptive credentials after the 423').to.have.length(1);

      expect(bindings).to.have.length(1);
      expect(bindings[0]!.expires).to.equal(120);
      expect(registration.expires).to.equal(120);
      expect(log.failed).to.have.length(0);
      const stored = await server.registrar.lookup(AOR);
      expect(stored).to.have.length(1);
      expect(stored[0]!.expiresAt).to.equal(T0 + 120_000);
    });

    it("a wrong password: ready rejects with DUM_REGISTRATION_FAILED carrying the 401, 'failed', 2 REGISTERs, then a retry only after the backoff", async () => {
      const server = await startRegistrar(clock);
      const client = await startClient(clock, server, protocol, { credentials: [{ username: 'alice', password: 'wrong' }] });
      const { registration, log } = register(client, { expires: 600 });

      const error = await rejection(registration.ready, 'registration.ready');
      expect(error).to.be.instanceOf(DumError);
      expect((error as DumError).code).to.equal('DUM_REGISTRATION_FAILED');
      expect((error as DumError).response?.status).to.equal(401);
      expect(log.failed).to.have.length(1);
      expect(log.failed[0]!.error).to.be.instanceOf(DumError);
      expect(log.failed[0]!.error.code).to.equal('DUM_REGISTRATION_FAILED');
      expect(log.failed[0]!.response?.status).to.equal(401);
      expect(log.registered).to.have.length(0);

      await quiet();
      expect(wire.registers, 'REGISTERs of the first attempt').to.have.length(2);
      expect(wire.statuses()).to.deep.equal([401, 401]);
      expect(wire.registers[1]!.authorization).to.have.length(1);
      expect(registration.state).to.equal('retrying');
      expect(await server.registrar.lookup(AOR)).to.deep.equal([]);

      // RFC 5626 §4.5 after one failure: W = min(1800, 30 · 2^1) = 60 s, waited 50–100 % of —
      // "the first retry happens somewhere between 30 and 60 seconds".
      clock.advance(29_900);
      await quiet();
      expect(wire.registers, 'no retry before 30 s').to.have.length(2);
      clock.advance(30_200);
      await until(() => log.failed.length >= 2, "the retry's 'failed'");
      await quiet();
      // The retry fails again; with or without pre-emptive (wrong) credentials it is 1 or 2 REGISTERs.
      expect(wire.registers.length).to.be.within(3, 4);
      expect(log.failed).to.have.length(2);
      expect(log.failed[1]!.response?.status).to.equal(401);
    });

    it("registering someone else's AOR (authenticated as alice, To bob) → 403 and no binding", async () => {
      const server = await startRegistrar(clock);
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { aor: 'sip:bob@example.com', expires: 600 });

      const error = await rejection(registration.ready, 'registration.ready');
      expect(error).to.be.instanceOf(DumError);
      expect((error as DumError).code).to.equal('DUM_REGISTRATION_FAILED');
      expect((error as DumError).response?.status).to.equal(403);
      expect(log.failed).to.have.length(1);
      expect(log.failed[0]!.response?.status).to.equal(403);

      await quiet();
      expect(wire.registers).to.have.length(2);
      expect(wire.statuses()).to.deep.equal([401, 403]);
      expect(wire.registers[1]!.to.uri.toString()).to.equal('sip:bob@example.com');
      expect(wire.registers[1]!.authorization[0]!.params.username).to.equal('alice');
      expect(await server.registrar.lookup('sip:bob@example.com')).to.deep.equal([]);
      expect(await server.registrar.lookup(AOR)).to.deep.equal([]);
    });

    it('fetch() returns the current bindings (remaining time) and changes nothing', async () => {
      const server = await startRegistrar(clock);
      const client = await startClient(clock, server, protocol);
      const { registration, log } = register(client, { expires: 600 });
      const [binding] = await within(registration.ready, 'registration.ready');
      const storedBefore = await server.registrar.lookup(AOR);

      clock.advance(100_000);
      const fetched = await within(registration.fetch(), 'fetch()');
      expect(fetched).to.have.length(1);
      expect(uriText(fetched[0]!.contact)).to.equal(uriText(binding!.contact));
      expect(fetched[0]!.expires).to.equal(500);

      expect(wire.registers).to.have.length(3);
      const query = wire.registers[2]!;
      expect(query.hasHeader('contact'), 'a fetch carries no Contact').to.equal(false);
      expect(query.callId).to.equal(wire.registers[1]!.callId);
      expect(query.cseq.seq).to.equal(wire.registers[1]!.cseq.seq + 1);
      expect(wire.statuses()).to.deep.equal([401, 200, 200]);

      const storedAfter = await server.registrar.lookup(AOR);
      expect(storedAfter).to.have.length(1);
      expect(storedAfter[0]!.expiresAt).to.equal(storedBefore[0]!.expiresAt);
      expect(storedAfter[0]!.expiresAt).to.equal(T0 + 600_000);
      expect(storedAfter[0]!.cseq).to.equal(storedBefore[0]!.cseq);
      expect(storedAfter[0]!.callId).to.equal(storedBefore[0]!.callId);
      expect(registration.state).to.equal('registered');
      expect(log.failed).to.have.length(0);
    });
  });
}

// =============================================================================================
// 2. RFC 5626 outbound over TCP
// =============================================================================================

describe('DUM registration with outbound over TCP (RFC 5626)', function () {
  this.timeout(20_000);
  let clock: ManualClock;
  let wire: Wire;
  let server: RegistrarSide;

  beforeEach(async () => {
    clock = new ManualClock(T0);
    wire = new Wire();
    server = await startRegistrar(clock);
  });

  afterEach(async () => {
    wire.close();
    await stopAll();
  });

  async function device(instanceId: string): Promise<{ client: ClientSide; registration: ClientRegistration; log: RegistrationLog; bindings: Binding[] }> {
    const client = await startClient(clock, server, 'tcp', { instanceId }, [`tcp:${HOST}:0`]);
    const { registration, log } = register(client, { expires: 600, outbound: { regId: 1 } });
    const bindings = await within(registration.ready, `ready of ${instanceId}`);
    return { client, registration, log, bindings };
  }

  function byInstance(bindings: StoredBinding[], instance: string): StoredBinding {
    const found = bindings.find((b) => bareInstance(b.instance) === instance);
    if (!found) throw new Error(`no binding for ${instance} among ${JSON.stringify(bindings)}`);
    return found;
  }

  it('two devices with instance ids and reg-id 1: two bindings with instance, reg-id and flow; the 200 carries Require: outbound', async () => {
    const a = await device(INSTANCE_A);
    expect(a.log.registered[0]!.response.require).to.deep.equal(['outbound']);
    expect(a.log.registered[0]!.response.header('require')).to.equal('outbound');
    const b = await device(INSTANCE_B);
    expect(b.log.registered[0]!.response.header('require')).to.equal('outbound');
    expect(b.bindings).to.have.length(2);
    expect(b.bindings.map((x) => bareInstance(x.instance)).sort()).to.deep.equal([INSTANCE_A, INSTANCE_B]);
    expect(b.bindings.map((x) => x.regId)).to.deep.equal([1, 1]);

    // What the devices sent (§4.2): +sip.instance and reg-id on the Contact, Supported: outbound, path.
    expect(wire.registers).to.have.length(4);
    const authorized = [wire.registers[1]!, wire.registers[3]!];
    for (const [i, instance] of [INSTANCE_A, INSTANCE_B].entries()) {
      const request = authorized[i]!;
      expect(request.contact).to.have.length(1);
      expect(request.contact[0]!.params['+sip.instance']).to.equal(`"<${instance}>"`);
      expect(request.contact[0]!.params['reg-id']).to.equal('1');
      expect(request.supported).to.include.members(['outbound', 'path']);
    }

    const stored = await server.registrar.lookup(AOR);
    expect(stored).to.have.length(2);
    const sa = byInstance(stored, INSTANCE_A);
    const sb = byInstance(stored, INSTANCE_B);
    expect([sa.regId, sb.regId]).to.deep.equal([1, 1]);
    expectDefaultContact(sa.contact, a.client, 'tcp');
    expectDefaultContact(sb.contact, b.client, 'tcp');
    expect(sa.flow?.protocol).to.equal('tcp');
    expect(sb.flow?.protocol).to.equal('tcp');
    expect(sa.flow?.connectionId).to.be.a('number');
    expect(sb.flow?.connectionId).to.be.a('number');
    expect(sa.flow?.connectionId).to.not.equal(sb.flow?.connectionId);
    expect(a.registration.state).to.equal('registered');
  });

  it('the same instance and reg-id registering from a new contact (new Call-ID) replaces its binding: still 2', async () => {
    const a = await device(INSTANCE_A);
    await device(INSTANCE_B);
    const before = await server.registrar.lookup(AOR);
    const oldB = byInstance(before, INSTANCE_B);

    // Device A again, from another stack: another port, so another contact URI, and another Call-ID.
    const again = await device(INSTANCE_A);
    expect(again.bindings).to.have.length(2);
    const stored = await server.registrar.lookup(AOR);
    expect(stored).to.have.length(2);
    const newA = byInstance(stored, INSTANCE_A);
    expectDefaultContact(newA.contact, again.client, 'tcp');
    expect(uriText(newA.contact)).to.not.equal(uriText(byInstance(before, INSTANCE_A).contact));
    expect(newA.callId).to.equal(wire.registers.at(-1)!.callId);
    expect(newA.callId).to.not.equal(wire.registers[1]!.callId);
    expect(newA.flow?.connectionId).to.not.equal(byInstance(before, INSTANCE_A).flow?.connectionId);
    const sameB = byInstance(stored, INSTANCE_B);
    expect(uriText(sameB.contact)).to.equal(uriText(oldB.contact));
    expect(sameB.expiresAt).to.equal(oldB.expiresAt);
    expect(a.registration.state).to.equal('registered');
  });

  it('registrar.flowFailed(connectionId) removes the binding registered over that flow, and only it', async () => {
    const a = await device(INSTANCE_A);
    await device(INSTANCE_B);
    const stored = await server.registrar.lookup(AOR);
    const flowA = byInstance(stored, INSTANCE_A).flow;
    const flowB = byInstance(stored, INSTANCE_B).flow;
    expect(flowB?.connectionId).to.be.a('number');
    const changes = server.changes.length;

    // A connection id no binding uses: nothing happens.
    const unused = Math.max(flowA!.connectionId!, flowB!.connectionId!) + 1000;
    await within(server.registrar.flowFailed(unused), 'flowFailed(unused)');
    expect(await server.registrar.lookup(AOR)).to.have.length(2);
    expect(server.changes.length).to.equal(changes);

    // B's connection is still open: this is the explicit call alone at work.
    await within(server.registrar.flowFailed(flowB!.connectionId!), 'flowFailed()');
    const left = await server.registrar.lookup(AOR);
    expect(left).to.have.length(1);
    expect(bareInstance(left[0]!.instance)).to.equal(INSTANCE_A);
    expectDefaultContact(left[0]!.contact, a.client, 'tcp');
    expect(left[0]!.flow?.connectionId).to.equal(flowA!.connectionId);
    expect(server.changes).to.have.length(changes + 1);
    expect(server.changes.at(-1)!.bindings.map((x) => bareInstance(x.instance))).to.deep.equal([INSTANCE_A]);
  });

  it("a device whose stack went away: its binding goes with its flow (the registrar noticing, or flowFailed), the other device's stays", async () => {
    const a = await device(INSTANCE_A);
    const b = await device(INSTANCE_B);
    const stored = await server.registrar.lookup(AOR);
    const flow = byInstance(stored, INSTANCE_B).flow;
    expect(flow?.connectionId).to.be.a('number');

    await stopStack(b.client.stack);
    await quiet();
    await within(server.registrar.flowFailed(flow!.connectionId!), 'flowFailed()');

    const left = await server.registrar.lookup(AOR);
    expect(left).to.have.length(1);
    expect(bareInstance(left[0]!.instance)).to.equal(INSTANCE_A);
    expectDefaultContact(left[0]!.contact, a.client, 'tcp');
    const last = server.changes.at(-1)!;
    expect(last.aor).to.equal(AOR);
    expect(last.bindings.map((x) => bareInstance(x.instance))).to.deep.equal([INSTANCE_A]);
  });
});

// =============================================================================================
// 3. Hand-written REGISTERs against a registrar without authentication
// =============================================================================================

describe('Registrar, raw REGISTERs over UDP (RFC 3261 §10.3, no authentication)', function () {
  this.timeout(20_000);
  let clock: ManualClock;
  let server: RegistrarSide;
  let peer: UdpSipPeer;
  let port: number;

  beforeEach(async () => {
    clock = new ManualClock(T0);
    server = await startRegistrar(clock, { authenticate: false, maxExpires: 7200 }, [`udp:${HOST}:0`]);
    port = portOf(server.stack, 'udp');
    peer = await UdpSipPeer.bind(HOST);
  });

  afterEach(async () => {
    await peer.close();
    await stopAll();
  });

  interface Raw {
    uri?: string;
    to?: string;
    callId?: string;
    cseq?: number;
    contacts?: string[];
    expires?: number;
    headers?: string[];
  }

  /** Sends one REGISTER (a new transaction) and resolves with its final response. */
  async function send(raw: Raw = {}): Promise<SipMessage> {
    const branch = `z9hG4bK-${token()}`;
    const to = raw.to ?? AOR;
    const lines = [
      `REGISTER ${raw.uri ?? `sip:${DOMAIN}`} SIP/2.0`,
      `Via: SIP/2.0/UDP ${HOST}:${peer.port};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: <${to}>;tag=${token(4)}`,
      `To: <${to}>`,
      `Call-ID: ${raw.callId ?? `reg-${token()}`}`,
      `CSeq: ${raw.cseq ?? 1} REGISTER`,
      ...(raw.contacts ?? []).map((c) => `Contact: ${c}`),
      ...(raw.expires === undefined ? [] : [`Expires: ${raw.expires}`]),
      ...(raw.headers ?? []),
      'Content-Length: 0',
    ];
    const from = peer.received.length;
    await peer.send(sip(lines), port, HOST);
    const got = await peer.waitFor(
      (r) => r.message !== undefined && !r.message.isRequest && r.message.status >= 200 && r.message.via[0]?.branch === branch,
      IO_CAP_MS,
      from,
    );
    if (!got?.message) throw new Error(`no final response to the REGISTER (branch ${branch}) within ${IO_CAP_MS} ms`);
    return got.message;
  }

  const A = 'sip:alice@127.0.0.1:5071';
  const B = 'sip:alice@127.0.0.1:5072';

  async function contactsOf(aor = AOR): Promise<string[]> {
    return (await server.registrar.lookup(aor)).map((b) => uriText(b.contact)).sort();
  }

  it('404 when the Request-URI names a domain the registrar does not serve (step 1)', async () => {
    const response = await send({ uri: 'sip:example.org', to: 'sip:alice@example.org', contacts: [`<${A}>`], expires: 600 });
    expect(response.status).to.equal(404);
    expect(response.hasHeader('contact')).to.equal(false);
    expect(await contactsOf()).to.deep.equal([]);
  });

  it('404 when the To AOR is in a domain not served though the Request-URI is (step 5)', async () => {
    const response = await send({ to: 'sip:alice@example.org', contacts: [`<${A}>`], expires: 600 });
    expect(response.status).to.equal(404);
    expect(await contactsOf()).to.deep.equal([]);
  });

  it('420 with Unsupported: foo for Require: foo, path (step 2); path alone is fine; the domain check comes first', async () => {
    const refused = await send({ contacts: [`<${A}>`], expires: 600, headers: ['Require: foo, path'] });
    expect(refused.status).to.equal(420);
    expect(refused.header('unsupported')).to.equal('foo');
    expect(refused.headerLineCount('unsupported')).to.equal(1);
    expect(await contactsOf()).to.deep.equal([]);

    const elsewhere = await send({ uri: 'sip:example.org', to: 'sip:alice@example.org', contacts: [`<${A}>`], expires: 600, headers: ['Require: foo'] });
    expect(elsewhere.status, 'step 1 (404) before step 2 (420)').to.equal(404);

    const path = await send({ contacts: [`<${A}>`], expires: 600, headers: ['Require: path'] });
    expect(path.status).to.equal(200);
    expect(await contactsOf()).to.deep.equal([A]);
  });

  it('Contact: * is refused with 400 unless alone and with Expires: 0 (step 6)', async () => {
    await send({ contacts: [`<${A}>`], expires: 600 });
    const withExpires = await send({ contacts: ['*'], expires: 3600 });
    expect(withExpires.status).to.equal(400);
    const noExpires = await send({ contacts: ['*'] });
    expect(noExpires.status).to.equal(400);
    const withAnother = await send({ contacts: ['*', `<${B}>`], expires: 0 });
    expect(withAnother.status).to.equal(400);
    expect(await contactsOf()).to.deep.equal([A]);
  });

  it('Contact: * with Expires: 0 removes every binding: 200 with no Contact', async () => {
    await send({ contacts: [`<${A}>`], expires: 600 });
    await send({ contacts: [`<${B}>`], expires: 600 });
    expect(await contactsOf()).to.deep.equal([A, B]);
    const response = await send({ contacts: ['*'], expires: 0 });
    expect(response.status).to.equal(200);
    expect(response.hasHeader('contact')).to.equal(false);
    expect(await contactsOf()).to.deep.equal([]);
    expect(server.changes.at(-1)).to.deep.equal({ aor: AOR, bindings: [] });
  });

  it('423 with Min-Expires: 60 below the minimum (header or parameter), and nothing of the request is stored', async () => {
    const header = await send({ contacts: [`<${A}>`], expires: 30 });
    expect(header.status).to.equal(423);
    expect(header.header('min-expires')).to.equal('60');
    const param = await send({ contacts: [`<${A}>;expires=59`], expires: 3600 });
    expect(param.status).to.equal(423);
    expect(param.header('min-expires')).to.equal('60');
    const mixed = await send({ contacts: [`<${A}>;expires=600`, `<${B}>;expires=30`] });
    expect(mixed.status).to.equal(423);
    expect(mixed.header('min-expires')).to.equal('60');
    expect(await contactsOf()).to.deep.equal([]);
  });

  it('above maxExpires (7200): 100000 is granted as 7200 in the Contact of the 200', async () => {
    const response = await send({ contacts: [`<${A}>`], expires: 100_000 });
    expect(response.status).to.equal(200);
    const contacts = listed(response);
    expect([...contacts.keys()]).to.deep.equal([A]);
    expect(contacts.get(A)!.params.expires).to.equal('7200');
    const stored = await server.registrar.lookup(AOR);
    expect(stored[0]!.expiresAt).to.equal(T0 + 7_200_000);
  });

  it("a contact's expires parameter overrides the Expires header; without either the default 3600 applies", async () => {
    const response = await send({ contacts: [`<${A}>;expires=300`, `<${B}>`], expires: 1200 });
    expect(response.status).to.equal(200);
    const contacts = listed(response);
    expect(contacts.get(A)?.params.expires).to.equal('300');
    expect(contacts.get(B)?.params.expires).to.equal('1200');
    const stored = new Map((await server.registrar.lookup(AOR)).map((b) => [uriText(b.contact), b]));
    expect(stored.get(A)?.expiresAt).to.equal(T0 + 300_000);
    expect(stored.get(B)?.expiresAt).to.equal(T0 + 1_200_000);

    const plain = await send({ to: 'sip:carol@example.com', contacts: ['<sip:carol@127.0.0.1:5073>'] });
    expect(plain.status).to.equal(200);
    expect(listed(plain).get('sip:carol@127.0.0.1:5073')?.params.expires).to.equal('3600');
  });

  it('the same Call-ID with an equal or lower CSeq → 500 and nothing changes, even for a new contact in the same request', async () => {
    const callId = `same-${token()}`;
    expect((await send({ callId, cseq: 10, contacts: [`<${A}>`], expires: 600 })).status).to.equal(200);
    const [original] = await server.registrar.lookup(AOR);

    const equal = await send({ callId, cseq: 10, contacts: [`<${A}>`], expires: 1200 });
    expect(equal.status).to.equal(500);
    const lower = await send({ callId, cseq: 9, contacts: [`<${A}>`], expires: 1200 });
    expect(lower.status).to.equal(500);
    const removal = await send({ callId, cseq: 9, contacts: [`<${A}>`], expires: 0 });
    expect(removal.status, 'a removal is an update too').to.equal(500);
    // All or nothing: B alone would be fine, A (second) violates the rule: neither is applied.
    const both = await send({ callId, cseq: 10, contacts: [`<${B}>;expires=900`, `<${A}>;expires=900`] });
    expect(both.status).to.equal(500);

    const stored = await server.registrar.lookup(AOR);
    expect(stored).to.have.length(1);
    expect(uriText(stored[0]!.contact)).to.equal(A);
    expect(stored[0]!.expiresAt).to.equal(original!.expiresAt);
    expect(stored[0]!.expiresAt).to.equal(T0 + 600_000);
    expect(stored[0]!.cseq).to.equal(10);
    expect(stored[0]!.callId).to.equal(callId);

    // A higher CSeq on the same Call-ID updates.
    const higher = await send({ callId, cseq: 11, contacts: [`<${A}>`], expires: 900 });
    expect(higher.status).to.equal(200);
    const [updated] = await server.registrar.lookup(AOR);
    expect(updated!.expiresAt).to.equal(T0 + 900_000);
    expect(updated!.cseq).to.equal(11);
  });

  it('a new Call-ID with a lower CSeq updates the binding (step 7: the Call-ID differs)', async () => {
    expect((await send({ callId: 'first-call', cseq: 50, contacts: [`<${A}>`], expires: 600 })).status).to.equal(200);
    clock.advance(10_000);
    const response = await send({ callId: 'second-call', cseq: 1, contacts: [`<${A}>`], expires: 1200 });
    expect(response.status).to.equal(200);
    const stored = await server.registrar.lookup(AOR);
    expect(stored).to.have.length(1);
    expect(stored[0]!.callId).to.equal('second-call');
    expect(stored[0]!.cseq).to.equal(1);
    expect(stored[0]!.expiresAt).to.equal(T0 + 10_000 + 1_200_000);
  });

  it('expires 0 on one contact removes only that binding; the 200 lists the rest', async () => {
    await send({ contacts: [`<${A}>`], expires: 600 });
    await send({ contacts: [`<${B}>`], expires: 600 });
    const response = await send({ contacts: [`<${A}>;expires=0`] });
    expect(response.status).to.equal(200);
    expect([...listed(response).keys()]).to.deep.equal([B]);
    expect(await contactsOf()).to.deep.equal([B]);
  });

  it('the 200 lists every current binding of the AOR with its remaining expires, and a Date', async () => {
    const first = await send({ callId: 'one', contacts: [`<${A}>`], expires: 600 });
    expect(first.status).to.equal(200);
    expect([...listed(first).keys()]).to.deep.equal([A]);
    expect(first.header('date')).to.match(RFC1123);
    // The Date is the injected clock's, never the system's.
    const at = Date.parse(first.header('date')!);
    expect(at - (at % 1000)).to.equal(clock.now() - (clock.now() % 1000));

    clock.advance(100_000);
    const second = await send({ callId: 'two', contacts: [`<${B}>`], expires: 1200 });
    expect(second.status).to.equal(200);
    const contacts = listed(second);
    expect([...contacts.keys()].sort()).to.deep.equal([A, B]);
    expect(contacts.get(A)!.params.expires).to.equal('500');
    expect(contacts.get(B)!.params.expires).to.equal('1200');
    expect(second.header('date')).to.match(RFC1123);
    expect(Date.parse(second.header('date')!)).to.equal(at + 100_000);
    expect(second.headerLineCount('date')).to.equal(1);
    expect(second.hasHeader('require'), 'no Require: outbound without outbound').to.equal(false);
  });

  it('a REGISTER without Contact is a query: 200 listing the bindings, nothing changed', async () => {
    await send({ contacts: [`<${A}>`], expires: 600 });
    const before = await server.registrar.lookup(AOR);
    const changes = server.changes.length;
    clock.advance(60_000);
    const response = await send({ callId: 'query', cseq: 1 });
    expect(response.status).to.equal(200);
    const contacts = listed(response);
    expect([...contacts.keys()]).to.deep.equal([A]);
    expect(contacts.get(A)!.params.expires).to.equal('540');
    expect(response.header('date')).to.match(RFC1123);
    const after = await server.registrar.lookup(AOR);
    expect(after).to.have.length(1);
    expect(after[0]!.expiresAt).to.equal(before[0]!.expiresAt);
    expect(after[0]!.callId).to.equal(before[0]!.callId);
    expect(after[0]!.cseq).to.equal(before[0]!.cseq);
    expect(server.changes.length, "no 'bindings' event for a query").to.equal(changes);

    const nobody = await send({ to: 'sip:dave@example.com' });
    expect(nobody.status).to.equal(200);
    expect(nobody.hasHeader('contact')).to.equal(false);
  });

  it('q values are kept: in the store and in the 200', async () => {
    const response = await send({ contacts: [`<${A}>;q=0.7`, `<${B}>;q=0.2`], expires: 600 });
    expect(response.status).to.equal(200);
    const contacts = listed(response);
    expect(contacts.get(A)?.params.q).to.equal('0.7');
    expect(contacts.get(B)?.params.q).to.equal('0.2');
    const stored = new Map((await server.registrar.lookup(AOR)).map((b) => [uriText(b.contact), b]));
    expect(stored.get(A)?.q).to.equal(0.7);
    expect(stored.get(B)?.q).to.equal(0.2);
  });
});
