// Issue 16, "done when": a flood of connections and of unique-Call-ID MESSAGEs from loopback
// leaves a registered user registered and able to send and receive, and memory returns near its
// start. An in-process ParleyServer on tcp:127.0.0.1; the users are ParleyClients over TCP from
// 127.0.0.1; the flood comes from other 127.0.0.x source addresses (127.0.0.0/8 only).
//
// Knobs (CI defaults in brackets): PARLEY_FLOOD_CONNECTIONS [2000], PARLEY_FLOOD_MESSAGES [20000].
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { digestHa1, ParleyClient, ParleyServer, StreamFramer } from '../../src/index.js';
import { until, within } from '../support/waiting.js';

const CONNECTIONS = Number(process.env.PARLEY_FLOOD_CONNECTIONS ?? 2_000);
const MESSAGES = Number(process.env.PARLEY_FLOOD_MESSAGES ?? 20_000);
const DOMAIN = 'localhost';
const PASSWORD = 'pw';
const silent = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap and Buffer memory after a full collection (RSS does not shrink reliably with malloc). */
async function memory(): Promise<{ heap: number; buffers: number; rss: number }> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers, rss: m.rss };
}

const MB = (n: number): string => `${(n / 1_048_576).toFixed(1)} MB`;

interface Raw {
  socket: Socket;
  closed: boolean;
}

function rawFrom(from: string, port: number): Promise<Raw> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    const raw: Raw = { socket, closed: false };
    socket.on('error', () => undefined);
    socket.once('close', () => {
      raw.closed = true;
      resolve(raw);
    });
    socket.once('connect', () => resolve(raw));
  });
}

function floodMessage(i: number, port: number): string {
  const body = `flood ${i}`;
  return [
    'MESSAGE sip:bob@localhost SIP/2.0',
    `Via: SIP/2.0/TCP 127.0.0.3:${port};branch=z9hG4bK-flood-${i}`,
    'Max-Forwards: 70',
    'To: <sip:bob@localhost>',
    `From: <sip:mallory@localhost>;tag=f${i}`,
    `Call-ID: flood-${i}-${Math.random().toString(36).slice(2)}`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
    `Content-Length: ${body.length}`,
    '',
    body,
  ].join('\r\n');
}

