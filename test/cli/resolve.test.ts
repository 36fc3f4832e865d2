// `parley resolve SIP-URI --dns HOST:PORT` (docs/dns.md, "parley resolve") as a user runs it: a
// child process (the TypeScript sources through tsx, like parse.test.ts) against the loopback DNS
// server of test/support/dns-server.ts. One stdout line per target, `PROTO HOST:PORT`, IPv6 in
// brackets; exit 0 with targets, 1 with none (and `parley: no targets for URI (CODE: …)` on
// stderr), 2 for bad arguments. The child is spawned asynchronously: the DNS server answers from
// this process's event loop, which spawnSync would block.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startDnsServer, type TestDnsServer, type ZoneRecord } from '../support/dns-server.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  status: number | null;
  stdout: string[];
  stderr: string[];
}

function parley(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (status) => {
      clearTimeout(timer);
      const lines = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);
      resolve({ status, stdout: lines(stdout), stderr: lines(stderr) });
    });
  });
}

const ZONE: ZoneRecord[] = [
  { type: 'SOA', name: 'test', minimum: 60 },
  // NAPTR (TCP before UDP by order) → SRV → A and AAAA.
  { type: 'NAPTR', name: 'example.test', order: 20, preference: 10, flags: 's', service: 'SIP+D2U', regexp: '', replacement: '_sip._udp.example.test' },
  { type: 'NAPTR', name: 'example.test', order: 10, preference: 10, flags: 's', service: 'SIP+D2T', regexp: '', replacement: '_sip._tcp.example.test' },
  { type: 'SRV', name: '_sip._tcp.example.test', priority: 10, weight: 0, port: 5070, target: 'a.example.test' },
  { type: 'SRV', name: '_sip._udp.example.test', priority: 10, weight: 0, port: 5060, target: 'a.example.test' },
  { type: 'A', name: 'a.example.test', address: '127.0.0.1' },
  { type: 'AAAA', name: 'a.example.test', address: '::1' },
  // No NAPTR: SRV per transport, priority order within each.
  { type: 'SRV', name: '_sip._udp.srv.test', priority: 20, weight: 0, port: 5064, target: 'b2.srv.test' },
  { type: 'SRV', name: '_sip._udp.srv.test', priority: 10, weight: 0, port: 5062, target: 'b1.srv.test' },
  { type: 'A', name: 'b1.srv.test', address: '192.0.2.1' },
  { type: 'A', name: 'b2.srv.test', address: '192.0.2.2' },
  // Neither NAPTR nor SRV: A/AAAA on the default port, UDP.
  { type: 'A', name: 'plain.test', address: '192.0.2.7' },
  { type: 'AAAA', name: 'plain.test', address: '2001:db8::7' },
  { type: 'CNAME', name: 'alias.test', target: 'plain.test' },
  // sips: only SIPS+D2T is usable.
  { type: 'NAPTR', name: 'secure.test', order: 10, preference: 10, flags: 's', service: 'SIP+D2T', regexp: '', replacement: '_sip._tcp.secure.test' },
  { type: 'NAPTR', name: 'secure.test', order: 20, preference: 10, flags: 's', service: 'SIPS+D2T', regexp: '', replacement: '_sips._tcp.secure.test' },
  { type: 'SRV', name: '_sip._tcp.secure.test', priority: 10, weight: 0, port: 5070, target: 's.secure.test' },
  { type: 'SRV', name: '_sips._tcp.secure.test', priority: 10, weight: 0, port: 5071, target: 's.secure.test' },
  { type: 'A', name: 's.secure.test', address: '192.0.2.9' },
];

