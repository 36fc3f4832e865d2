// Time in the Parley server and client comes from the clock injected into their stacks
// (src/app/wall-clock.ts), never from the system's: a server on a ManualClock set to 2030
// stores, stamps and purges in 2030 while the test runs years earlier.
//
// - A message's `receivedAt` is the server clock's time, and moves when that clock moves (not
//   when real time does); the device gets it with `Date:` of that time (RFC 3261 §20.17).
// - An account added without a time is created at the clock's time; a device's last
//   registration (the store's `lastSeen`) is the clock's time too.
// - The delivery notification (RFC 5438) the server writes carries the clock's time as CPIM
//   `DateTime`, and is stored at it.
// - Retention: advancing the clock past `retentionDays` (2) makes the purge drop the message.
// - A client on a ManualClock writes its CPIM `DateTime` from that clock.
// - Bindings are kept in wall-clock time (src/app/server/durable-locations.ts): a server on the
//   system clock (which counts from its process's start) starting on a data directory where one
//   device's binding ended a second ago and another's ends in ten minutes delivers to the
//   second only — the first is not taken for registered for as long as the earlier process ran.
//
// The server's stack runs on a ManualClock that only the retention test advances; everything
// here goes over TCP (no retransmission timers). Clients run on real time unless said.
import { expect } from 'chai';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountHashes, ManualClock, openStore, ParleyClient, ParleyServer, parseMessage, type SipMessage, type StoredBinding } from '../../src/index.js';
import { UdpSipPeer } from '../support/udp-sip.js';
import { drain, until, within } from '../support/waiting.js';

const HOST = '127.0.0.1';
const DOMAIN = 'localhost';
const ALICE = `sip:alice@${DOMAIN}`;
const BOB = `sip:bob@${DOMAIN}`;
const PROBE = 'urn:uuid:00000000-0000-4000-8000-00000000c10c';
const T0 = Date.parse('2030-01-02T03:04:05.000Z');
const DAY_MS = 86_400_000;
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

