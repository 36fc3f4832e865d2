// Federation trust (issue 16, docs/federation.md "Authentication" and "Routing"), on real
// loopback sockets: what a rogue neighbour holding (or not) the network's secret can no longer do.
//
// - A rogue SIP endpoint (a bare SipStack whose default TU answers every request itself) that
//   challenges a server's SUBSCRIBE in another server's realm, or an unknown one, gets no
//   Authorization at all (before: the network secret answered any realm, and a neighbour's
//   credential answered its realm wherever it was asked).
// - Pre-emptive credentials go only to the destination they belong to.
// - An unconfigured neighbour `aa.example` with the network's secret advertising `c.example`
//   does not win the route over the configured path (before: it won the tie by name).
// - A neighbour relays for a foreign sender of a known domain only when it has a route to it.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import {
  createResponse,
  DialogUsageManager,
  DumError,
  ManualClock,
  ParleyServer,
  SipStack,
  type ServerRequest,
  type SipMessage,
} from '../../src/index.js';
import { networkCommand } from '../../src/cli/network-command.js';
import { drain, within } from '../support/waiting.js';

type ServerConfig = ParleyServer['config'];

const HOST = '127.0.0.1';
const SECRET = 'the network secret';
const FEDERATION: Partial<ServerConfig> = { federationSecret: SECRET, pingIntervalMs: 200, pingMisses: 3, linkRetryMs: [100, 1000], deliveryRetryMs: [100, 1000] };

const servers: ParleyServer[] = [];
const stacks: SipStack[] = [];

async function startServer(name: string, config: Partial<ServerConfig> = {}): Promise<ParleyServer> {
  const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };
  const server = await ParleyServer.start({ domains: [name], listen: [`tcp:${HOST}:0`, `udp:${HOST}:0`], data: ':memory:', ...FEDERATION, ...config }, { logger: silent });
  servers.push(server);
  return server;
}

function uriOf(server: ParleyServer): string {
  const tcp = server.transports.find((t) => t.protocol === 'tcp')!;
  return `sip:${HOST}:${tcp.local.port};transport=tcp`;
}

function routeText(server: ParleyServer, domain: string): string {
  const route = server.federation.route(domain);
  return route ? `${route.nextHop} [${route.path.join(' ')}]` : 'none';
}

