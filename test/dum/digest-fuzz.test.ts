// Hostile credentials and challenges (seeded, reproducible): a digest header value cut, spliced
// and sprinkled with bytes never makes the authenticator or the client throw. The authenticator
// always answers with an outcome (a refusal for anything but the untouched credentials); the
// client either answers a challenge or declines it.
import { expect } from 'chai';
import { DigestAuthenticator, DigestClient, ManualClock, MemoryCredentialStore, parseMessage, type SipMessage } from '../../src/index.js';
import { mulberry32, pick, randInt, type Rng } from '../support/random.js';

const REQUEST = [
  'MESSAGE sip:bob@example.com SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKfuzz',
  'Max-Forwards: 70',
  'From: <sip:alice@example.com>;tag=a1',
  'To: <sip:bob@example.com>',
  'Call-ID: fuzz@127.0.0.1',
  'CSeq: 1 MESSAGE',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

const NOISE = ['"', '\\', ',', '=', ' ', '\t', ';', 'Digest ', 'nc=', 'qop=auth', 'algorithm=', '\u00ff', '00000000', 'ffffffff', 'realm="'];

function mutate(rng: Rng, text: string): string {
  let out = text;
  for (let i = randInt(rng, 1, 4); i > 0; i--) {
    const at = randInt(rng, 0, out.length);
    switch (randInt(rng, 0, 3)) {
      case 0:
        out = out.slice(0, at) + out.slice(Math.min(out.length, at + randInt(rng, 1, 12)));
        break;
      case 1:
        out = out.slice(0, at) + pick(rng, NOISE) + out.slice(at);
        break;
      case 2:
        out = out.slice(0, at);
        break;
      default:
        out = out.slice(0, at) + out.slice(at).replace(/[0-9a-f]/, (c) => (c === 'a' ? 'b' : 'a'));
    }
  }
  return out.replace(/[\r\n]/g, ' ');
}

function withHeader(name: string, value: string): SipMessage | undefined {
  try {
    return parseMessage(REQUEST.replace('Content-Length: 0', `${name}: ${value}\r\nContent-Length: 0`));
  } catch {
    return undefined; // bytes that are not even a SIP message never reach a TU
  }
}

describe('digest fuzz (seeded): hostile Authorization and WWW-Authenticate values', function () {
  this.timeout(30_000);

  it('2,000 mutated credentials: the authenticator always returns a refusal, never throws', async () => {
    const credentials = new MemoryCredentialStore();
    credentials.add('alice', 'example.com', 'secret');
    const clock = new ManualClock();
    const authenticator = new DigestAuthenticator({ realm: 'example.com', credentials, clock, qop: ['auth', 'auth-int'] });
    const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
    const plain = parseMessage(REQUEST);
    const challenge = authenticator.challenge(plain);
    const good = client.authorize(plain, challenge)!;
    const goodValue = good.header('authorization')!;
    expect((await authenticator.authenticate(good.clone())).ok).to.equal(true);

    const rng = mulberry32(0xd16e57);
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const value = mutate(rng, goodValue);
      const request = withHeader('Authorization', value);
      if (!request) continue;
      const outcome = await authenticator.authenticate(request);
      if (value === goodValue) continue;
      if (outcome.ok) continue; // a mutation that only touched case or spacing can still be valid
      refused++;
      expect([400, 401]).to.include(outcome.status);
      expect(outcome.response.status).to.equal(outcome.status);
    }
    expect(refused).to.be.greaterThan(1500);
  });

  it('2,000 mutated challenges: the client answers or declines, never throws', () => {
    const credentials = new MemoryCredentialStore();
    credentials.add('alice', 'example.com', 'secret');
    const authenticator = new DigestAuthenticator({ realm: 'example.com', credentials, clock: new ManualClock() });
    const plain = parseMessage(REQUEST);
    const values = authenticator.challenge(plain).headers('www-authenticate');
    const rng = mulberry32(0xc4a11);
    let answered = 0;
    for (let i = 0; i < 2000; i++) {
      const value = mutate(rng, pick(rng, values));
      let response: SipMessage;
      try {
        response = parseMessage(`SIP/2.0 401 Unauthorized\r\n${REQUEST.split('\r\n').slice(1, 7).join('\r\n')}\r\nWWW-Authenticate: ${value}\r\nContent-Length: 0\r\n\r\n`);
      } catch {
        continue;
      }
      const client = new DigestClient([{ username: 'alice', password: 'secret' }]);
      if (client.authorize(plain, response)) answered++;
    }
    expect(answered).to.be.greaterThan(0);
  });
});
