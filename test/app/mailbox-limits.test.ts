// Issue 16, "Mailboxes": one sender filled another user's mailbox (a count quota only), after
// which everyone got 480. Now each sender has a share of each mailbox (maxStoredPerSender,
// default maxStoredPerUser / 10), a mailbox has a byte quota (maxStoredBytesPerUser), and new
// MESSAGEs get 503 while the data directory's disk is under its floor (minFreeDiskBytes, asked
// with statfs at most every 2 s). Real UDP sockets on 127.0.0.1; small limits.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountHashes, ConfigError, ParleyServer, resolveConfig, SqliteStore, type ServerConfig } from '../../src/index.js';
import { DiskFloor } from '../../src/app/store/disk-space.js';
import { RawClient } from './trust-support.js';
import { within } from '../support/waiting.js';

const D = 'localhost';
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };
const USERS = ['alice', 'bob', 'carol', 'dave'];

describe('mailbox limits: the configuration', () => {
  it('maxStoredPerSender defaults to maxStoredPerUser / 10 (1,000 of 10,000), follows a given maxStoredPerUser, and an explicit value is kept', () => {
    expect(resolveConfig({}).maxStoredPerSender).to.equal(1000);
    expect(resolveConfig({ maxStoredPerUser: 50 }).maxStoredPerSender).to.equal(5);
    expect(resolveConfig({ maxStoredPerUser: 5 }).maxStoredPerSender).to.equal(1);
    expect(resolveConfig({ maxStoredPerUser: 50, maxStoredPerSender: 50 }).maxStoredPerSender).to.equal(50);
    expect(resolveConfig({}).maxStoredBytesPerUser).to.equal(104_857_600);
    expect(resolveConfig({}).minFreeDiskBytes).to.equal(268_435_456);
    expect(resolveConfig({ minFreeDiskBytes: 0 }).minFreeDiskBytes).to.equal(0);
  });

  for (const bad of [{ maxStoredPerSender: 0 }, { maxStoredBytesPerUser: -1 }, { minFreeDiskBytes: -1 }, { minFreeDiskBytes: 1.5 }, { maxStoredBytesPerUser: 'big' }] as Array<Partial<ServerConfig>>) {
    it(`refuses ${JSON.stringify(bad)} with CONFIG_INVALID`, () => {
      expect(() => resolveConfig(bad)).to.throw(ConfigError).with.property('code', 'CONFIG_INVALID');
    });
  }
});

