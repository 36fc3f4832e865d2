// `parley parse` as a user runs it: a child process, real files, the JSON lines and exit status
// ARCHITECTURE.md fixes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string): string => join(root, 'test', 'fixtures', 'rfc4475', `${name}.sip`);

function parley(...args: string[]): { status: number | null; lines: unknown[]; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  const lines = run.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as unknown);
  return { status: run.status, lines, stderr: run.stderr };
}

describe('parley parse', () => {
  it('prints one line per file and exits 0 when every message is acceptable', () => {
    const run = parley('parse', fixture('wsinv'), fixture('unreason'));
    expect(run.status).to.equal(0);
    expect(run.lines).to.deep.equal([
      { file: fixture('wsinv'), ok: true, kind: 'request', method: 'INVITE', reject: null },
      { file: fixture('unreason'), ok: true, kind: 'response', status: 200, reject: null },
    ]);
  });

  it('reports the status to answer, "drop", and bytes that are not SIP; exits 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-parse-'));
    const garbage = join(dir, 'garbage.sip');
    writeFileSync(garbage, 'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n');
    const run = parley('parse', fixture('badvers'), fixture('bigcode'), fixture('unkscm'), garbage);
    expect(run.status).to.equal(1);
    expect(run.lines).to.deep.equal([
      { file: fixture('badvers'), ok: true, kind: 'request', method: 'OPTIONS', reject: 505 },
      { file: fixture('bigcode'), ok: true, kind: 'response', status: 4294967301, reject: 'drop' },
      { file: fixture('unkscm'), ok: true, kind: 'request', method: 'OPTIONS', reject: 416 },
      { file: garbage, ok: false, code: 'SIP_BAD_START_LINE', error: 'no SIP version at the end of the request line' },
    ]);
  });

  it('reports an unreadable file as not ok', () => {
    const run = parley('parse', join(root, 'no-such-file.sip'));
    expect(run.status).to.equal(1);
    expect(run.lines).to.have.length(1);
    expect(run.lines[0]).to.deep.include({ ok: false, code: 'ENOENT' });
  });

  it('without files, prints usage and exits 2', () => {
    const run = parley('parse');
    expect(run.status).to.equal(2);
    expect(run.stderr).to.contain('usage: parley parse FILE...');
  });
});