describe('Flood (issue 16)', function () {
  this.timeout(120_000);
  let server: ParleyServer | undefined;
  const clients: ParleyClient[] = [];
  const raws: Raw[] = [];
  const dirs: string[] = [];

  async function tempDir(label: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `parley-flood-${label}-`));
    dirs.push(dir);
    return dir;
  }

  afterEach(async () => {
    for (const r of raws.splice(0)) r.socket.destroy();
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
    await server?.stop();
    server = undefined;
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it(`${CONNECTIONS} connections and ${MESSAGES} unique-Call-ID MESSAGEs: bob stays registered, sends and receives; memory returns near its start`, async () => {
    server = await ParleyServer.start({ domains: [DOMAIN], listen: ['tcp:127.0.0.1:0'], data: await tempDir('data') }, { logger: silent });
    const port = server.transports[0]!.local.port;
    for (const user of ['alice', 'bob']) {
      server.store.addAccount(`sip:${user}@${DOMAIN}`, {
        MD5: digestHa1('MD5', user, DOMAIN, PASSWORD),
        'SHA-256': digestHa1('SHA-256', user, DOMAIN, PASSWORD),
        'SHA-512-256': digestHa1('SHA-512-256', user, DOMAIN, PASSWORD),
      });
    }
    const lostBindings: string[] = [];
    server.on('bindings', (aor, count) => count === 0 && lostBindings.push(aor));
    const join2 = async (user: string): Promise<ParleyClient> => {
      const client = await within(
        ParleyClient.connect({ server: `sip:127.0.0.1:${port};transport=tcp`, user: `${user}@${DOMAIN}`, password: PASSWORD, stateDir: await tempDir(user) }),
        `${user} connects`,
      );
      clients.push(client);
      return client;
    };
    const alice = await join2('alice');
    const bob = await join2('bob');
    const bobGot: string[] = [];
    const aliceGot: string[] = [];
    bob.on('message', (m) => void bobGot.push(m.text));
    alice.on('message', (m) => void aliceGot.push(m.text));
    // Delivery notifications are held until someone listens (and hold up what follows): listen.
    alice.on('delivered', () => undefined);
    bob.on('delivered', () => undefined);
    expect((await alice.send('bob@localhost', 'before')).status).to.equal(202);
    await until(() => bobGot.includes('before'), 'bob gets "before"');
    const before = await memory();
    const started = Date.now();

    // 1. Connections: half from one source address, half spread over 63 per address; each holds
    //    the first bytes of a MESSAGE it never finishes.
    const half = Math.floor(CONNECTIONS / 2);
    const sources = Array.from({ length: CONNECTIONS }, (_, i) => (i < half ? '127.0.0.2' : `127.0.0.${10 + Math.floor((i - half) / 63)}`));
    for (let i = 0; i < sources.length; i += 200) {
      const batch = await Promise.all(sources.slice(i, i + 200).map((from) => rawFrom(from, port)));
      for (const r of batch) if (!r.closed) r.socket.write(`MESSAGE sip:bob@localhost SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.9;branch=z9hG4bK-x\r\n${'X-Pad: '.padEnd(1000, 'p')}`);
      raws.push(...batch);
    }
    await new Promise((r) => setTimeout(r, 200));
    const tcp = server.transports[0] as unknown as { connections: { size: number } };
    const connectionsAfterFlood = tcp.connections.size;
    const refusedOrEvicted = raws.filter((r) => r.closed).length;
    const connectPhaseMs = Date.now() - started;

    // 2. MESSAGEs with unique Call-IDs, unauthenticated, from one source, pipelined in windows.
    const flooder = await rawFrom('127.0.0.3', port);
    raws.push(flooder);
    // The answers, framed as they come (a growing string searched on every poll would be quadratic).
    const framer = new StreamFramer();
    const statuses = new Map<number, number>();
    let answered = 0;
    flooder.socket.on('data', (chunk: Buffer) => {
      for (const item of framer.push(chunk)) {
        if (item.type !== 'message') continue;
        answered++;
        statuses.set(item.message.status, (statuses.get(item.message.status) ?? 0) + 1);
      }
    });
    const messagesStarted = Date.now();
    const WINDOW = 500;
    for (let i = 0; i < MESSAGES; i += WINDOW) {
      let batch = '';
      for (let j = i; j < Math.min(MESSAGES, i + WINDOW); j++) batch += floodMessage(j, flooder.socket.localPort!);
      flooder.socket.write(batch);
      const target = Math.min(MESSAGES, i + WINDOW);
      await until(() => flooder.closed || answered >= target, `answers to ${target} MESSAGEs`, 20_000);
    }
    expect(answered, 'every flood MESSAGE answered').to.equal(MESSAGES);
    const messagesMs = Date.now() - messagesStarted;

    // 3. bob is still registered, and alice and bob still talk both ways.
    const bindings = await server.registrar.lookup('sip:bob@localhost');
    expect(bindings.length, 'bob bindings after the flood').to.be.greaterThan(0);
    expect(lostBindings, 'bindings dropped during the flood').to.deep.equal([]);
    expect((await within(alice.send('bob@localhost', 'after'), 'alice → bob')).status).to.equal(202);
    await until(() => bobGot.includes('after'), 'bob gets "after"');
    expect((await within(bob.send('alice@localhost', 'reply'), 'bob → alice')).status).to.equal(202);
    await until(() => aliceGot.includes('reply'), 'alice gets "reply"', 15_000);

    // 4. The flood goes away; memory comes back near where it started.
    for (const r of raws.splice(0)) r.socket.destroy();
    await new Promise((r) => setTimeout(r, 300));
    const after = await memory();
    const report = {
      connections: CONNECTIONS,
      openAfterFlood: connectionsAfterFlood,
      closedBySever: refusedOrEvicted,
      connectPhaseMs,
      messages: MESSAGES,
      messagesMs,
      statuses: Object.fromEntries(statuses),
      heap: `${MB(before.heap)} → ${MB(after.heap)}`,
      buffers: `${MB(before.buffers)} → ${MB(after.buffers)}`,
      rss: `${MB(before.rss)} → ${MB(after.rss)}`,
    };
    if (process.env.PARLEY_FLOOD_REPORT) console.log(JSON.stringify(report));
    expect(connectionsAfterFlood, JSON.stringify(report)).to.be.at.most(1_024);
    expect(after.heap + after.buffers - (before.heap + before.buffers), `heap+buffers grew: ${JSON.stringify(report)}`).to.be.below(16 * 1_048_576);
  });
});
