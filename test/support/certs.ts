// Throwaway TLS material for the transport tests, made with the `openssl` CLI once per test run in
// a temporary directory (removed when the process exits). No key is ever committed.
//
//   ca        a self-signed CA (basicConstraints CA:TRUE)
//   server    a leaf for CN=localhost with SAN IP:127.0.0.1, IP:::1, DNS:localhost, signed by ca
//   bad       a self-signed leaf with the same names, which nothing trusts
//   issueCert(san, cn) — more leaves signed by ca, with the subjectAltName (and CN) a test needs
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  /** The CA certificate (PEM) that signed `serverCert`. */
  ca: Buffer;
  serverKey: Buffer;
  serverCert: Buffer;
  /** A self-signed certificate for the same names, signed by nobody the client trusts. */
  badKey: Buffer;
  badCert: Buffer;
}

const SAN = 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost';
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

let cached: TestCerts | undefined;
let caDir: string | undefined;
const issued = new Map<string, { key: Buffer; cert: Buffer }>();

/** Generates the certificates on first call (about 50 ms); later calls return the same ones. */
export function testCerts(): TestCerts {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'parley-certs-'));
  caDir = dir;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };

  openssl('req', '-x509', ...KEY, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2',
    '-subj', '/CN=Parley Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign');

  openssl('req', ...KEY, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(file('server.ext'), [
    SAN,
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth,clientAuth',
    '',
  ].join('\n'));
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
    '-set_serial', '2', '-days', '2', '-extfile', file('server.ext'), '-out', file('server.pem'));

  openssl('req', '-x509', ...KEY, '-keyout', file('bad.key'), '-out', file('bad.pem'), '-days', '2',
    '-subj', '/CN=localhost', '-addext', SAN);

  cached = {
    ca: readFileSync(file('ca.pem')),
    serverKey: readFileSync(file('server.key')),
    serverCert: readFileSync(file('server.pem')),
    badKey: readFileSync(file('bad.key')),
    badCert: readFileSync(file('bad.pem')),
  };
  return cached;
}

/**
 * A leaf signed by the test CA for `san` (an openssl subjectAltName value such as
 * `URI:sip:example.test` or `IP:127.0.0.1`; undefined for none) and subject CN `cn`. Cached.
 */
export function issueCert(san: string | undefined, cn = 'parley-test'): { key: Buffer; cert: Buffer } {
  const id = `${san ?? ''}|${cn}`;
  const known = issued.get(id);
  if (known) return known;
  testCerts();
  const dir = caDir!;
  const name = `leaf-${issued.size}`;
  const file = (suffix: string): string => join(dir, `${name}.${suffix}`);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  openssl('req', ...KEY, '-keyout', file('key'), '-out', file('csr'), '-subj', `/CN=${cn}`);
  writeFileSync(file('ext'), [
    ...(san === undefined ? [] : [`subjectAltName=${san}`]),
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth,clientAuth',
    '',
  ].join('\n'));
  openssl('x509', '-req', '-in', file('csr'), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'),
    '-set_serial', String(100 + issued.size), '-days', '2', '-extfile', file('ext'), '-out', file('pem'));
  const made = { key: readFileSync(file('key')), cert: readFileSync(file('pem')) };
  issued.set(id, made);
  return made;
}

/** The test CA as a file (for `--ca FILE`). */
export function testCaFile(): string {
  testCerts();
  return join(caDir!, 'ca.pem');
}
