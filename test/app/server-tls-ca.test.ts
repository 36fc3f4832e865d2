// `parley server --ca FILE` (config tls.ca): the CAs a server trusts for the servers it connects
// to over TLS (issue 16, "TLS"). Two servers on loopback, a.example forwarding to b.example over
// a sips: peer link whose certificate is signed by the private test CA: with --ca the message
// reaches carol; without it a.example keeps it (the TLS handshake fails, RFC 5922 / chain).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { serverConfigFromArgs } from '../../src/cli/server-command.js';
import { issueCert, testCaFile } from '../support/certs.js';
import { freePort, killAll, parley, removeTemporaries, sleep, start, tempDir, type Proc } from '../support/parley-process.js';

after(() => {
  killAll();
  removeTemporaries();
});

const SECRET = 'tls-network-secret';

function certFiles(label: string, cert: { key: Buffer; cert: Buffer }): string[] {
  const dir = tempDir(label);
  writeFileSync(join(dir, 'cert.pem'), cert.cert);
  writeFileSync(join(dir, 'key.pem'), cert.key);
  return ['--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')];
}

async function server(args: string[]): Promise<Proc> {
  const proc = start(['server', ...args]);
  await proc.waitFor(() => proc.out().includes('ready'), 'the server to print "ready"', 40_000);
  return proc;
}

describe('parley server --ca FILE: trusting a private CA for TLS peer links', function () {
  this.timeout(120_000);
  afterEach(killAll);

  async function network(withCa: boolean): Promise<{ a: Proc; b: Proc; aTcp: number; bTcp: number }> {
    const [aTcp, aTls, bTcp, bTls] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const aData = tempDir('a');
    const bData = tempDir('b');
    for (const [user, data] of [['alice@a.example', aData], ['carol@b.example', bData]] as const) {
      const run = await parley(['user', 'add', user, '--password', 'pw', '--data', data]);
      expect(run.code, run.transcript).to.equal(0);
    }
    const leaf = issueCert('URI:sip:b.example,IP:127.0.0.1');
    const ca = withCa ? ['--ca', testCaFile(), '--ca-only'] : [];
    const common = ['--secret', SECRET, '--ping-interval', '200'];
    const b = await server(['--domain', 'b.example', '--data', bData, '--listen', `tcp:127.0.0.1:${bTcp}`, '--listen', `tls:127.0.0.1:${bTls}`,
      ...certFiles('b-cert', leaf), '--ca', testCaFile(), ...common]);
    const a = await server(['--domain', 'a.example', '--data', aData, '--listen', `tcp:127.0.0.1:${aTcp}`, '--listen', `tls:127.0.0.1:${aTls}`,
      ...certFiles('a-cert', issueCert('URI:sip:a.example,IP:127.0.0.1')), ...ca, ...common, '--peer', `b.example=sips:127.0.0.1:${bTls}`]);
    return { a, b, aTcp, bTcp };
  }

  async function sendAndListen(aTcp: number, bTcp: number, attempts = 20): Promise<{ accepted: boolean; got: string[] }> {
    const listener = start(['listen', '--json', '--server', `sip:127.0.0.1:${bTcp};transport=tcp`, '--user', 'carol@b.example', '--password', 'pw'], { PARLEY_HOME: tempDir('carol') });
    await listener.waitFor(() => listener.err().some((l) => l.includes('registered as carol@b.example')), 'carol registered', 40_000);
    let accepted = false;
    for (let i = 0; i < attempts && !accepted; i++) {
      const run = await parley(['send', '--server', `sip:127.0.0.1:${aTcp};transport=tcp`, '--user', 'alice@a.example', '--password', 'pw', '--to', 'carol@b.example', '--text', 'over a tls link'], { PARLEY_HOME: tempDir('alice') });
      accepted = run.code === 0;
      if (!accepted) await sleep(500);
    }
    const deadline = Date.now() + 6000;
    while (Date.now() < deadline && listener.out().length === 0) await sleep(100);
    return { accepted, got: listener.out() };
  }

  it('with --ca (the CA that signed b.example\'s certificate) a message to carol@b.example goes over the TLS link', async () => {
    const { a, b, aTcp, bTcp } = await network(true);
    const { accepted, got } = await sendAndListen(aTcp, bTcp);
    expect(accepted, a.transcript()).to.equal(true);
    expect(got.map((l) => (JSON.parse(l) as { text: string }).text), `${a.transcript()}\n${b.transcript()}`).to.deep.equal(['over a tls link']);
  });

  it('without --ca the TLS link to b.example never comes up: carol gets nothing', async () => {
    const { a, aTcp, bTcp } = await network(false);
    const { got } = await sendAndListen(aTcp, bTcp, 4);
    expect(got, a.transcript()).to.deep.equal([]);
  });

  it('flags: --ca needs --cert/--key; --ca-only needs --ca; the config carries tls.ca and caOnly', () => {
    expect(serverConfigFromArgs(['--ca', 'x.pem'])).to.be.a('string').that.matches(/--ca and --ca-only need --cert and --key/);
    expect(serverConfigFromArgs(['--cert', 'c.pem', '--key', 'k.pem', '--ca-only'])).to.be.a('string').that.matches(/--ca-only needs --ca/);
    const config = serverConfigFromArgs(['--cert', 'c.pem', '--key', 'k.pem', '--ca', 'one.pem', '--ca', 'two.pem', '--ca-only']);
    expect(config).to.be.an('object');
    expect((config as { tls: unknown }).tls).to.deep.equal({ cert: 'c.pem', key: 'k.pem', ca: ['one.pem', 'two.pem'], caOnly: true });
  });
});
