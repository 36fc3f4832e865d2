// The digest algorithms a Parley server offers (docs/server.md "Registration" and the
// `digestAlgorithms` field): configurable, in the order given, because many clients read only the
// first WWW-Authenticate (SIPp 3.6.1 with -au/-ap, deployed phones) — test/app/sipp-digest.test.ts
// shows that with SIPp itself.
//
// - `digestAlgorithms` in resolveConfig: the default order (SHA-512-256, SHA-256, MD5), names
//   case-insensitive and spelled canonically, and CONFIG_INVALID for an empty list, a repeated
//   name, an unknown one (SHA-1, MD5-sess) or something not a list.
// - `parley server --digest-algorithms SHA-256,MD5` gives that list; a bad name is a message.
// - On the wire: a REGISTER and a MESSAGE without credentials get one WWW-Authenticate per
//   algorithm, in the configured order, exactly those; a Parley client logs in to an MD5-only
//   server, and its Authorization says MD5.
// - `parley user add` keeps an HA1 for every algorithm a server may be configured with, each
//   the RFC 7616 §3.4.2 H(user:realm:password).
import { expect } from 'chai';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  accountHashes,
  ConfigError,
  DEFAULT_CONFIG,
  digestHa1,
  openStore,
  ParleyClient,
  ParleyServer,
  parseMessage,
  resolveConfig,
  type SipMessage,
} from '../../src/index.js';
import { serverConfigFromArgs } from '../../src/cli/server-command.js';
import { userCommand } from '../../src/cli/user-command.js';
import { token, UdpSipPeer } from '../support/udp-sip.js';
import { within } from '../support/waiting.js';

const HOST = '127.0.0.1';
const DOMAIN = 'localhost';
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).code).to.equal('CONFIG_INVALID');
    return error as ConfigError;
  }
  throw new Error('no ConfigError');
}

