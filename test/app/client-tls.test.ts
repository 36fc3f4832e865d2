// The Parley clients over TLS (issue 16, "TLS"; docs/server.md): `parley send` / `parley listen`
// with `--server sips:HOST:PORT` (or `;transport=tls`) and `--ca FILE` against a TLS-only
// `parley server`, as real child processes on loopback; and the library ParleyClient with its
// `ca` option. The client verifies the server's certificate: it must chain to a trusted CA and
// name the --server host (RFC 5922: here the IP subjectAltName 127.0.0.1).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { ClientError, ParleyClient } from '../../src/index.js';
import { issueCert, testCaFile, testCerts } from '../support/certs.js';
import { killAll, killAllBut, parley, removeTemporaries, start, tempDir, type Proc } from '../support/parley-process.js';

after(() => {
  killAll();
  removeTemporaries();
});

interface TlsServer {
  proc: Proc;
  port: number;
}

async function startTlsServer(data: string, cert: { key: Buffer; cert: Buffer }): Promise<TlsServer> {
  const dir = tempDir('tls-server-cert');
  writeFileSync(join(dir, 'cert.pem'), cert.cert);
  writeFileSync(join(dir, 'key.pem'), cert.key);
  const proc = start([
    'server', '--data', data, '--domain', 'localhost', '--listen', 'tls:127.0.0.1:0',
    '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'),
  ]);
  await proc.waitFor(() => proc.out().includes('ready'), 'the server to print "ready"', 40_000);
  const line = proc.out().find((l) => l.startsWith('listening tls:127.0.0.1:'));
  if (line === undefined) throw new Error(`no "listening tls:127.0.0.1:PORT" line\n${proc.transcript()}`);
  return { proc, port: Number(line.slice('listening tls:127.0.0.1:'.length)) };
}

async function addUsers(data: string, ...users: string[]): Promise<void> {
  for (const user of users) {
    const run = await parley(['user', 'add', user, '--password', 'pw', '--data', data]);
    expect(run.code, run.transcript).to.equal(0);
  }
}

