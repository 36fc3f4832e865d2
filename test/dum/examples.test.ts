// The embedding guide's two programs (docs/dum.md, examples/): the registrar started as a real
// process on a port the OS picks, the client run against it — registering with digest, sending a
// MESSAGE the registrar accepts (202), unregistering — exactly as a newcomer would run them.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function run(file: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, file), ...args], { cwd: root, env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function until(condition: () => boolean, label: string, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${label}; output so far:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the embedding guide: examples/registrar.ts and examples/client.ts', function () {
  this.timeout(60_000);

  it('are as short as the guide promises: a registrar in 30 lines, a client in 20', () => {
    expect(readFileSync(join(root, 'examples', 'registrar.ts'), 'utf8').trimEnd().split('\n').length).to.be.at.most(30);
    expect(readFileSync(join(root, 'examples', 'client.ts'), 'utf8').trimEnd().split('\n').length).to.be.at.most(20);
  });

  it('the client registers with digest, its MESSAGE is accepted (202), it unregisters and exits 0', async () => {
    const registrar = run('examples/registrar.ts', [], { PARLEY_LISTEN: 'udp:127.0.0.1:0' });
    try {
      await until(() => /on udp:127\.0\.0\.1:\d+/.test(registrar.output()), 'the registrar to listen', registrar.output);
      const port = /on udp:127\.0\.0\.1:(\d+)/.exec(registrar.output())![1]!;
      const client = run('examples/client.ts', [`sip:127.0.0.1:${port}`]);
      const code = await client.exited;
      expect(code, client.output()).to.equal(0);
      expect(client.output()).to.include('MESSAGE: 202 Accepted');
      await until(() => registrar.output().includes('sip:alice@example.com: none'), 'the binding to go', registrar.output);
      const lines = registrar.output().trim().split('\n');
      expect(lines, registrar.output()).to.have.length(4);
      expect(lines[1]).to.match(/^sip:alice@example\.com: sip:alice@127\.0\.0\.1:\d+$/);
      expect(lines.slice(2)).to.deep.equal(['MESSAGE for sip:alice@example.com: hello', 'sip:alice@example.com: none']);
    } finally {
      registrar.child.kill('SIGTERM');
      await registrar.exited;
    }
  });
});