describe('mailbox limits on the wire', function () {
  this.timeout(30_000);
  let server: ParleyServer;
  let client: RawClient;
  const dirs: string[] = [];

  async function start(config: Partial<ServerConfig>): Promise<void> {
    server = await ParleyServer.start({ domains: [D], listen: ['udp:127.0.0.1:0'], data: ':memory:', digestAlgorithms: ['MD5'], ...config }, { logger: silent });
    for (const user of USERS) server.store.addAccount(`sip:${user}@${D}`, accountHashes(`sip:${user}@${D}`, `${user}-pw`));
    client = await RawClient.open(server.transports[0]!.local.port);
  }

  afterEach(async () => {
    await client.close();
    await within(server.stop(), 'server.stop()');
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  const send = (from: string, body: string) =>
    client.sendAuthenticated({ method: 'MESSAGE', uri: `sip:alice@${D}`, from: `sip:${from}@${D}`, to: `sip:alice@${D}`, body }, { username: from, realm: D, password: `${from}-pw` });

  async function statuses(from: string, count: number, size = 10): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push((await send(from, `${from} ${i} `.padEnd(size, 'x'))).status);
    return out;
  }

  it("bob fills only his share of alice's mailbox (3 of 6): his 4th → 480 Retry-After 60; carol still gets in; at 6 everyone gets 480", async () => {
    await start({ maxStoredPerUser: 6, maxStoredPerSender: 3 });
    expect(await statuses('bob', 3)).to.deep.equal([202, 202, 202]);
    const over = await send('bob', 'bob again');
    expect(over.status).to.equal(480);
    expect(over.reason).to.equal('Mailbox full for this sender');
    expect(over.header('retry-after')).to.equal('60');
    expect(await statuses('carol', 4)).to.deep.equal([202, 202, 202, 480]);
    const full = await send('dave', 'dave');
    expect(full.status).to.equal(480);
    expect(full.reason).to.equal('Mailbox full');
    expect(server.store.stored(`sip:alice@${D}`)).to.equal(6);
  });

  it('the default share: maxStoredPerUser 20 → 2 per sender (bob: 202, 202, 480)', async () => {
    await start({ maxStoredPerUser: 20 });
    expect(await statuses('bob', 3)).to.deep.equal([202, 202, 480]);
  });

  it('maxStoredBytesPerUser 1000: 400 + 400 B taken, a third 400 B → 480, then 200 B (exactly 1000) → 202, then 1 B → 480', async () => {
    await start({ maxStoredBytesPerUser: 1000, maxStoredPerSender: 100 });
    expect(await statuses('bob', 2, 400)).to.deep.equal([202, 202]);
    const over = await send('carol', 'c'.repeat(400));
    expect(over.status).to.equal(480);
    expect(over.header('retry-after')).to.equal('60');
    expect((await send('carol', 'c'.repeat(200))).status).to.equal(202);
    expect((await send('dave', 'd')).status).to.equal(480);
    expect(server.store.mailbox!(`sip:alice@${D}`, `sip:bob@${D}`)).to.deep.equal({ messages: 3, bytes: 1000, fromSender: 2 });
  });

  it('minFreeDiskBytes above what the disk has: a MESSAGE → 503 Retry-After 60, nothing stored (no 202 that could be lost)', async () => {
    const data = await mkdtemp(join(tmpdir(), 'parley-floor-'));
    dirs.push(data);
    await start({ data, minFreeDiskBytes: Number.MAX_SAFE_INTEGER });
    const response = await send('bob', 'hello');
    expect(response.status).to.equal(503);
    expect(response.reason).to.equal('Disk nearly full');
    expect(response.header('retry-after')).to.equal('60');
    expect(server.store.stored(`sip:alice@${D}`)).to.equal(0);
  });

  it('minFreeDiskBytes 1 (the disk has more): 202', async () => {
    const data = await mkdtemp(join(tmpdir(), 'parley-floor-'));
    dirs.push(data);
    await start({ data, minFreeDiskBytes: 1 });
    expect((await send('bob', 'hello')).status).to.equal(202);
  });
});

describe('DiskFloor and the store\'s mailbox usage (unit)', () => {
  it('asks the file system at most every 2 s; low below the floor; a failing statfs is not low', () => {
    let now = 0;
    let free = 5000;
    let asks = 0;
    const floor = new DiskFloor({ path: '/x', minFreeBytes: 1000, clock: { now: () => now }, freeBytes: () => (asks++, free >= 0 ? free : (() => { throw new Error('EIO'); })()) });
    expect(floor.low()).to.equal(false);
    free = 10;
    now = 1999;
    expect(floor.low()).to.equal(false);
    expect(asks).to.equal(1);
    now = 2000;
    expect(floor.low()).to.equal(true);
    expect(asks).to.equal(2);
    free = -1;
    now = 4000;
    expect(floor.low()).to.equal(false);
    expect(floor.lastFree).to.equal(undefined);
  });

  it('SqliteStore.mailbox counts messages, bytes and the sender\'s share, queued appends included; a purge recounts; a reopened file reads it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-usage-'));
    try {
      const path = join(dir, 'parley.db');
      const store = SqliteStore.open(path);
      const base = { recipient: 'sip:alice@localhost', contentType: 'text/plain', receivedAt: 1, notify: false };
      const pending = [
        store.append({ ...base, sender: 'sip:bob@localhost', messageId: 'm1', body: Buffer.alloc(100) }),
        store.append({ ...base, sender: 'sip:bob@localhost', messageId: 'm2', body: Buffer.alloc(50) }),
      ];
      expect(store.mailbox('sip:alice@localhost', 'sip:bob@localhost')).to.deep.equal({ messages: 2, bytes: 150, fromSender: 2 });
      await Promise.all(pending);
      await store.append({ ...base, sender: 'sip:carol@localhost', messageId: 'm3', body: Buffer.alloc(7) });
      expect(store.mailbox('sip:alice@localhost', 'sip:bob@localhost')).to.deep.equal({ messages: 3, bytes: 157, fromSender: 2 });
      expect(store.mailbox('sip:alice@localhost', 'sip:carol@localhost')).to.deep.equal({ messages: 3, bytes: 157, fromSender: 1 });
      // A duplicate is not counted twice.
      await store.append({ ...base, sender: 'sip:carol@localhost', messageId: 'm3', body: Buffer.alloc(7) });
      expect(store.mailbox('sip:alice@localhost', 'sip:carol@localhost').fromSender).to.equal(1);
      await store.close();
      const again = SqliteStore.open(path);
      expect(again.mailbox('sip:alice@localhost', 'sip:bob@localhost')).to.deep.equal({ messages: 3, bytes: 157, fromSender: 2 });
      // Retention over: the purge deletes all, the usage is read anew.
      again.purge(10_000, 1000);
      expect(again.mailbox('sip:alice@localhost', 'sip:bob@localhost')).to.deep.equal({ messages: 0, bytes: 0, fromSender: 0 });
      await again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
