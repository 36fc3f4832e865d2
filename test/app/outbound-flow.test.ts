// Delivery over the device's own flow (RFC 5626 §5.3, docs/server.md "Delivery"): a Parley
// client registers over TCP with reg-id 1 (outbound); the server's MESSAGE to it is sent with a
// Target naming that flow's connection id — "this connection only; if it is gone, 430, never
// redial" — and the address and port it registered from.
//
// The server's `stack.request` is wrapped to record the target of each request it sends.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountHashes, ParleyClient, ParleyServer, type SipMessage, type Target } from '../../src/index.js';
import { until, within } from '../support/waiting.js';

const HOST = '127.0.0.1';
const BOB = 'sip:bob@localhost';

describe('delivery on the flow a device registered over (RFC 5626 §5.3)', function () {
  this.timeout(20_000);
  const dirs: string[] = [];
  const clients: ParleyClient[] = [];
  let server: ParleyServer | undefined;

  afterEach(async () => {
    for (const client of clients.splice(0)) await within(client.close(), 'client.close()');
    if (server) await within(server.stop(), 'server.stop()');
    server = undefined;
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  async function tempDir(label: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `parley-flow-${label}-`));
    dirs.push(dir);
    return dir;
  }

  it("a device registered over TCP with reg-id: the MESSAGE's target is its flow (connection id, address, port)", async () => {
    server = await ParleyServer.start({ domains: ['localhost'], listen: [`tcp:${HOST}:0`], data: await tempDir('data') });
    for (const aor of ['sip:alice@localhost', BOB]) server.store.addAccount(aor, accountHashes(aor, 'pw'));
    const targets: Array<{ message: SipMessage; target: Target | undefined }> = [];
    const request = server.stack.request.bind(server.stack);
    server.stack.request = (message, options = {}) => {
      targets.push({ message, target: options.target });
      return request(message, options);
    };
    const uri = `sip:${HOST}:${server.transports[0]!.local.port};transport=tcp`;
    const connect = async (user: string): Promise<ParleyClient> => {
      const client = await within(ParleyClient.connect({ server: uri, user: `${user}@localhost`, password: 'pw', stateDir: await tempDir(user) }), `connect ${user}`);
      clients.push(client);
      return client;
    };
    const bob = await connect('bob');
    const got: string[] = [];
    bob.on('message', (m) => void got.push(m.text));
    const alice = await connect('alice');
    await within(alice.send('bob@localhost', 'on your flow'), 'send');
    await until(() => got.length === 1, 'bob receiving it');

    const [binding] = server.store.get(BOB);
    expect(binding?.regId, 'bob registered with reg-id').to.equal(1);
    expect(binding?.flow?.connectionId, 'over a connection').to.be.a('number');
    const toBob = targets.filter((t) => t.message.method === 'MESSAGE' && t.message.to.uri.user === 'bob');
    expect(toBob).to.have.length(1);
    expect(toBob[0]!.target).to.deep.equal({ protocol: 'tcp', address: binding!.flow!.address, port: binding!.flow!.port, flow: binding!.flow!.connectionId });
  });
});