/** The algorithm= of each WWW-Authenticate of a response, in order. */
function offered(response: SipMessage): string[] {
  return response.headers('www-authenticate').map((value) => /algorithm=("?)([A-Za-z0-9-]+)\1/.exec(value)?.[2] ?? '(none)');
}

describe('digestAlgorithms: the configuration', () => {
  it('defaults to SHA-512-256, SHA-256, MD5 (strongest first, RFC 8760 §2.3)', () => {
    expect(DEFAULT_CONFIG.digestAlgorithms).to.deep.equal(['SHA-512-256', 'SHA-256', 'MD5']);
    expect(resolveConfig({}).digestAlgorithms).to.deep.equal(['SHA-512-256', 'SHA-256', 'MD5']);
  });

  it('keeps the order given; names are case-insensitive and come out spelled as RFC 8760 does', () => {
    expect(resolveConfig({ digestAlgorithms: ['MD5'] }).digestAlgorithms).to.deep.equal(['MD5']);
    expect(resolveConfig({ digestAlgorithms: ['sha-256', 'md5'] as never }).digestAlgorithms).to.deep.equal(['SHA-256', 'MD5']);
    expect(resolveConfig({ digestAlgorithms: ['MD5', 'SHA-512-256', 'SHA-256'] }).digestAlgorithms).to.deep.equal(['MD5', 'SHA-512-256', 'SHA-256']);
  });

  for (const [what, value] of [
    ['an empty list', []],
    ['a repeated name', ['MD5', 'md5']],
    ['an unknown algorithm', ['SHA-1']],
    ['a -sess variant (no account keeps its HA1 apart)', ['MD5-sess']],
    ['an empty name', ['MD5', '']],
    ['a string, not a list', 'MD5'],
    ['a number in the list', [5]],
  ] as const) {
    it(`refuses ${what} with CONFIG_INVALID saying what the field takes`, () => {
      const error = configError(() => resolveConfig({ digestAlgorithms: value as never }));
      expect(error.message).to.include('"digestAlgorithms" must be a non-empty list of distinct names among MD5, SHA-256, SHA-512-256');
    });
  }

  it('parley server --digest-algorithms SHA-256,MD5 → [SHA-256, MD5]; without the flag the default; a bad list is a message', () => {
    const config = serverConfigFromArgs(['--digest-algorithms', 'SHA-256,MD5']);
    expect(typeof config, String(config)).to.equal('object');
    expect((config as ReturnType<typeof resolveConfig>).digestAlgorithms).to.deep.equal(['SHA-256', 'MD5']);
    expect((serverConfigFromArgs([]) as ReturnType<typeof resolveConfig>).digestAlgorithms).to.deep.equal(['SHA-512-256', 'SHA-256', 'MD5']);
    for (const bad of ['MD5,,SHA-256', 'MD5,SHA-1', 'MD5,MD5', '']) {
      const result = serverConfigFromArgs(['--digest-algorithms', bad]);
      expect(result, bad).to.be.a('string').and.include('"digestAlgorithms" must be a non-empty list');
    }
  });
});

describe('digestAlgorithms: what a server offers, and who gets in', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  const servers: ParleyServer[] = [];
  const peers: UdpSipPeer[] = [];
  const clients: ParleyClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) await within(client.close(), 'client.close()');
    for (const peer of peers.splice(0)) await peer.close();
    for (const server of servers.splice(0)) await within(server.stop(), 'server.stop()');
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  async function tempDir(label: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `parley-digest-${label}-`));
    dirs.push(dir);
    return dir;
  }

  async function startServer(digestAlgorithms?: Array<'MD5' | 'SHA-256' | 'SHA-512-256'>): Promise<ParleyServer> {
    const server = await ParleyServer.start(
      { domains: [DOMAIN], listen: [`udp:${HOST}:0`, `tcp:${HOST}:0`], data: await tempDir('data'), ...(digestAlgorithms ? { digestAlgorithms } : {}) },
      { logger: silent },
    );
    servers.push(server);
    server.store.addAccount(`sip:alice@${DOMAIN}`, accountHashes(`sip:alice@${DOMAIN}`, 'pw'));
    server.store.addAccount(`sip:bob@${DOMAIN}`, accountHashes(`sip:bob@${DOMAIN}`, 'pw'));
    return server;
  }

  /** The final response to a request without credentials, sent over UDP from a bare socket. */
  async function challenge(server: ParleyServer, method: 'REGISTER' | 'MESSAGE'): Promise<SipMessage> {
    const port = server.transports.find((t) => t.protocol === 'udp')!.local.port;
    const peer = await UdpSipPeer.bind(HOST);
    peers.push(peer);
    const callId = `digest-${token()}`;
    const uri = method === 'REGISTER' ? `sip:${DOMAIN}` : `sip:bob@${DOMAIN}`;
    const body = method === 'MESSAGE' ? 'hi' : '';
    const bytes = Buffer.from(
      [
        `${method} ${uri} SIP/2.0`,
        `Via: SIP/2.0/UDP ${HOST}:${peer.port};branch=z9hG4bK-${token()};rport`,
        'Max-Forwards: 70',
        `From: <sip:alice@${DOMAIN}>;tag=${token()}`,
        `To: <sip:${method === 'REGISTER' ? 'alice' : 'bob'}@${DOMAIN}>`,
        `Call-ID: ${callId}`,
        `CSeq: 1 ${method}`,
        ...(method === 'REGISTER' ? [`Contact: <sip:alice@${HOST}:${peer.port}>`, 'Expires: 60'] : ['Content-Type: text/plain']),
        `Content-Length: ${body.length}`,
        '',
        body,
      ].join('\r\n'),
    );
    await peer.send(bytes, port, HOST);
    const got = await peer.waitFor((r) => r.message !== undefined && !r.message.isRequest && r.message.status >= 200 && r.message.callId === callId, 5000);
    if (!got?.message) throw new Error(`${method}: no final response`);
    return got.message;
  }

  for (const [label, configured, expected] of [
    ['the default', undefined, ['SHA-512-256', 'SHA-256', 'MD5']],
    ['[SHA-256, MD5]', ['SHA-256', 'MD5'], ['SHA-256', 'MD5']],
    ['[MD5]', ['MD5'], ['MD5']],
    ['[MD5, SHA-512-256]', ['MD5', 'SHA-512-256'], ['MD5', 'SHA-512-256']],
  ] as const) {
    it(`${label}: a REGISTER and a MESSAGE without credentials get 401 with exactly ${expected.join(', ')}, in that order`, async () => {
      const server = await startServer(configured === undefined ? undefined : [...configured]);
      for (const method of ['REGISTER', 'MESSAGE'] as const) {
        const response = await challenge(server, method);
        expect(response.status, method).to.equal(401);
        expect(offered(response), method).to.deep.equal(expected);
        for (const value of response.headers('www-authenticate')) expect(value, method).to.include(`realm="${DOMAIN}"`);
      }
    });
  }

  it('an MD5-only server: a Parley client registers and sends with MD5 credentials (202)', async () => {
    const server = await startServer(['MD5']);
    const authorizations: string[] = [];
    const onOut = (data: unknown): void => {
      try {
        const message = parseMessage(Buffer.from((data as { bytes: Buffer }).bytes));
        if (message.isRequest) authorizations.push(...message.headers('authorization').map((v) => `${message.method} ${v}`));
      } catch {
        // keep-alives
      }
    };
    subscribe('parley:message:out', onOut);
    try {
      const client = await within(
        ParleyClient.connect({ server: `sip:${HOST}:${server.transports.find((t) => t.protocol === 'tcp')!.local.port};transport=tcp`, user: `alice@${DOMAIN}`, password: 'pw', stateDir: await tempDir('alice') }),
        'ParleyClient.connect',
      );
      clients.push(client);
      const sent = await within(client.send(`bob@${DOMAIN}`, 'over MD5'), 'send');
      expect(sent.status).to.equal(202);
    } finally {
      unsubscribe('parley:message:out', onOut);
    }
    const ours = authorizations.filter((a) => a.includes('username="alice"'));
    expect(ours.some((a) => a.startsWith('REGISTER ')), ours.join('\n')).to.equal(true);
    expect(ours.some((a) => a.startsWith('MESSAGE ')), ours.join('\n')).to.equal(true);
    for (const a of ours) expect(a, a).to.match(/algorithm="?MD5"?(,|$|\s)/);
  });
});

