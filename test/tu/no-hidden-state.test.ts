// No hidden module state: what one stack does never shows in another (connection ids come from the
// stack's own sequence), and the version is a constant, not package.json read at import.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { expect } from 'chai';
import { DialogUsageManager, SipStack, type ServerRequest } from '../../src/index.js';
import { PARLEY_VERSION } from '../../src/version.js';

function options(port: number, n: number): string {
  return [
    `OPTIONS sip:bob@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-ids-${n}`,
    'Max-Forwards: 70',
    `From: <sip:alice@127.0.0.1>;tag=ids-${n}`,
    'To: <sip:bob@127.0.0.1>',
    `Call-ID: ids-${n}@127.0.0.1`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Sends one OPTIONS on a new TCP connection and waits for the 200. */
function ask(port: number, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(options(port, n)));
    socket.on('data', (data) => {
      if (data.toString().startsWith('SIP/2.0 200')) {
        socket.destroy();
        resolve();
      }
    });
    socket.on('error', reject);
  });
}

async function stackRecordingIds(listen: string[]): Promise<{ stack: SipStack; ids: Array<number | undefined> }> {
  const stack = new SipStack({ transports: listen, dns: false });
  const ids: Array<number | undefined> = [];
  stack.setDefaultTu({
    onRequest: (request: ServerRequest) => {
      ids.push(request.connectionId);
      request.respond(200);
    },
  });
  await stack.start();
  return { stack, ids };
}

describe('no hidden module state', () => {
  it('connection ids come from each stack: unique across its transports, and a second stack starts again at 1', async () => {
    const a = await stackRecordingIds(['tcp:127.0.0.1:0', 'tcp:127.0.0.1:0']);
    const b = await stackRecordingIds(['tcp:127.0.0.1:0']);
    try {
      const [first, second] = a.stack.transports;
      await ask(first!.local.port, 1);
      await ask(second!.local.port, 2);
      await ask(first!.local.port, 3);
      await ask(b.stack.transports[0]!.local.port, 4);
      expect(a.ids).to.deep.equal([1, 2, 3]);
      expect(b.ids).to.deep.equal([1]);
    } finally {
      await Promise.all([a.stack.stop(), b.stack.stop()]);
    }
  });

  it("the version is package.json's, and a DUM's User-Agent carries it", async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(PARLEY_VERSION).to.equal(pkg.version);
    const stack = new SipStack({ transports: ['udp:127.0.0.1:0'], dns: false });
    await stack.start();
    try {
      expect(new DialogUsageManager(stack).userAgent).to.equal(`Parley/${pkg.version}`);
    } finally {
      await stack.stop();
    }
  });
});