describe('time from the injected clock (server, store, delivery, client)', function () {
  this.timeout(20_000);
  const dirs: string[] = [];
  const servers: ParleyServer[] = [];
  const clients: ParleyClient[] = [];
  const out: SipMessage[] = [];
  const onOut = (data: unknown): void => {
    try {
      out.push(parseMessage(Buffer.from((data as { bytes: Buffer }).bytes)));
    } catch {
      // keep-alives
    }
  };

  before(() => subscribe('parley:message:out', onOut));
  after(() => unsubscribe('parley:message:out', onOut));
  beforeEach(() => void (out.length = 0));
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => within(c.close(), 'client.close()')));
    await Promise.allSettled(servers.splice(0).map((s) => within(s.stop(), 'server.stop()')));
    await Promise.allSettled(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  async function tempDir(label: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `parley-clock-${label}-`));
    dirs.push(dir);
    return dir;
  }

  async function startServer(clock: ManualClock, retentionDays = 30): Promise<ParleyServer> {
    const server = await ParleyServer.start(
      { domains: [DOMAIN], listen: [`tcp:${HOST}:0`], data: await tempDir('data'), retentionDays },
      { logger: silent, stack: { clock, dns: false } },
    );
    servers.push(server);
    for (const aor of [ALICE, BOB]) server.store.addAccount(aor, accountHashes(aor, 'pw'));
    return server;
  }

  async function connect(server: ParleyServer, user: string, clock?: ManualClock): Promise<ParleyClient> {
    const client = await within(
      ParleyClient.connect({
        server: `sip:${HOST}:${server.transports[0]!.local.port};transport=tcp`,
        user: `${user}@${DOMAIN}`,
        password: 'pw',
        stateDir: await tempDir(`state-${user}`),
        ...(clock ? { stack: { clock } } : {}),
      }),
      `connect ${user}`,
    );
    clients.push(client);
    return client;
  }

  it("a message is stored at the server clock's time, and reaches the device with that Date; it moves with the clock, not with real time", async () => {
    const clock = new ManualClock(T0);
    const server = await startServer(clock);
    expect(server.store.account(ALICE)?.createdAt, 'an account added without a time').to.equal(T0);
    const alice = await connect(server, 'alice');
    expect((await within(alice.send('bob@localhost', 'first'), 'send first')).status).to.equal(202);
    clock.advance(1500);
    await drain(50); // real time passes too; the clock is what counts
    expect((await within(alice.send('bob@localhost', 'second'), 'send second')).status).to.equal(202);
    const stored = server.store.pending(BOB, PROBE, 10);
    expect(stored.map((m) => m.receivedAt)).to.deep.equal([T0, T0 + 1500]);

    const bob = await connect(server, 'bob');
    const got: string[] = [];
    bob.on('message', (m) => void got.push(m.text));
    await until(() => got.length === 2, 'bob receiving both');
    // The server's MESSAGEs to bob's device (at its contact), not alice's to the server.
    const deliveries = out.filter((m) => m.isRequest && m.method === 'MESSAGE' && m.to.uri.user === 'bob' && m.requestUri.host !== DOMAIN);
    expect(deliveries.map((m) => m.header('Date'))).to.deep.equal(['Wed, 02 Jan 2030 03:04:05 GMT', 'Wed, 02 Jan 2030 03:04:06 GMT']);
    const device = server.store.devices(BOB);
    expect(device.map((d) => d.lastSeen), "bob's device: last registered at the clock's time").to.deep.equal([T0 + 1500]);
  });

  it("the delivery notification carries the server clock's DateTime and is stored at it", async () => {
    const clock = new ManualClock(T0);
    const server = await startServer(clock);
    const alice = await connect(server, 'alice');
    const bob = await connect(server, 'bob');
    const got: string[] = [];
    bob.on('message', (m) => void got.push(m.text));
    clock.advance(42_000);
    await within(alice.send('bob@localhost', 'notify me'), 'send');
    await until(() => got.length === 1, 'bob receiving it');
    // Alice's device acknowledges the notification at once; the probe device still sees it.
    await until(() => server.store.pending(ALICE, PROBE, 10).length === 1, 'the notification stored for alice');
    const [notification] = server.store.pending(ALICE, PROBE, 10);
    expect(notification!.receivedAt).to.equal(T0 + 42_000);
    expect(notification!.body.toString('utf8')).to.include('DateTime: 2030-01-02T03:04:47.000Z');
  });

  it('retention: advancing the server clock past retentionDays purges a message nobody acknowledged', async () => {
    const clock = new ManualClock(T0);
    const server = await startServer(clock, 2);
    const alice = await connect(server, 'alice');
    await within(alice.send('bob@localhost', 'old news'), 'send');
    expect(server.store.pending(BOB, PROBE, 10)).to.have.length(1);
    await within(alice.close(), 'alice.close()');
    clients.splice(clients.indexOf(alice), 1);
    clock.advance(2 * DAY_MS - 60_000);
    expect(server.store.pending(BOB, PROBE, 10), 'kept within the retention').to.have.length(1);
    clock.advance(120_000); // the purge runs every minute of the server clock
    expect(server.store.pending(BOB, PROBE, 10), 'purged after 2 days of the clock').to.have.length(0);
  });

  it('a client on a ManualClock writes its CPIM DateTime from that clock', async () => {
    const server = await startServer(new ManualClock(T0));
    const clientClock = new ManualClock(Date.parse('2031-05-06T07:08:09.000Z'));
    const alice = await connect(server, 'alice', clientClock);
    await within(alice.send('bob@localhost', 'from 2031'), 'send');
    const [stored] = server.store.pending(BOB, PROBE, 10);
    expect(stored!.body.toString('utf8')).to.include('DateTime: 2031-05-06T07:08:09.000Z');
  });

  it('bindings in wall-clock time: after a (re)start on the system clock, a binding that ended is not delivered to, one that has not is', async () => {
    const data = await tempDir('bindings');
    const ended = await UdpSipPeer.bind(HOST);
    const live = await UdpSipPeer.bind(HOST);
    try {
      const wall = Date.now();
      const device = (peer: UdpSipPeer, n: number, expiresAt: number): StoredBinding => ({
        contact: `sip:bob@${HOST}:${peer.port}`,
        instance: `urn:uuid:00000000-0000-4000-8000-00000000000${n}`,
        expiresAt,
        callId: `reg-${n}`,
        cseq: 1,
        params: {},
        flow: { protocol: 'udp', address: HOST, port: peer.port },
      });
      const before = openStore(data);
      for (const aor of [ALICE, BOB]) before.addAccount(aor, accountHashes(aor, 'pw'));
      await before.put(BOB, [device(ended, 1, wall - 1000), device(live, 2, wall + 600_000)]);
      await before.append({ recipient: BOB, sender: ALICE, messageId: 'before-restart', contentType: 'text/plain', body: Buffer.from('waiting'), receivedAt: wall, notify: false });
      await before.close();

      const server = await ParleyServer.start({ domains: [DOMAIN], listen: [`udp:${HOST}:0`], data }, { logger: silent });
      servers.push(server);
      const isDelivery = (r: { message: SipMessage | undefined }): boolean => r.message?.isRequest === true && r.message.method === 'MESSAGE';
      expect(await live.waitFor(isDelivery, 5000), 'the device still registered gets the message').to.not.equal(undefined);
      await drain(500);
      expect(ended.received.filter(isDelivery), 'the device whose binding ended gets nothing').to.have.length(0);
      const lookup = await server.registrar.lookup(BOB);
      expect(lookup.map((b) => b.callId), 'registered devices').to.deep.equal(['reg-2']);
    } finally {
      await ended.close();
      await live.close();
    }
  });
});
