// The store behind interfaces (src/app/store/store.ts, docs/server.md "Storage"): `AccountStore`,
// `LocationStore`, `MessageLog`, one `Store` of all three; `SqliteStore` implements it, and the
// server runs on any `Store`.
//
// - Nothing in src/app or src/cli names the SqliteStore class except the store module itself
//   and `openStore`, the one place that chooses the database (and the package's exports).
// - A ParleyServer given a `Store` that is not a SqliteStore (a class written against the
//   interface alone, recording each call, over an inner store) registers two users' devices,
//   takes a MESSAGE (202) and delivers it, doing all of it through that store: the interfaces
//   are enough for the server, and it uses the one it is given.
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  accountHashes,
  openStore,
  ParleyClient,
  ParleyServer,
  SqliteStore,
  type Account,
  type AccountHashes,
  type AppendResult,
  type DeviceCursor,
  type NewMessage,
  type Store,
  type StoredBinding,
  type StoredMessage,
} from '../../src/index.js';
import { until, within } from '../support/waiting.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The code of a source file: comments (which may well name the class) removed. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

/** A Store written against the interface only: every call recorded, then passed on. */
class RecordingStore implements Store {
  readonly calls: string[] = [];
  constructor(private readonly inner: Store) {}
  private note(name: string): void {
    this.calls.push(name);
  }
  get stats(): { commits: number; messages: number } {
    return this.inner.stats;
  }
  get commitBacklog(): number {
    this.note('commitBacklog');
    return this.inner.commitBacklog;
  }
  addAccount(aor: string, hashes: AccountHashes, now?: number): void {
    this.note('addAccount');
    this.inner.addAccount(aor, hashes, now);
  }
  updateAccount(aor: string, hashes: AccountHashes): void {
    this.note('updateAccount');
    this.inner.updateAccount(aor, hashes);
  }
  removeAccount(aor: string): boolean {
    this.note('removeAccount');
    return this.inner.removeAccount(aor);
  }
  account(aor: string): Account | undefined {
    this.note('account');
    return this.inner.account(aor);
  }
  accounts(): Account[] {
    this.note('accounts');
    return this.inner.accounts();
  }
  get(aor: string): StoredBinding[] {
    this.note('get');
    return this.inner.get(aor);
  }
  put(aor: string, bindings: StoredBinding[]): Promise<void> {
    this.note('put');
    return this.inner.put(aor, bindings);
  }
  boundAors(): string[] {
    this.note('boundAors');
    return this.inner.boundAors();
  }
  append(message: NewMessage): Promise<AppendResult> {
    this.note('append');
    return this.inner.append(message);
  }
  pending(recipient: string, device: string, limit: number): StoredMessage[] {
    this.note('pending');
    return this.inner.pending(recipient, device, limit);
  }
  after(recipient: string, afterId: number, limit: number): StoredMessage[] {
    this.note('after');
    return this.inner.after(recipient, afterId, limit);
  }
  stored(recipient: string): number {
    this.note('stored');
    return this.inner.stored(recipient);
  }
  cursor(recipient: string, device: string): number {
    this.note('cursor');
    return this.inner.cursor(recipient, device);
  }
  touchDevice(recipient: string, device: string, now?: number): void {
    this.note('touchDevice');
    this.inner.touchDevice(recipient, device, now);
  }
  devices(recipient: string): DeviceCursor[] {
    this.note('devices');
    return this.inner.devices(recipient);
  }
  acknowledge(recipient: string, device: string, id: number, now?: number): { first: boolean } {
    this.note('acknowledge');
    return this.inner.acknowledge(recipient, device, id, now);
  }
  unacknowledged(recipient: string): number {
    this.note('unacknowledged');
    return this.inner.unacknowledged(recipient);
  }
  recipients(): string[] {
    this.note('recipients');
    return this.inner.recipients();
  }
  purge(now: number, retentionMs: number): number {
    this.note('purge');
    return this.inner.purge(now, retentionMs);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    this.note('close');
    return this.inner.close();
  }
}

describe('the store behind interfaces (AccountStore, LocationStore, MessageLog, Store)', function () {
  this.timeout(20_000);

  it('only the store module and openStore name SqliteStore in src/app and src/cli', () => {
    const naming = [...sources(join(root, 'src', 'app')), ...sources(join(root, 'src', 'cli'))]
      .filter((file) => /\bSqliteStore\b/.test(withoutComments(readFileSync(file, 'utf8'))))
      .map((file) => relative(root, file).split('\\').join('/'))
      .sort();
    expect(naming).to.deep.equal(['src/app/store/index.ts', 'src/app/store/open-store.ts', 'src/app/store/sqlite-store.ts']);
  });

  it('openStore gives a Store (a SqliteStore underneath, for a data directory or :memory:)', async () => {
    const memory = openStore(':memory:');
    expect(memory).to.be.instanceOf(SqliteStore);
    await memory.close();
  });

  it('a server on a Store that is not a SqliteStore registers, takes a MESSAGE and delivers it, all through that store', async () => {
    const recording = new RecordingStore(openStore(':memory:'));
    const dirs: string[] = [];
    const clients: ParleyClient[] = [];
    const server = await ParleyServer.start({ domains: ['localhost'], listen: ['tcp:127.0.0.1:0'], data: ':memory:' }, { store: recording });
    try {
      expect(server.store).to.equal(recording);
      for (const aor of ['sip:alice@localhost', 'sip:bob@localhost']) server.store.addAccount(aor, accountHashes(aor, 'pw'));
      const connect = async (user: string): Promise<ParleyClient> => {
        const dir = await mkdtemp(join(tmpdir(), `parley-store-if-${user}-`));
        dirs.push(dir);
        const client = await within(
          ParleyClient.connect({ server: `sip:127.0.0.1:${server.transports[0]!.local.port};transport=tcp`, user: `${user}@localhost`, password: 'pw', stateDir: dir }),
          `connect ${user}`,
        );
        clients.push(client);
        return client;
      };
      const alice = await connect('alice');
      const bob = await connect('bob');
      const got: string[] = [];
      bob.on('message', (m) => void got.push(m.text));
      const sent = await within(alice.send('bob@localhost', 'through the interface'), 'send');
      expect(sent.status).to.equal(202);
      await until(() => got.length === 1, 'bob receiving it');
      expect(got).to.deep.equal(['through the interface']);
      // bob's 200 moves his device's cursor, in the store it was given.
      await until(() => recording.calls.includes('acknowledge'), "the server recording bob's acknowledgement");
      const used = new Set(recording.calls);
      for (const call of ['account', 'get', 'put', 'stored', 'commitBacklog', 'append', 'touchDevice', 'cursor', 'after', 'acknowledge', 'boundAors', 'purge']) {
        expect(used.has(call), `the server called ${call} on the store it was given (calls: ${[...used].join(', ')})`).to.equal(true);
      }
    } finally {
      for (const client of clients) await within(client.close(), 'client.close()');
      await within(server.stop(), 'server.stop()');
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    }
    expect(recording.calls.at(-1), 'the server closes the store it was given').to.equal('close');
  });
});
