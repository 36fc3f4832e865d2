// Issue 16: "the nonce-count replay window must not be evictable by other users' traffic while a
// nonce is live". The authenticator used to keep each nonce's highest nc in an LRU: other users'
// fresh nonces pushed alice's out, and her captured Authorization (nonce, nc, cnonce, response:
// with qop=auth it covers only method and Request-URI) was taken again, on a new MESSAGE. Now a
// live nonce's state stays until the nonce expires; a full table refuses new nonces with 503.
// Real UDP on 127.0.0.1, a server with maxTrackedNonces 8, time on a ManualClock.
import { expect } from 'chai';
import { accountHashes, DigestAuthenticator, ManualClock, MemoryCredentialStore, ParleyServer, parseMessage } from '../../src/index.js';
import { authorization, challengeOf, RawClient, type RequestSpec } from './trust-support.js';
import { within } from '../support/waiting.js';

const D = 'localhost';
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };
const alice = { username: 'alice', realm: D, password: 'alice-pw' };
const bob = { username: 'bob', realm: D, password: 'bob-pw' };

describe('trust: nonce counts cannot be evicted while the nonce is live', function () {
  this.timeout(30_000);
  let server: ParleyServer;
  let clock: ManualClock;
  let stored: string[];
  const clients: RawClient[] = [];

  beforeEach(async () => {
    clock = new ManualClock(Date.parse('2030-01-02T03:04:05Z'));
    server = await ParleyServer.start({ domains: [D], listen: ['udp:127.0.0.1:0'], data: ':memory:', digestAlgorithms: ['MD5'], maxTrackedNonces: 8 }, { logger: silent, stack: { clock } });
    for (const user of ['alice', 'bob', 'carol']) server.store.addAccount(`sip:${user}@${D}`, accountHashes(`sip:${user}@${D}`, `${user}-pw`));
    stored = [];
    server.on('stored', (m) => stored.push(m.body.toString()));
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await within(server.stop(), 'server.stop()');
  });

  async function client(): Promise<RawClient> {
    const c = await RawClient.open(server.transports[0]!.local.port);
    clients.push(c);
    return c;
  }

  const to = (user: string, body: string, from = 'alice'): RequestSpec => ({ method: 'MESSAGE', uri: `sip:${user}@${D}`, from: `sip:${from}@${D}`, to: `sip:${user}@${D}`, body });

  it("bob's 20 fresh nonces do not push out alice's: her captured Authorization on a new MESSAGE → 401, not stored; bob beyond the table → 503 Retry-After", async () => {
    const c = await client();
    const first = await c.send(to('carol', 'hello'));
    const { nonce, opaque } = challengeOf(first);
    // The header a listener on the path captures, sent once by alice.
    const captured = `Authorization: ${authorization({ method: 'MESSAGE', uri: `sip:carol@${D}` }, { ...alice, nonce, nc: 1, opaque })}`;
    expect((await c.send({ ...to('carol', 'hello'), headers: [captured] })).status).to.equal(202);
    // Bob's traffic: one nonce each; alice's nonce plus 7 of his fill the 8 places, then 503.
    const statuses: number[] = [];
    const retry: string[] = [];
    for (let i = 0; i < 20; i++) {
      const response = await c.sendAuthenticated(to('carol', `bob ${i}`, 'bob'), bob);
      statuses.push(response.status);
      if (response.status === 503) retry.push(response.header('retry-after') ?? '');
    }
    expect(statuses).to.deep.equal([...Array(7).fill(202), ...Array(13).fill(503)]);
    expect(new Set(retry)).to.deep.equal(new Set(['1']));
    // The replay: same nonce, nc, cnonce and response, on a new request with another body.
    const replay = await c.send({ ...to('carol', 'forged'), headers: [captured] });
    expect(replay.status).to.equal(401);
    expect(stored).to.not.include('forged');
    expect(stored.filter((b) => b === 'hello')).to.have.length(1);
  });

  it('when the nonces expire (300 s) their places free up: bob gets in again; the old capture is then stale (401 stale=true)', async () => {
    const c = await client();
    const first = await c.send(to('carol', 'hello'));
    const { nonce, opaque } = challengeOf(first);
    const captured = `Authorization: ${authorization({ method: 'MESSAGE', uri: `sip:carol@${D}` }, { ...alice, nonce, nc: 1, opaque })}`;
    expect((await c.send({ ...to('carol', 'hello'), headers: [captured] })).status).to.equal(202);
    for (let i = 0; i < 7; i++) expect((await c.sendAuthenticated(to('carol', `bob ${i}`, 'bob'), bob)).status).to.equal(202);
    expect((await c.sendAuthenticated(to('carol', 'bob full', 'bob'), bob)).status).to.equal(503);
    clock.advance(301_000);
    expect((await c.sendAuthenticated(to('carol', 'bob later', 'bob'), bob)).status).to.equal(202);
    const replay = await c.send({ ...to('carol', 'forged'), headers: [captured] });
    expect(replay.status).to.equal(401);
    expect(challengeOf(replay).stale).to.equal(true);
    expect(stored).to.not.include('forged');
  });
});

describe('DigestAuthenticator: the nonce table (unit)', () => {
  it('maxTrackedNonces 2: a third live nonce is refused with 503, the first nonce still refuses its old nc', async () => {
    const clock = { now: () => 1_900_000_000_000 };
    const credentials = new MemoryCredentialStore();
    credentials.add('alice', 'r', 'pw');
    const auth = new DigestAuthenticator({ realm: 'r', credentials, algorithms: ['MD5'], maxTrackedNonces: 2, clock });
    const request = (nonce: string, nc: number): ReturnType<typeof parseMessage> =>
      parseMessage(
        Buffer.from(
          [
            'MESSAGE sip:bob@r SIP/2.0',
            'Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-unit',
            'Max-Forwards: 70',
            'From: <sip:alice@r>;tag=1',
            'To: <sip:bob@r>',
            'Call-ID: unit',
            'CSeq: 1 MESSAGE',
            `Authorization: ${authorization({ method: 'MESSAGE', uri: 'sip:bob@r' }, { username: 'alice', realm: 'r', password: 'pw', nonce, nc })}`,
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
        ),
      );
    const nonceOf = (): string => challengeOf(auth.challenge(request('x', 1))).nonce;
    const [n1, n2, n3] = [nonceOf(), nonceOf(), nonceOf()];
    expect((await auth.authenticate(request(n1, 1))).ok).to.equal(true);
    expect((await auth.authenticate(request(n2, 1))).ok).to.equal(true);
    const full = await auth.authenticate(request(n3, 1));
    expect(full.ok).to.equal(false);
    expect(full.ok === false && full.status).to.equal(503);
    expect(auth.trackedNonces).to.equal(2);
    const replay = await auth.authenticate(request(n1, 1));
    expect(replay.ok === false && replay.status).to.equal(401);
    expect((await auth.authenticate(request(n1, 2))).ok).to.equal(true);
  });
});