describe('digestAlgorithms: accounts answer any order a server is given', () => {
  it('parley user add keeps H(user:realm:password) for MD5, SHA-256 and SHA-512-256 (realm = the domain)', async () => {
    const data = await mkdtemp(join(tmpdir(), 'parley-digest-user-'));
    try {
      const out: string[] = [];
      const err: string[] = [];
      const code = await userCommand(['add', 'carol@example.test', '--password', 's3cret', '--data', data], (l) => out.push(l), (l) => err.push(l));
      expect(code, err.join('\n')).to.equal(0);
      expect(out).to.deep.equal(['added carol@example.test']);
      const store = openStore(data);
      try {
        const account = store.account('sip:carol@example.test');
        expect(account).to.not.equal(undefined);
        expect(Object.keys(account!.hashes).sort()).to.deep.equal(['MD5', 'SHA-256', 'SHA-512-256']);
        for (const algorithm of ['MD5', 'SHA-256', 'SHA-512-256'] as const) {
          expect(account!.hashes[algorithm], algorithm).to.equal(digestHa1(algorithm, 'carol', 'example.test', 's3cret'));
        }
        expect(account!.hashes.MD5).to.match(/^[0-9a-f]{32}$/);
        expect(account!.hashes['SHA-256']).to.match(/^[0-9a-f]{64}$/);
        expect(account!.hashes['SHA-512-256']).to.match(/^[0-9a-f]{64}$/);
      } finally {
        await store.close();
      }
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });
});
