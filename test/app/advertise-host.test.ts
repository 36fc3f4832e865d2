// A Parley server bound to the wildcard (`--listen udp:0.0.0.0:P`) with `advertiseHost`
// (`--advertise-host`): its requests carry the advertised sent-by (never 0.0.0.0), the device's
// responses come back to it and are taken (RFC 3261 §18.1.2), and delivery works end to end.
// 127.0.0.2 is the advertised host: a loopback address the wildcard socket also answers on.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { serverConfigFromArgs } from '../../src/cli/server-command.js';
import { accountHashes, ConfigError, ParleyClient, ParleyServer, parseMessage, resolveConfig, type SipMessage } from '../../src/index.js';
import { until, within } from '../support/waiting.js';

const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

describe('parley server --advertise-host', function () {
  this.timeout(20_000);
  const dirs: string[] = [];
  const out: SipMessage[] = [];
  const onOut = (data: unknown): void => {
    try {
      out.push(parseMessage(Buffer.from((data as { bytes: Buffer }).bytes)));
    } catch {
      // keep-alives
    }
  };
  before(() => subscribe('parley:message:out', onOut));
  after(async () => {
    unsubscribe('parley:message:out', onOut);
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  async function dir(label: string): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), `parley-advertise-${label}-`));
    dirs.push(d);
    return d;
  }

  it('bound to 0.0.0.0 and advertising 127.0.0.2: deliveries carry Via 127.0.0.2:PORT and the device’s 200 is taken', async () => {
    const config = serverConfigFromArgs(['--domain', 'localhost', '--listen', 'udp:0.0.0.0:0', '--advertise-host', '127.0.0.2', '--data', await dir('data')]);
    if (typeof config === 'string') throw new Error(config);
    expect(config.advertiseHost).to.equal('127.0.0.2');
    const server = await ParleyServer.start(config, { logger: silent });
    const clients: ParleyClient[] = [];
    try {
      for (const aor of ['sip:alice@localhost', 'sip:bob@localhost']) server.store.addAccount(aor, accountHashes(aor, 'pw'));
      const port = server.transports[0]!.local.port;
      expect(server.transports[0]!.local.address).to.equal('0.0.0.0');
      const connect = async (user: string): Promise<ParleyClient> => {
        const client = await within(ParleyClient.connect({ server: `sip:127.0.0.1:${port}`, user: `${user}@localhost`, password: 'pw', stateDir: await dir(user) }), `connect ${user}`);
        clients.push(client);
        return client;
      };
      const bob = await connect('bob');
      const alice = await connect('alice');
      const got: string[] = [];
      bob.on('message', (m) => void got.push(m.text));
      expect((await within(alice.send('bob@localhost', 'through the advertised address'), 'send')).status).to.equal(202);
      await until(() => got.length === 1, 'bob receiving it');
      expect(got).to.deep.equal(['through the advertised address']);
      const delivery = out.find((m) => m.isRequest && m.method === 'MESSAGE' && m.to.uri.user === 'bob' && m.requestUri.host !== 'localhost');
      expect(delivery?.header('via')).to.match(new RegExp(`^SIP/2\\.0/UDP 127\\.0\\.0\\.2:${port};branch=z9hG4bK`));
      expect(out.some((m) => m.isRequest && m.via[0]?.host === '0.0.0.0'), 'no request from the server names the wildcard').to.equal(false);
    } finally {
      await Promise.allSettled(clients.map((c) => c.close()));
      await server.stop();
    }
  });

  it('the wildcard or a malformed host is refused: CONFIG_INVALID, and the flag says so', () => {
    expect(() => resolveConfig({ advertiseHost: '0.0.0.0' })).to.throw(ConfigError, /"advertiseHost": 0\.0\.0\.0 cannot be advertised/);
    expect(serverConfigFromArgs(['--advertise-host', 'no good'])).to.match(/^"advertiseHost": not an advertised HOST\[:PORT\]/);
  });
});
