// docs/federation.md "Routing": a domain with no route is looked up by RFC 3263 DNS when
// `dnsFallback` is on. A real dns2 server on loopback publishes c.example's SIP service; a.example
// has no neighbour at all, forwards by DNS, and authenticates to c.example with the network secret.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountHashes } from '../../src/app/server/accounts.js';
import { ParleyClient, ParleyServer } from '../../src/index.js';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.js';
import { until, within } from '../support/waiting.js';

const SECRET = 'network-secret';
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

describe('federation: no route → RFC 3263 DNS (dnsFallback)', function () {
  this.timeout(30_000);
  let dns: TestDnsServer;
  let dir: string;
  const servers: ParleyServer[] = [];
  const clients: ParleyClient[] = [];

  before(async () => {
    dns = await startDnsServer();
    dir = await mkdtemp(join(tmpdir(), 'parley-fed-dns-'));
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled(servers.map((s) => s.stop()));
    await dns.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function start(domain: string, extra: Partial<ParleyServer['config']> = {}): Promise<ParleyServer> {
    const server = await ParleyServer.start(
      { domains: [domain], listen: ['tcp:127.0.0.1:0', 'udp:127.0.0.1:0'], data: ':memory:', federationSecret: SECRET, deliveryRetryMs: [100, 1000], ...extra },
      { logger: silent, stack: { dns: { nameservers: [dns.nameserver], hostsFile: false } } },
    );
    servers.push(server);
    return server;
  }

  function user(server: ParleyServer, aor: string, password: string): void {
    server.store.addAccount(`sip:${aor}` as never, accountHashes(`sip:${aor}` as never, password));
  }

  it('forwards by SRV to a server it has no link to, which takes it with the network secret; 404 without dnsFallback', async () => {
    const c = await start('c.example');
    const cPort = c.transports.find((t) => t.protocol === 'tcp')!.local.port;
    dns.records = [
      { type: 'SRV', name: '_sip._tcp.c.example', priority: 10, weight: 1, port: cPort, target: 'sip.c.example' },
      { type: 'A', name: 'sip.c.example', address: '127.0.0.1' },
    ];
    const a = await start('a.example', { dnsFallback: true });
    const strict = await start('s.example');
    user(a, 'alice@a.example', 'pa');
    user(strict, 'sam@s.example', 'ps');
    user(c, 'carol@c.example', 'pc');

    const carol = await ParleyClient.connect({ server: c.federation.uri, user: 'carol@c.example', password: 'pc', stateDir: join(dir, 'carol') });
    clients.push(carol);
    const received: string[] = [];
    carol.on('message', (m) => received.push(`${m.from} ${m.text}`));
    const alice = await ParleyClient.connect({ server: a.federation.uri, user: 'alice@a.example', password: 'pa', stateDir: join(dir, 'alice') });
    clients.push(alice);

    const sent = await within(alice.send('carol@c.example', 'found you by DNS'), 'alice sends');
    expect(sent.status).to.equal(202);
    await until(() => received.length === 1, 'carol receives it');
    expect(received).to.deep.equal(['alice@a.example found you by DNS']);
    expect(a.federation.route('c.example')).to.equal(undefined);
    expect(dns.queries.some((q) => q.name === '_sip._tcp.c.example' && q.type === 'SRV')).to.equal(true);

    const sam = await ParleyClient.connect({ server: strict.federation.uri, user: 'sam@s.example', password: 'ps', stateDir: join(dir, 'sam') });
    clients.push(sam);
    const refused = await within(
      sam.send('carol@c.example', 'no way there').catch((error: { status?: number }) => ({ status: error.status })),
      'sam sends',
    );
    expect(refused.status).to.equal(404);
  });
});