async function eventually(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A SIP endpoint that answers every request with `answer(request)` and records what it got. */
async function rogue(answer: (request: ServerRequest) => void): Promise<{ uri: string; received: SipMessage[] }> {
  const stack = new SipStack({ transports: [`tcp:${HOST}:0`], dns: false });
  stacks.push(stack);
  await stack.start();
  const received: SipMessage[] = [];
  stack.setDefaultTu({
    profile: { methods: ['SUBSCRIBE', 'NOTIFY', 'MESSAGE', 'OPTIONS'], bodyTypes: ['*/*'] },
    onRequest: (request) => {
      received.push(request.message);
      answer(request);
    },
  });
  const port = stack.transports.find((t) => t.protocol === 'tcp')!.local.port;
  return { uri: `sip:${HOST}:${port};transport=tcp`, received };
}

function challenge(request: ServerRequest, realm: string): void {
  const response = createResponse(request.message, 401, 'Unauthorized');
  response.addHeader('WWW-Authenticate', `Digest realm="${realm}", nonce="${randomBytes(12).toString('hex')}", algorithm=MD5, qop="auth"`);
  request.send(response);
}

/** A bare DUM that speaks as neighbour `name` to `server` with `secret`. */
async function neighbourDum(server: ParleyServer, name: string, secret = SECRET): Promise<DialogUsageManager> {
  const stack = new SipStack({ transports: [`udp:${HOST}:0`, `tcp:${HOST}:0`], clock: new ManualClock(Date.now()), dns: false });
  stacks.push(stack);
  await stack.start();
  return new DialogUsageManager(stack, { aor: `sip:parley@${name}`, credentials: [{ username: name, password: secret, realm: `peers@${server.config.domains[0]!}` }], outboundProxy: uriOf(server) });
}

function cpim(from: string, to: string, id: string): string {
  return [`From: <${from}>`, `To: <${to}>`, `DateTime: ${new Date().toISOString()}`, 'NS: imdn <urn:ietf:params:imdn>', `imdn.Message-ID: ${id}`, '', 'Content-Type: text/plain;charset=utf-8', 'Content-Length: 2', '', 'hi'].join('\r\n');
}

async function relayMessage(dum: DialogUsageManager, options: { to: string; from: string; path: string }): Promise<SipMessage> {
  const id = randomBytes(10).toString('hex');
  const request = dum.newRequest('MESSAGE', options.to, {
    from: options.from,
    headers: { 'Parley-Path': options.path, 'Parley-Message-ID': id, Date: new Date().toUTCString() },
    body: cpim(options.from, options.to, id),
    contentType: 'message/cpim',
  });
  try {
    return await within(dum.send(request).final, `MESSAGE ${options.to}: final response`);
  } catch (error) {
    if (error instanceof DumError && error.response) return error.response;
    throw error;
  }
}

function addUser(server: ParleyServer, aor: string): void {
  const [user, domain] = aor.split('@') as [string, string];
  server.store.addAccount(`sip:${user}@${domain}`, { MD5: 'x'.repeat(32), 'SHA-256': 'x'.repeat(64), 'SHA-512-256': 'x'.repeat(64) } as Parameters<ParleyServer['store']['addAccount']>[1]);
}

describe('Federation trust (issue 16)', function () {
  this.timeout(20_000);

  afterEach(async () => {
    await Promise.allSettled(servers.splice(0).map((s) => within(s.stop(), 'server.stop()', 10_000)));
    await Promise.allSettled(stacks.splice(0).map((s) => s.stop()));
  });

  describe('credentials bound to their realm', () => {
    for (const realm of ['peers@victim.example', 'other']) {
      it(`a rogue neighbour challenging in realm "${realm}" gets no Authorization; the link is refused`, async () => {
        const victim = await startServer('victim.example');
        const a = await startServer('a.example', { peers: [{ domain: 'victim.example', uri: uriOf(victim) }] });
        await eventually(() => routeText(a, 'victim.example') !== 'none', 'A linked to the victim');
        const evil = await rogue((request) => challenge(request, realm));
        const states: string[] = [];
        a.federation.on('link', (name, state) => name === 'rogue.example' && states.push(state));
        a.federation.addPeer({ domain: 'rogue.example', uri: evil.uri });
        await eventually(() => states.includes('refused'), `the rogue link refused (states ${states.join(' ')}; ${evil.received.length} requests)`);
        await drain();
        const subscribes = evil.received.filter((m) => m.method === 'SUBSCRIBE');
        expect(subscribes.length, 'SUBSCRIBEs the rogue got').to.be.greaterThan(0);
        expect(subscribes.map((m) => m.headers('authorization').length), 'Authorization headers per SUBSCRIBE').to.deep.equal(subscribes.map(() => 0));
      });
    }

    it('credentials learnt for a neighbour are never sent pre-emptively to another destination', async () => {
      const victim = await startServer('victim.example');
      const a = await startServer('a.example', { peers: [{ domain: 'victim.example', uri: uriOf(victim) }] });
      await eventually(() => routeText(a, 'victim.example') !== 'none', 'A linked to the victim');
      const evil = await rogue((request) => challenge(request, 'peers@rogue.example'));
      // What a subscription refresh or any new request of A's DUM to the rogue would carry.
      const toRogue = a.dum.newRequest('SUBSCRIBE', evil.uri, { headers: { Event: 'parley-routes' } });
      expect(a.dum.digest.preauthorize(toRogue), 'credentials added for the rogue').to.equal(0);
      expect(toRogue.headers('authorization'), 'Authorization to the rogue').to.deep.equal([]);
      const toVictim = a.dum.newRequest('SUBSCRIBE', uriOf(victim), { headers: { Event: 'parley-routes' } });
      expect(a.dum.digest.preauthorize(toVictim), 'credentials for the victim, to the victim (control)').to.equal(1);
      expect(toVictim.headers('authorization')[0], 'the realm').to.include('realm="peers@victim.example"');
    });
  });

  describe('the admin view needs the adminToken', () => {
    it('parley network without the token, or with a wrong one: exit 1, no view; with --token: the view', async () => {
      const a = await startServer('a.example', { adminToken: 'letmein' });
      const run = async (args: string[]): Promise<{ code: number; out: string[]; err: string[] }> => {
        const out: string[] = [];
        const err: string[] = [];
        const code = await networkCommand(['--server', uriOf(a), '--json', ...args], (l) => out.push(l), (l) => err.push(l));
        return { code, out, err };
      };
      const none = await run([]);
      expect([none.code, none.out.length], 'no token').to.deep.equal([1, 0]);
      expect(none.err.join('\n'), 'why').to.include('without a network view');
      const wrong = await run(['--token', 'guess']);
      expect([wrong.code, wrong.out.length], 'a wrong token').to.deep.equal([1, 0]);
      const right = await run(['--token', 'letmein']);
      expect(right.code, 'the right token').to.equal(0);
      expect((JSON.parse(right.out.join('\n')) as { server: string }).server, 'the view').to.equal('a.example');
    });
  });

  describe('routes: configured peers preferred', () => {
    it('an unconfigured aa.example with the network secret advertising c.example does not take the configured path', async () => {
      const c = await startServer('c.example');
      const b = await startServer('b.example', { peers: [{ domain: 'c.example', uri: uriOf(c) }] });
      const a = await startServer('a.example', { peers: [{ domain: 'b.example', uri: uriOf(b) }] });
      await eventually(() => routeText(a, 'c.example') === 'b.example [b.example c.example]', 'A routes c.example via B');
      // The attacker: a server named aa.example (sorts before b.example) linked to A by the
      // shared secret only, advertising c.example (it is linked to C too, so its path is as short).
      await startServer('aa.example', { peers: [{ domain: 'a.example', uri: uriOf(a) }, { domain: 'c.example', uri: uriOf(c) }] });
      await eventually(() => a.federation.table.candidates('c.example').some((r) => r.nextHop === 'aa.example'), 'A learnt c.example from aa.example');
      await drain(300);
      expect(routeText(a, 'c.example'), "A's route to c.example").to.equal('b.example [b.example c.example]');
      expect(a.federation.table.candidates('c.example').map((r) => `${r.nextHop} [${r.path.join(' ')}]`), 'candidates, best first').to.deep.equal(['b.example [b.example c.example]', 'aa.example [aa.example c.example]']);
      // The neighbour's own name is proven by its digest: the direct route to aa.example stays its own.
      expect(routeText(a, 'aa.example'), "A's route to aa.example").to.equal('aa.example [aa.example]');
    });
  });

  describe('a neighbour speaks for a foreign sender only from the path to its home', () => {
    it('480 (nothing stored) for a sender of a known domain the neighbour does not route; 202 for its own domain, one it routes, or one nobody knows; 480 before its link is up', async () => {
      const c = await startServer('c.example');
      const b = await startServer('b.example', { peers: [{ domain: 'c.example', uri: uriOf(c) }] });
      addUser(b, 'bob@b.example');
      await eventually(() => routeText(b, 'c.example') !== 'none', 'B linked to C');
      // y.example: holds the network's secret but B has no link with it: its routes are unknown.
      const early = await relayMessage(await neighbourDum(b, 'y.example'), { to: 'sip:bob@b.example', from: 'sip:carol@c.example', path: 'c.example, y.example' });
      expect([early.status, early.header('retry-after')], 'y.example (no link) for carol@c.example').to.deep.equal([480, '5']);
      // x.example: an unconfigured neighbour of B linked by the network's secret, advertising only itself.
      await startServer('x.example', { peers: [{ domain: 'b.example', uri: uriOf(b) }] });
      await eventually(() => routeText(b, 'c.example') !== 'none' && routeText(b, 'x.example') === 'x.example [x.example]', 'B linked to C and X');
      const x = await neighbourDum(b, 'x.example');
      const forged = await relayMessage(x, { to: 'sip:bob@b.example', from: 'sip:carol@c.example', path: 'c.example, x.example' });
      expect([forged.status, forged.reason], 'x.example speaking for carol@c.example').to.deep.equal([480, 'x.example is not on the path from c.example']);
      const unknown = await relayMessage(x, { to: 'sip:bob@b.example', from: 'sip:dave@d.example', path: 'd.example, x.example' });
      expect(unknown.status, 'x.example speaking for dave@d.example (a domain nobody here knows: nobody to protect)').to.equal(202);
      const own = await relayMessage(x, { to: 'sip:bob@b.example', from: 'sip:xavier@x.example', path: 'x.example' });
      expect(own.status, 'x.example for its own user').to.equal(202);
      const viaC = await relayMessage(await neighbourDum(b, 'c.example'), { to: 'sip:bob@b.example', from: 'sip:carol@c.example', path: 'c.example' });
      expect(viaC.status, 'C for its own user (control)').to.equal(202);
      expect(b.store.pending('sip:bob@b.example', 'urn:uuid:00000000-0000-4000-8000-00000000beef', 100).map((m) => m.sender).sort(), "stored for bob").to.deep.equal(['sip:carol@c.example', 'sip:dave@d.example', 'sip:xavier@x.example']);
    });
  });
});
