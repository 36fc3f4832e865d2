// Issue 16: a message/cpim body with two From (or two To) headers is refused — the intake checks
// the first From against the sender, and a reader that shows the second would be told someone
// else wrote it. parseCpim says CPIM_MALFORMED; the intake answers 400 and stores nothing.
import { expect } from 'chai';
import { accountHashes, CpimError, parseCpim, ParleyServer } from '../../src/index.js';
import { RawClient } from './trust-support.js';
import { within } from '../support/waiting.js';

const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };
const D = 'localhost';

function cpim(headers: string[]): string {
  return [...headers, 'DateTime: 2026-11-21T10:00:00.000Z', '', 'Content-Type: text/plain;charset=utf-8', '', 'hello'].join('\r\n');
}

const twoFrom = cpim([`From: <sip:alice@${D}>`, 'From: <sip:mallory@localhost>', `To: <sip:bob@${D}>`]);
const twoTo = cpim([`From: <sip:alice@${D}>`, `To: <sip:bob@${D}>`, 'To: <sip:carol@localhost>']);
const good = cpim([`From: <sip:alice@${D}>`, `To: <sip:bob@${D}>`]);

describe('trust: CPIM with two From or two To', function () {
  this.timeout(30_000);

  it('parseCpim: two From → CPIM_MALFORMED; two To → CPIM_MALFORMED (also when the case differs); one of each parses', () => {
    for (const [label, body] of [
      ['two From', twoFrom],
      ['two To', twoTo],
      ['From and from', cpim([`From: <sip:alice@${D}>`, 'from: <sip:mallory@localhost>'])],
    ] as const) {
      let error: unknown;
      try {
        parseCpim(Buffer.from(body));
      } catch (caught) {
        error = caught;
      }
      expect(error, label).to.be.instanceOf(CpimError);
      expect((error as CpimError).code, label).to.equal('CPIM_MALFORMED');
      expect((error as CpimError).message, label).to.match(/more than one (From|To) header/);
    }
    expect(parseCpim(Buffer.from(good)).content.toString()).to.equal('hello');
  });

  describe('on the wire', () => {
    let server: ParleyServer;
    let client: RawClient;
    let stored = 0;
    beforeEach(async () => {
      server = await ParleyServer.start({ domains: [D], listen: ['udp:127.0.0.1:0'], data: ':memory:', digestAlgorithms: ['MD5'] }, { logger: silent });
      for (const user of ['alice', 'bob']) server.store.addAccount(`sip:${user}@${D}`, accountHashes(`sip:${user}@${D}`, `${user}-pw`));
      stored = 0;
      server.on('stored', () => stored++);
      client = await RawClient.open(server.transports[0]!.local.port);
    });
    afterEach(async () => {
      await client.close();
      await within(server.stop(), 'server.stop()');
    });

    const send = (body: string) =>
      client.sendAuthenticated({ method: 'MESSAGE', uri: `sip:bob@${D}`, from: `sip:alice@${D}`, to: `sip:bob@${D}`, body, contentType: 'message/cpim' }, { username: 'alice', realm: D, password: 'alice-pw' });

    it('a MESSAGE whose CPIM body has two From → 400, nothing stored', async () => {
      const response = await send(twoFrom);
      expect(response.status).to.equal(400);
      expect(response.reason).to.include('more than one From header');
      expect(stored).to.equal(0);
      expect(server.store.stored(`sip:bob@${D}`)).to.equal(0);
    });

    it('a MESSAGE whose CPIM body has two To → 400, nothing stored; one From and one To → 202', async () => {
      const response = await send(twoTo);
      expect(response.status).to.equal(400);
      expect(response.reason).to.include('more than one To header');
      expect(stored).to.equal(0);
      expect((await send(good)).status).to.equal(202);
      expect(stored).to.equal(1);
    });
  });
});
