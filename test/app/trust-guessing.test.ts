// Issue 16, "Online password guessing is unlimited": wrong digest responses are counted per
// account and per source address; at the limit (authFailureLimit / authSourceFailureLimit within
// authFailureWindowMs) further attempts are refused with 403 and Retry-After for authBackoffMs,
// right password or not; a success resets the account; a nonce is retired after
// nonceFailureLimit wrong responses; every failure is one log line with the source.
// Real UDP sockets on 127.0.0.1 (and 127.0.0.2 as another source); time on a ManualClock.
import { expect } from 'chai';
import { accountHashes, ManualClock, ParleyServer, type SipMessage } from '../../src/index.js';
import { challengeOf, contactLines, RawClient, type RequestSpec } from './trust-support.js';
import { within } from '../support/waiting.js';

const D = 'localhost';
const alice = { username: 'alice', realm: D, password: 'alice-pw' };
const wrong = { ...alice, password: 'guess' };

describe('trust: online password guessing', function () {
  this.timeout(30_000);
  let server: ParleyServer;
  let clock: ManualClock;
  let lines: string[];
  const clients: RawClient[] = [];

  async function start(config: Record<string, number> = {}): Promise<ParleyServer> {
    clock = new ManualClock(Date.parse('2030-01-02T03:04:05Z'));
    lines = [];
    const logger = { info: (): void => undefined, warn: (line: string): void => void lines.push(line), error: (line: string): void => void lines.push(line) };
    server = await ParleyServer.start({ domains: [D], listen: ['udp:127.0.0.1:0'], data: ':memory:', digestAlgorithms: ['MD5'], ...config }, { logger, stack: { clock } });
    for (const user of ['alice', 'bob', 'carol']) server.store.addAccount(`sip:${user}@${D}`, accountHashes(`sip:${user}@${D}`, `${user}-pw`));
    return server;
  }

  async function client(host = '127.0.0.1'): Promise<RawClient> {
    const c = await RawClient.open(server.transports[0]!.local.port, host);
    clients.push(c);
    return c;
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await within(server.stop(), 'server.stop()');
  });

  const register = (c: RawClient, user = 'alice'): RequestSpec => ({ method: 'REGISTER', uri: `sip:${D}`, from: `sip:${user}@${D}`, to: `sip:${user}@${D}`, headers: contactLines(c, user) });
  const message = (user = 'alice'): RequestSpec => ({ method: 'MESSAGE', uri: `sip:bob@${D}`, from: `sip:${user}@${D}`, to: `sip:bob@${D}`, body: `from ${user}` });
  const failureLine = (c: RawClient, user = 'alice', reason = 'wrong password'): string => `auth failure for ${user}@${D} from udp:${c.host}:${c.port} (${reason})`;

  function retryAfter(response: SipMessage): number {
    return Number(response.header('retry-after'));
  }

  it('5 wrong passwords for alice (each on a fresh nonce: 401) → the 6th try, with the right one, is 403 with Retry-After 60; after 60 s she gets in', async () => {
    await start();
    const c = await client();
    for (let i = 0; i < 5; i++) expect((await c.sendAuthenticated(register(c), wrong)).status, `guess ${i + 1}`).to.equal(401);
    const blocked = await c.sendAuthenticated(register(c), alice);
    expect(blocked.status).to.equal(403);
    expect(blocked.reason).to.equal('Too Many Failed Attempts');
    expect(retryAfter(blocked)).to.equal(60);
    // MESSAGE is the same account: refused too.
    expect((await c.sendAuthenticated(message(), alice)).status).to.equal(403);
    // Another account from elsewhere is not affected.
    const other = await client('127.0.0.2');
    expect((await other.sendAuthenticated(register(other, 'bob'), { ...alice, username: 'bob', password: 'bob-pw' })).status).to.equal(200);
    clock.advance(30_000);
    const later = await c.sendAuthenticated(register(c), alice);
    expect(later.status).to.equal(403);
    expect(retryAfter(later)).to.equal(30);
    clock.advance(30_001);
    expect((await c.sendAuthenticated(register(c), alice)).status).to.equal(200);
    // One line per failure, fail2ban-readable, with the source; then one for the block.
    expect(lines.filter((l) => l.startsWith('auth failure'))).to.deep.equal(Array(5).fill(failureLine(c)));
    expect(lines.filter((l) => l.startsWith('auth blocked'))).to.deep.equal(['auth blocked account alice@localhost for 60 s after 5 failures']);
  });

  it('an unknown user is counted and logged the same way (the response does not tell them apart: 401, then 403)', async () => {
    await start();
    const c = await client();
    const ghost = { username: 'ghost', realm: D, password: 'x' };
    for (let i = 0; i < 5; i++) expect((await c.sendAuthenticated(message('ghost'), ghost)).status).to.equal(401);
    expect((await c.sendAuthenticated(message('ghost'), ghost)).status).to.equal(403);
    expect(lines.filter((l) => l.startsWith('auth failure'))).to.deep.equal(Array(5).fill(failureLine(c, 'ghost', 'unknown user')));
  });

  it('a success resets the account: 4 wrong, 1 right, 4 wrong → still not blocked (200)', async () => {
    await start();
    const c = await client();
    for (let i = 0; i < 4; i++) expect((await c.sendAuthenticated(register(c), wrong)).status).to.equal(401);
    expect((await c.sendAuthenticated(register(c), alice)).status).to.equal(200);
    for (let i = 0; i < 4; i++) expect((await c.sendAuthenticated(register(c), wrong)).status).to.equal(401);
    expect((await c.sendAuthenticated(register(c), alice)).status).to.equal(200);
  });

  it('failures spread over the window do not block: 4 wrong, 61 s, 4 wrong → 200', async () => {
    await start();
    const c = await client();
    for (let i = 0; i < 4; i++) expect((await c.sendAuthenticated(register(c), wrong)).status).to.equal(401);
    clock.advance(61_000);
    for (let i = 0; i < 4; i++) expect((await c.sendAuthenticated(register(c), wrong)).status).to.equal(401);
    expect((await c.sendAuthenticated(register(c), alice)).status).to.equal(200);
  });

  it('per source: 3 wrong guesses over three accounts from 127.0.0.1 (authSourceFailureLimit 3) block that source; 127.0.0.2 still gets in', async () => {
    await start({ authSourceFailureLimit: 3 });
    const c = await client();
    for (const user of ['alice', 'bob', 'carol']) expect((await c.sendAuthenticated(register(c, user), { ...wrong, username: user })).status).to.equal(401);
    const blocked = await c.sendAuthenticated(register(c, 'carol'), { username: 'carol', realm: D, password: 'carol-pw' });
    expect(blocked.status).to.equal(403);
    expect(retryAfter(blocked)).to.equal(60);
    // Another port of the same address is the same source.
    const samehost = await client();
    expect((await samehost.sendAuthenticated(register(samehost, 'carol'), { username: 'carol', realm: D, password: 'carol-pw' })).status).to.equal(403);
    const elsewhere = await client('127.0.0.2');
    expect((await elsewhere.sendAuthenticated(register(elsewhere, 'carol'), { username: 'carol', realm: D, password: 'carol-pw' })).status).to.equal(200);
    expect(lines).to.include('auth blocked source 127.0.0.1 for 60 s after 3 failures');
  });

  it('a nonce is retired after 3 wrong responses: the 4th use, with the right password, gets a new challenge (401, another nonce, not stale)', async () => {
    await start({ authFailureLimit: 10 });
    const c = await client();
    const first = await c.send(message());
    expect(first.status).to.equal(401);
    const { nonce, opaque } = challengeOf(first);
    for (let nc = 1; nc <= 3; nc++) {
      const response = await c.send(message(), { ...wrong, nonce, nc, opaque });
      expect(response.status, `wrong ${nc}`).to.equal(401);
    }
    const retired = await c.send(message(), { ...alice, nonce, nc: 4, opaque });
    expect(retired.status).to.equal(401);
    const fresh = challengeOf(retired);
    expect(fresh.nonce).to.not.equal(nonce);
    expect(fresh.stale).to.equal(false);
    expect((await c.send(message(), { ...alice, nonce: fresh.nonce, nc: 1, opaque })).status).to.equal(202);
  });

  it('a device that authenticated on a nonce keeps refreshing on it while an attacker has the account blocked (200), the attacker gets 403', async () => {
    await start();
    const device = await client('127.0.0.2');
    const first = await device.send(register(device));
    const { nonce, opaque } = challengeOf(first);
    const callId = 'device-registration';
    expect((await device.send({ ...register(device), callId, cseq: 2 }, { ...alice, nonce, nc: 1, opaque })).status).to.equal(200);
    const attacker = await client();
    for (let i = 0; i < 5; i++) expect((await attacker.sendAuthenticated(register(attacker), wrong)).status).to.equal(401);
    expect((await attacker.sendAuthenticated(register(attacker), alice)).status).to.equal(403);
    expect((await device.send({ ...register(device), callId, cseq: 3 }, { ...alice, nonce, nc: 2, opaque })).status).to.equal(200);
  });
});