describe('parley send / listen and ParleyClient over TLS (sips:, --ca)', function () {
  this.timeout(120_000);
  let data: string;
  let server: TlsServer;
  let caFile: string;

  before(async function () {
    this.timeout(120_000);
    const certs = testCerts();
    caFile = testCaFile();
    data = tempDir('tls-data');
    await addUsers(data, 'alice@localhost', 'bob@localhost', 'carol@localhost');
    // CN=localhost, SAN IP:127.0.0.1, IP:::1, DNS:localhost, signed by the test CA.
    server = await startTlsServer(data, { key: certs.serverKey, cert: certs.serverCert });
  });

  after(async () => {
    await server?.proc.stop('SIGTERM');
  });

  afterEach(() => killAllBut((child) => child === server?.proc.child));

  const flags = (user: string, uri = `sips:127.0.0.1:${server.port}`): string[] => ['--server', uri, '--user', user, '--password', 'pw'];

  it('send --server sips:… --ca ca.pem reaches a TLS-only server: "accepted", and listen over TLS prints it, then "delivered"', async () => {
    const home = tempDir('tls-bob');
    const listener = start(['listen', '--json', ...flags('bob@localhost'), '--ca', caFile], { PARLEY_HOME: home });
    await listener.waitFor(() => listener.err().some((l) => l.includes('registered as bob@localhost')), '"registered as bob@localhost"', 40_000);

    const run = await parley(['send', ...flags('alice@localhost'), '--ca', caFile, '--to', 'bob@localhost', '--text', 'over tls', '--wait-delivery', '10'], {
      PARLEY_HOME: tempDir('tls-alice'),
    });
    expect(run.code, run.transcript).to.equal(0);
    expect(run.stdout[0], run.transcript).to.match(/^accepted [0-9a-f]{32}$/);
    const id = run.stdout[0]!.slice('accepted '.length);
    expect(run.stdout[1], run.transcript).to.equal(`delivered ${id}`);
    await listener.waitFor(() => listener.out().length > 0, 'the message on stdout', 10_000);
    const message = JSON.parse(listener.out()[0]!) as { from: string; text: string; messageId: string };
    expect([message.from, message.text, message.messageId]).to.deep.equal(['alice@localhost', 'over tls', id]);
  });

  it('sip:127.0.0.1:PORT;transport=tls with --ca --ca-only works the same', async () => {
    const run = await parley(['send', ...flags('alice@localhost', `sip:127.0.0.1:${server.port};transport=tls`), '--ca', caFile, '--ca-only', '--to', 'carol@localhost', '--text', 'tls param'], {
      PARLEY_HOME: tempDir('tls-alice2'),
    });
    expect(run.code, run.transcript).to.equal(0);
    expect(run.stdout[0], run.transcript).to.match(/^accepted /);
  });

  it('without --ca the server certificate is not trusted: exit 1 with one line saying TLS failed and naming --ca', async () => {
    const run = await parley(['send', ...flags('alice@localhost'), '--to', 'bob@localhost', '--text', 'untrusted'], { PARLEY_HOME: tempDir('tls-alice3') });
    expect(run.code, run.transcript).to.equal(1);
    expect(run.stdout, run.transcript).to.deep.equal([]);
    const line = run.stderr.find((l) => l.startsWith('parley send: TLS with the server failed'));
    expect(line, run.transcript).to.be.a('string');
    expect(line, run.transcript).to.match(/certificate/i).and.match(/--ca FILE/);
    expect(run.ms, run.transcript).to.be.below(10_000);
  });

  it('listen without --ca exits 1 with the same TLS line (the registration fails)', async () => {
    const run = await parley(['listen', ...flags('bob@localhost')], { PARLEY_HOME: tempDir('tls-bob2') });
    expect(run.code, run.transcript).to.equal(1);
    expect(run.stderr.some((l) => l.startsWith('parley listen: TLS with the server failed')), run.transcript).to.equal(true);
  });

  it('--ca with a file that cannot be read: exit 2 naming it', async () => {
    const run = await parley(['send', ...flags('alice@localhost'), '--ca', '/nonexistent/ca.pem', '--to', 'bob@localhost', '--text', 'x']);
    expect(run.code, run.transcript).to.equal(2);
    expect(run.stderr.some((l) => l.includes('--ca /nonexistent/ca.pem')), run.transcript).to.equal(true);
  });

  it('library: ParleyClient with { ca, systemCa: false } registers and sends over sips:; without ca it rejects CLIENT_TLS', async () => {
    const ca = testCerts().ca;
    const client = await ParleyClient.connect({ server: `sips:127.0.0.1:${server.port}`, user: 'alice@localhost', password: 'pw', ca, systemCa: false, stateDir: tempDir('lib-alice') });
    try {
      const result = await client.send('bob@localhost', 'from the library');
      expect(result.status).to.equal(202);
    } finally {
      await client.close();
    }
    const error = await ParleyClient.connect({ server: `sips:127.0.0.1:${server.port}`, user: 'alice@localhost', password: 'pw', stateDir: tempDir('lib-alice2') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(ClientError);
    expect((error as ClientError).code).to.equal('CLIENT_TLS');
  });
});

describe('the client checks the server certificate names the --server host (RFC 5922)', function () {
  this.timeout(120_000);
  let server: TlsServer;

  before(async function () {
    this.timeout(120_000);
    const data = tempDir('tls-data2');
    await addUsers(data, 'alice@localhost');
    // Signed by the trusted CA, but for sip:example.test only: not 127.0.0.1.
    server = await startTlsServer(data, issueCert('URI:sip:example.test'));
  });

  after(async () => {
    await server?.proc.stop('SIGTERM');
  });

  it('a trusted certificate for another name: exit 1, TLS failed, the line names the domain checked', async () => {
    const run = await parley(['send', '--server', `sips:127.0.0.1:${server.port}`, '--user', 'alice@localhost', '--password', 'pw', '--ca', testCaFile(), '--to', 'alice@localhost', '--text', 'x'], {
      PARLEY_HOME: tempDir('tls-alice4'),
    });
    expect(run.code, run.transcript).to.equal(1);
    const line = run.stderr.find((l) => l.startsWith('parley send: TLS with the server failed'));
    expect(line, run.transcript).to.match(/127\.0\.0\.1/);
  });
});
