// Issue 16, "Accounts and registration": on a server home to a.example and b.example, the
// account that authenticated is user AND domain (the digest realm, RFC 3261 §10.3 step 6). alice
// of a.example must not register, unregister, send or subscribe as alice of b.example: 403.
// Real sockets on 127.0.0.1; the requests are built by hand, as an attacker would.
import { expect } from 'chai';
import { accountHashes, ParleyServer } from '../../src/index.js';
import { challengeOf, contactLines, RawClient } from './trust-support.js';
import { within } from '../support/waiting.js';

const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };
const A = 'a.example';
const B = 'b.example';
const aliceA = { username: 'alice', realm: A, password: 'alice-of-a' };
const aliceB = { username: 'alice', realm: B, password: 'alice-of-b' };

describe('trust: an account is its user and its domain (multi-domain server)', function () {
  this.timeout(30_000);
  let server: ParleyServer;
  let client: RawClient;
  let stored = 0;

  beforeEach(async () => {
    server = await ParleyServer.start({ domains: [A, B], listen: ['udp:127.0.0.1:0'], data: ':memory:', digestAlgorithms: ['MD5'] }, { logger: silent });
    for (const [aor, pw] of [
      [`sip:alice@${A}`, aliceA.password],
      [`sip:alice@${B}`, aliceB.password],
      [`sip:bob@${B}`, 'bob-of-b'],
    ] as const)
      server.store.addAccount(aor, accountHashes(aor, pw));
    stored = 0;
    server.on('stored', () => stored++);
    client = await RawClient.open(server.transports[0]!.local.port);
  });

  afterEach(async () => {
    await client.close();
    await within(server.stop(), 'server.stop()');
  });

  const register = (uri: string, to: string, extra = contactLines(client, 'alice')) => ({ method: 'REGISTER' as const, uri, from: to, to, headers: extra });

  it('REGISTER sip:a.example To alice@b.example, authenticated as alice@a.example → 403, nothing bound', async () => {
    const response = await client.sendAuthenticated(register(`sip:${A}`, `sip:alice@${B}`), aliceA);
    expect(response.status).to.equal(403);
    expect(server.store.get(`sip:alice@${B}`)).to.deep.equal([]);
    expect(server.store.get(`sip:alice@${A}`)).to.deep.equal([]);
  });

  it('REGISTER sip:b.example To alice@b.example with credentials of realm a.example → 403 (authenticated, not that account)', async () => {
    const first = await client.send(register(`sip:${A}`, `sip:alice@${A}`));
    expect(first.status).to.equal(401);
    const { nonce, opaque } = challengeOf(first);
    const response = await client.send(register(`sip:${B}`, `sip:alice@${B}`), { ...aliceA, nonce, nc: 1, opaque });
    expect(response.status).to.equal(403);
    expect(server.store.get(`sip:alice@${B}`)).to.deep.equal([]);
  });

  it('alice@a.example cannot unregister alice@b.example (Contact: *, Expires: 0) → 403, the binding stays', async () => {
    const own = await client.sendAuthenticated(register(`sip:${B}`, `sip:alice@${B}`), aliceB);
    expect(own.status).to.equal(200);
    expect(server.store.get(`sip:alice@${B}`)).to.have.length(1);
    const response = await client.sendAuthenticated(register(`sip:${A}`, `sip:alice@${B}`, ['Contact: *', 'Expires: 0']), aliceA);
    expect(response.status).to.equal(403);
    expect(server.store.get(`sip:alice@${B}`)).to.have.length(1);
  });

  it('each alice registers her own AOR (200): the same user name in two domains are two accounts', async () => {
    expect((await client.sendAuthenticated(register(`sip:${A}`, `sip:alice@${A}`), aliceA)).status).to.equal(200);
    expect((await client.sendAuthenticated(register(`sip:${B}`, `sip:alice@${B}`), aliceB)).status).to.equal(200);
    expect(server.store.get(`sip:alice@${A}`)).to.have.length(1);
    expect(server.store.get(`sip:alice@${B}`)).to.have.length(1);
  });

  it('MESSAGE From alice@b.example with credentials of alice@a.example → 403, nothing stored; as herself → 202', async () => {
    const asOther = { method: 'MESSAGE' as const, uri: `sip:bob@${B}`, from: `sip:alice@${B}`, to: `sip:bob@${B}`, body: 'spoofed' };
    // Challenged in a.example (a MESSAGE from alice@a.example), answered with those credentials.
    const first = await client.send({ ...asOther, from: `sip:alice@${A}` });
    expect(first.status).to.equal(401);
    const { nonce, opaque } = challengeOf(first);
    const response = await client.send(asOther, { ...aliceA, nonce, nc: 1, opaque });
    expect(response.status).to.equal(403);
    expect(stored).to.equal(0);
    expect(server.store.stored(`sip:bob@${B}`)).to.equal(0);
    const own = await client.sendAuthenticated({ ...asOther, from: `sip:alice@${A}`, body: 'mine' }, aliceA);
    expect(own.status).to.equal(202);
    expect(server.store.stored(`sip:bob@${B}`)).to.equal(1);
  });

  it('SUBSCRIBE From alice@b.example with credentials of alice@a.example is never accepted (401: only neighbours subscribe, in the peers realm)', async () => {
    const spec = { method: 'SUBSCRIBE' as const, uri: `sip:${B}`, from: `sip:alice@${B}`, to: `sip:${B}`, headers: ['Event: parley-routes', 'Expires: 600', `Contact: <sip:alice@127.0.0.1:${client.port}>`] };
    const first = await client.send({ ...spec, from: `sip:alice@${A}` });
    // The only SUBSCRIBE a Parley server takes is a neighbour's (parley-routes), in the peers realm.
    expect(first.status).to.equal(401);
    const response = await client.send(spec, { ...aliceA, ...challengeOf(first), nc: 1 });
    expect(response.status).to.equal(401);
  });
});
