// Throwaway TLS material for the transport tests, made with the `openssl` CLI once per test run in
// a temporary directory (removed when the process exits). No key is ever committed.
//
//   ca        a self-signed CA (basicConstraints CA:TRUE)
//   server    a leaf for CN=localhost with SAN IP:127.0.0.1, IP:::1, DNS:localhost, signed by ca
//   bad       a self-signed leaf with the same names, which nothing trusts
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

/** Generates the certificates on first call (about 50 ms); later calls return the same ones. */
export function testCerts(): TestCerts {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'parley-certs-'));
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