describe('parley resolve', function () {
  this.timeout(30_000);
  let dns: TestDnsServer;

  before(async () => {
    dns = await startDnsServer({ records: ZONE });
  });

  after(async () => {
    await dns.close();
  });

  beforeEach(() => {
    dns.queries.length = 0;
  });

  it('NAPTR → SRV → A/AAAA: one line per target in RFC 3263 order, IPv6 in brackets, exit 0', async () => {
    const run = await parley('resolve', 'sip:bob@example.test', '--dns', dns.nameserver);
    expect(run.stderr).to.deep.equal([]);
    expect(run.stdout).to.deep.equal(['tcp 127.0.0.1:5070', 'tcp [::1]:5070', 'udp 127.0.0.1:5060', 'udp [::1]:5060']);
    expect(run.status).to.equal(0);
    expect(dns.queries[0]).to.deep.equal({ name: 'example.test', type: 'NAPTR' });
  });

  it('the --dns option may come before the URI', async () => {
    const run = await parley('resolve', '--dns', dns.nameserver, 'sip:example.test');
    expect(run.stdout).to.deep.equal(['tcp 127.0.0.1:5070', 'tcp [::1]:5070', 'udp 127.0.0.1:5060', 'udp [::1]:5060']);
    expect(run.status).to.equal(0);
  });

  it('no NAPTR: SRV records by priority; neither: A/AAAA on 5060 (CNAMEs followed); an explicit port skips SRV', async () => {
    const [srv, plain, alias, port] = await Promise.all([
      parley('resolve', 'sip:srv.test', '--dns', dns.nameserver),
      parley('resolve', 'sip:plain.test', '--dns', dns.nameserver),
      parley('resolve', 'sip:alias.test', '--dns', dns.nameserver),
      parley('resolve', 'sip:carol@plain.test:5099', '--dns', dns.nameserver),
    ]);
    expect(srv.stdout).to.deep.equal(['udp 192.0.2.1:5062', 'udp 192.0.2.2:5064']);
    expect(srv.status).to.equal(0);
    expect(plain.stdout).to.deep.equal(['udp 192.0.2.7:5060', 'udp [2001:db8::7]:5060']);
    expect(plain.status).to.equal(0);
    expect(alias.stdout).to.deep.equal(['udp 192.0.2.7:5060', 'udp [2001:db8::7]:5060']);
    expect(alias.status).to.equal(0);
    expect(port.stdout).to.deep.equal(['udp 192.0.2.7:5099', 'udp [2001:db8::7]:5099']);
    expect(port.status).to.equal(0);
    // The explicit port asked for addresses only.
    const forPort = dns.queries.filter((q) => q.name === 'plain.test');
    expect(forPort.filter((q) => q.type !== 'A' && q.type !== 'AAAA' && q.type !== 'NAPTR')).to.deep.equal([]);
  });

  it('transport=tcp: SRV for _sip._tcp only; sips: only the SIPS+D2T NAPTR', async () => {
    const [tcp, sips] = await Promise.all([
      parley('resolve', 'sip:example.test;transport=tcp', '--dns', dns.nameserver),
      parley('resolve', 'sips:alice@secure.test', '--dns', dns.nameserver),
    ]);
    expect(tcp.stdout).to.deep.equal(['tcp 127.0.0.1:5070', 'tcp [::1]:5070']);
    expect(tcp.status).to.equal(0);
    expect(sips.stdout).to.deep.equal(['tls 192.0.2.9:5071']);
    expect(sips.status).to.equal(0);
  });

  it('numeric hosts: no DNS at all; transport param, else UDP (sip:) / TLS (sips:), default ports', async () => {
    const runs = await Promise.all([
      parley('resolve', 'sip:192.0.2.1', '--dns', dns.nameserver),
      parley('resolve', 'sip:bob@[2001:db8::1]:5080;transport=tcp', '--dns', dns.nameserver),
      parley('resolve', 'sips:[::1]', '--dns', dns.nameserver),
      parley('resolve', 'sip:127.0.0.1:5090;transport=udp', '--dns', dns.nameserver),
    ]);
    expect(runs.map((r) => r.stdout)).to.deep.equal([['udp 192.0.2.1:5060'], ['tcp [2001:db8::1]:5080'], ['tls [::1]:5061'], ['udp 127.0.0.1:5090']]);
    expect(runs.map((r) => r.status)).to.deep.equal([0, 0, 0, 0]);
    expect(dns.queries).to.deep.equal([]);
  });

  it('NXDOMAIN: nothing on stdout, "parley: no targets for URI (DNS_NXDOMAIN: …)" on stderr, exit 1', async () => {
    const run = await parley('resolve', 'sip:bob@nowhere.test', '--dns', dns.nameserver);
    expect(run.stdout).to.deep.equal([]);
    expect(run.stderr).to.have.length(1);
    expect(run.stderr[0]).to.match(/^parley: no targets for /);
    expect(run.stderr[0]!.startsWith('parley: no targets for sip:bob@nowhere.test (DNS_NXDOMAIN: ')).to.equal(true, run.stderr[0]);
    expect(run.status).to.equal(1);
  });

  it('bad arguments: exit 2, nothing on stdout', async () => {
    const runs = await Promise.all([
      parley('resolve'),
      parley('resolve', '--dns', dns.nameserver),
      parley('resolve', 'not a uri', '--dns', dns.nameserver),
      parley('resolve', 'sip:example.test', '--dns'),
      parley('resolve', 'sip:example.test', '--dns', dns.nameserver, '--bogus'),
      parley('resolve', 'sip:example.test', 'sip:other.test', '--dns', dns.nameserver),
    ]);
    expect(runs.map((r) => r.status)).to.deep.equal([2, 2, 2, 2, 2, 2]);
    for (const run of runs) {
      expect(run.stdout).to.deep.equal([]);
      expect(run.stderr.length).to.be.at.least(1);
    }
    expect(dns.queries).to.deep.equal([]);
  });
});
