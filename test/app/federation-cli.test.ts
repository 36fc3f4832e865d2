// Federation as an operator runs it (docs/federation.md): `parley server` processes linked by
// `--peer`, `--secret` and `--discover`, looked at with `parley network`, as real child
// processes (the TypeScript sources through tsx) on loopback, each with its own temporary data
// directory and fixed ports chosen in advance (so that a server can be restarted on the same
// ones). The central promise: in a line A–B–C, the middle server killed with SIGKILL in the
// middle of a stream and restarted on the same data loses nothing and duplicates nothing — every
// message A answered 202 reaches carol on C once, in order per sender.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import { ParleyClient } from '../../src/index.js';
import { freePort, killAll, killAllBut, parley, removeTemporaries, settles, sleep, start, tail, tempDir, type Proc, type Run } from '../support/parley-process.js';

const SECRET = 'federation-test-secret';

after(() => {
  killAll();
  removeTemporaries();
});

// ---------------------------------------------------------------------------------------------
// Users

async function addUsers(data: string, ...users: string[]): Promise<void> {
  for (const user of users) {
    const run = await parley(['user', 'add', user, '--password', 'pw', '--data', data]);
    expect(run.code, run.transcript).to.equal(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Servers of a network

/** A `parley server` of a network: its name, its fixed port (TCP and UDP), and every process it ran as. */
interface Node {
  name: string;
  port: number;
  data: string;
  /** The arguments after `parley server`. */
  args: string[];
  /** The current process (the last one started). */
  proc: Proc;
  /** Every process this server ran as, first to last (for transcripts across restarts). */
  runs: Proc[];
  /** `sip:127.0.0.1:PORT;transport=tcp`: its advertised URI, client flag value and peer URI. */
  uri: string;
}

const tcpUri = (port: number): string => `sip:127.0.0.1:${port};transport=tcp`;

/** The flags of a server `name` on `port` (tcp listed first: the advertised URI is the TCP one). */
function serverArgs(name: string, data: string, port: number, extra: string[]): string[] {
  return ['--data', data, '--domain', name, '--listen', `tcp:127.0.0.1:${port}`, '--listen', `udp:127.0.0.1:${port}`, ...extra];
}

function declare(name: string, data: string, port: number, args: string[]): Node {
  return { name, port, data, args, proc: undefined as unknown as Proc, runs: [], uri: tcpUri(port) };
}

/** Starts (or restarts, same data and ports) `node`; resolves once it printed `ready` on its fixed port. */
async function launch(node: Node, others: () => Node[] = () => []): Promise<Node> {
  const proc = start(['server', ...node.args]);
  node.proc = proc;
  node.runs.push(proc);
  await proc.waitFor(() => proc.out().includes('ready'), `${node.name} to print "ready"`, 40_000, () => transcripts(others()));
  expect(proc.out().slice(0, 2), proc.transcript()).to.deep.equal([`listening tcp:127.0.0.1:${node.port}`, `listening udp:127.0.0.1:${node.port}`]);
  return node;
}

/** The stderr of every process of `nodes` (tails), for failure messages. */
function transcripts(nodes: Node[]): string {
  return nodes
    .flatMap((node) => node.runs.map((run, i) => `=== ${node.name} (process ${i + 1}) ===\n${tail(run.transcript(), 3000)}`))
    .join('\n');
}

async function stopNodes(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.proc?.stop('SIGTERM', 10_000)));
  // PARLEY_TEST_KEEP=DIR keeps every server's full transcript there (for debugging a failure).
  const keep = process.env.PARLEY_TEST_KEEP;
  if (keep !== undefined) {
    for (const node of nodes) node.runs.forEach((run, i) => writeFileSync(join(keep, `${node.name}.${i + 1}.log`), run.transcript()));
  }
}

// ---------------------------------------------------------------------------------------------
// The admin view

interface NeighbourView {
  name: string;
  uri: string;
  state: string;
  since: string;
  origin: string;
}
interface RouteView {
  domain: string;
  nextHop: string | null;
  path: string[];
}
interface NetworkView {
  server: string;
  domains: string[];
  boot: string;
  uri: string;
  neighbours: NeighbourView[];
  routes: RouteView[];
  relaying: number;
}

/**
 * The view straight off the wire (docs/federation.md, "The admin view"): `OPTIONS` with
 * `Accept: application/parley-network+json` on a TCP connection of our own — fast enough to poll.
 * Undefined when there is no 200 with that type within `ms`.
 */
function rawView(port: number, ms = 3000): Promise<NetworkView | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (view: NetworkView | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(view);
    };
    const timer = setTimeout(() => finish(undefined), ms);
    socket.once('error', () => finish(undefined));
    socket.once('close', () => finish(undefined));
    socket.once('connect', () => {
      const hex = (n: number): string => randomBytes(n).toString('hex');
      const request = [
        `OPTIONS ${tcpUri(port)} SIP/2.0`,
        `Via: SIP/2.0/TCP 127.0.0.1:${socket.localPort!};branch=z9hG4bK${hex(8)};rport`,
        'Max-Forwards: 70',
        `From: <sip:admin@127.0.0.1>;tag=${hex(4)}`,
        `To: <sip:127.0.0.1:${port}>`,
        `Call-ID: ${hex(8)}@127.0.0.1`,
        'CSeq: 1 OPTIONS',
        'Accept: application/parley-network+json',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString('utf8').split('\r\n');
        const header = (...names: string[]): string | undefined => {
          for (const line of head.slice(1)) {
            const colon = line.indexOf(':');
            if (colon > 0 && names.includes(line.slice(0, colon).trim().toLowerCase())) return line.slice(colon + 1).trim();
          }
          return undefined;
        };
        const length = Number(header('content-length', 'l') ?? '0');
        if (buffer.length < end + 4 + length) return;
        const body = buffer.subarray(end + 4, end + 4 + length).toString('utf8');
        buffer = buffer.subarray(end + 4 + length);
        const status = /^SIP\/2\.0 (\d{3})/.exec(head[0] ?? '')?.[1];
        if (status === undefined || status.startsWith('1')) continue;
        const type = header('content-type', 'c') ?? '';
        if (status !== '200' || !type.toLowerCase().startsWith('application/parley-network+json')) return finish(undefined);
        try {
          return finish(JSON.parse(body) as NetworkView);
        } catch {
          return finish(undefined);
        }
      }
    });
  });
}

/** Polls `node`'s view until `condition` holds; fails with the last view and every server's transcript. */
async function waitView(node: Node, condition: (view: NetworkView) => boolean, what: string, nodes: Node[], ms = 20_000): Promise<NetworkView> {
  const deadline = Date.now() + ms;
  let last: NetworkView | undefined;
  for (;;) {
    last = await rawView(node.port);
    if (last !== undefined && condition(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`gave up after ${ms} ms waiting for ${what} in the view of ${node.name}\nlast view: ${JSON.stringify(last)}\n${transcripts(nodes)}`);
    }
    await sleep(100);
  }
}

const neighbour = (view: NetworkView, name: string): NeighbourView | undefined => view.neighbours.find((n) => n.name === name);
const route = (view: NetworkView, domain: string): RouteView | undefined => view.routes.find((r) => r.domain === domain);
const isUp = (view: NetworkView, name: string): boolean => neighbour(view, name)?.state === 'up';
/** `domain` is routed via `nextHop` along exactly `path`. */
const routedVia = (view: NetworkView, domain: string, nextHop: string, path: string[]): boolean => {
  const found = route(view, domain);
  return found !== undefined && found.nextHop === nextHop && JSON.stringify(found.path) === JSON.stringify(path);
};
const byDomain = (routes: RouteView[]): RouteView[] => [...routes].sort((a, b) => a.domain.localeCompare(b.domain));

/** `parley network --server <node> [--json]` (in UTC, so that `since HH:MM:SS` is the JSON's time of day). */
function network(port: number, json = false): Promise<Run> {
  return parley(['network', '--server', tcpUri(port), ...(json ? ['--json'] : [])], { TZ: 'UTC' });
}

/** The stderr lines matching `pattern` (log lines start with a timestamp). */
const logged = (proc: Proc, pattern: RegExp): string[] => proc.err().filter((line) => pattern.test(line));

// ---------------------------------------------------------------------------------------------
// Messages at carol

interface JsonMessage {
  from: string;
  to: string;
  messageId: string;
  time: string;
  contentType: string;
  text: string;
}

/** What a `parley listen --json` printed, parsed (incrementally: it is polled often). */
const parsed = new WeakMap<Proc, JsonMessage[]>();
function jsonMessages(proc: Proc): JsonMessage[] {
  const messages = parsed.get(proc) ?? [];
  parsed.set(proc, messages);
  const lines = proc.out();
  for (let i = messages.length; i < lines.length; i++) {
    try {
      messages.push(JSON.parse(lines[i]!) as JsonMessage);
    } catch {
      throw new Error(`parley listen --json printed a line that is not JSON: ${JSON.stringify(lines[i])}\n${tail(proc.transcript())}`);
    }
  }
  return messages;
}

/** `parley listen --json` for `user` at `node`, once it said `registered as USER`. */
async function listen(node: Node, user: string, home: string, nodes: Node[]): Promise<Proc> {
  const proc = start(['listen', '--json', '--server', node.uri, '--user', user, '--password', 'pw'], { PARLEY_HOME: home });
  await proc.waitFor(() => proc.err().some((line) => line.includes(`registered as ${user}`)), `"registered as ${user}" on stderr`, 40_000, () => transcripts(nodes));
  return proc;
}

// =============================================================================================

describe('a line A–B–C of parley servers (--peer A→B, B→C, --secret, --ping-interval 200)', function () {
  this.timeout(120_000);
  const nodes: Node[] = [];
  let a: Node;
  let b: Node;
  let c: Node;
  let carolHome: string;
  /** ParleyClients of the test process, closed in the after hook. */
  const clients: ParleyClient[] = [];

  before(async function () {
    this.timeout(90_000);
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const common = ['--secret', SECRET, '--ping-interval', '200'];
    a = declare('a.example', tempDir('a'), pa, []);
    b = declare('b.example', tempDir('b'), pb, []);
    c = declare('c.example', tempDir('c'), pc, []);
    a.args = serverArgs(a.name, a.data, pa, [...common, '--peer', `b.example=${b.uri}`]);
    b.args = serverArgs(b.name, b.data, pb, [...common, '--peer', `c.example=${c.uri}`]);
    c.args = serverArgs(c.name, c.data, pc, common);
    nodes.push(a, b, c);
    carolHome = tempDir('carol');
    await Promise.all([addUsers(a.data, 'alice@a.example', 'dave@a.example'), addUsers(c.data, 'carol@c.example')]);
    await Promise.all(nodes.map((node) => launch(node, () => nodes)));
    await waitView(a, (view) => routedVia(view, 'c.example', 'b.example', ['b.example', 'c.example']), 'the route to c.example via b.example', nodes, 30_000);
    await waitView(c, (view) => routedVia(view, 'a.example', 'b.example', ['b.example', 'a.example']), 'the route to a.example via b.example', nodes, 30_000);
  });

  after(async function () {
    this.timeout(60_000);
    await settles(Promise.allSettled(clients.map((client) => client.close({ unregister: false }))), 10_000);
    await stopNodes(nodes);
    killAll();
  });

  afterEach(() => {
    // Everything but the servers.
    const servers = new Set(nodes.map((node) => node.proc?.child));
    killAllBut((child) => servers.has(child));
  });

  it('parley network prints the table of docs/federation.md for A: its neighbour up, routes with hop counts, relaying 0', async () => {
    const json = await network(a.port, true);
    expect(json.code, json.transcript).to.equal(0);
    const view = JSON.parse(json.rawStdout) as NetworkView;
    const since = neighbour(view, 'b.example')?.since ?? '';
    expect(since, json.transcript).to.match(/^\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)\.\d{3}Z$/);
    const time = since.slice(11, 19);

    const run = await network(a.port);
    expect(run.code, run.transcript).to.equal(0);
    expect(run.stderr, run.transcript).to.deep.equal([]);
    const lines = run.stdout.map((line) => line.trimEnd());
    expect(lines, run.transcript).to.have.length(8);
    expect(lines.slice(0, 5), run.transcript).to.deep.equal([
      'server a.example (a.example)',
      'neighbours',
      `  b.example  up          ${b.uri}  since ${time}`,
      'routes',
      '  a.example  local',
    ]);
    // The contract shows "2 hops" only: one hop may be written "1 hop" or "1 hops".
    expect(lines[5], run.transcript).to.match(/^ {2}b\.example {2}via b\.example {2}1 hops? +b\.example$/);
    expect(lines.slice(6), run.transcript).to.deep.equal(['  c.example  via b.example  2 hops  b.example > c.example', 'relaying 0']);
  });

  it('parley network --json prints the JSON view as received: A, B and C each see the line from where they stand', async () => {
    const [ja, jb, jc] = await Promise.all([network(a.port, true), network(b.port, true), network(c.port, true)]);
    for (const run of [ja, jb, jc]) {
      expect(run.code, run.transcript).to.equal(0);
      expect(run.stderr, run.transcript).to.deep.equal([]);
    }
    const [va, vb, vc] = [ja, jb, jc].map((run) => JSON.parse(run.rawStdout) as NetworkView) as [NetworkView, NetworkView, NetworkView];

    // "As received": what the server answers on the wire, unchanged (nothing changes in a quiet line).
    expect(va, 'parley network --json = the OPTIONS answer').to.deep.equal(await rawView(a.port));

    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    for (const [view, node] of [[va, a], [vb, b], [vc, c]] as const) {
      expect(Object.keys(view).sort(), JSON.stringify(view)).to.deep.equal(['boot', 'domains', 'neighbours', 'relaying', 'routes', 'server', 'uri']);
      expect(view.server).to.equal(node.name);
      expect(view.domains).to.deep.equal([node.name]);
      expect(view.uri).to.equal(node.uri);
      expect(view.boot).to.be.a('string').and.not.equal('');
      expect(view.relaying).to.equal(0);
      for (const n of view.neighbours) {
        expect(Object.keys(n).sort(), JSON.stringify(n)).to.deep.equal(['name', 'origin', 'since', 'state', 'uri']);
        expect(n.since, JSON.stringify(n)).to.match(iso);
      }
    }
    expect(new Set([va.boot, vb.boot, vc.boot]).size, 'three servers, three boots').to.equal(3);

    const strip = (view: NetworkView): Omit<NeighbourView, 'since'>[] =>
      [...view.neighbours].sort((x, y) => x.name.localeCompare(y.name)).map(({ name, uri, state, origin }) => ({ name, uri, state, origin }));
    // A linked to B (configured); B to C (configured) and A linked in (inbound); C: B linked in.
    expect(strip(va), JSON.stringify(va)).to.deep.equal([{ name: 'b.example', uri: b.uri, state: 'up', origin: 'config' }]);
    expect(strip(vb), JSON.stringify(vb)).to.deep.equal([
      { name: 'a.example', uri: a.uri, state: 'up', origin: 'inbound' },
      { name: 'c.example', uri: c.uri, state: 'up', origin: 'config' },
    ]);
    expect(strip(vc), JSON.stringify(vc)).to.deep.equal([{ name: 'b.example', uri: b.uri, state: 'up', origin: 'inbound' }]);

    expect(byDomain(va.routes), JSON.stringify(va)).to.deep.equal([
      { domain: 'a.example', nextHop: null, path: ['a.example'] },
      { domain: 'b.example', nextHop: 'b.example', path: ['b.example'] },
      { domain: 'c.example', nextHop: 'b.example', path: ['b.example', 'c.example'] },
    ]);
    expect(byDomain(vb.routes), JSON.stringify(vb)).to.deep.equal([
      { domain: 'a.example', nextHop: 'a.example', path: ['a.example'] },
      { domain: 'b.example', nextHop: null, path: ['b.example'] },
      { domain: 'c.example', nextHop: 'c.example', path: ['c.example'] },
    ]);
    expect(byDomain(vc.routes), JSON.stringify(vc)).to.deep.equal([
      { domain: 'a.example', nextHop: 'b.example', path: ['b.example', 'a.example'] },
      { domain: 'b.example', nextHop: 'b.example', path: ['b.example'] },
      { domain: 'c.example', nextHop: null, path: ['c.example'] },
    ]);

    // The logs name the links and the routes as docs/federation.md writes them.
    expect(logged(a.proc, /\blink b\.example up$/), tail(a.proc.transcript())).to.have.length.at.least(1);
    expect(logged(a.proc, /\broute c\.example via b\.example \(2 hops\)$/), tail(a.proc.transcript())).to.have.length.at.least(1);
    expect(logged(c.proc, /\broute a\.example via b\.example \(2 hops\)$/), tail(c.proc.transcript())).to.have.length.at.least(1);
  });

  it('parley network against a port where nothing listens: exit 1 with the reason on stderr, nothing on stdout; bad usage: exit 2', async () => {
    const dead = await freePort();
    const [text, json, bad] = await Promise.all([network(dead), network(dead, true), parley(['network', '--server', a.uri, '--bogus'])]);
    for (const run of [text, json]) {
      expect(run.code, run.transcript).to.equal(1);
      expect(run.stdout, run.transcript).to.deep.equal([]);
      expect(run.stderr.length, run.transcript).to.be.at.least(1);
      expect(run.stderr.join('\n').trim(), run.transcript).to.not.equal('');
    }
    expect(bad.code, bad.transcript).to.equal(2);
    expect(bad.stdout, bad.transcript).to.deep.equal([]);
  });

  it('a domain never heard of: parley send → "parley send: 404 No route to domain", exit 1', async () => {
    const run = await parley(['send', '--server', a.uri, '--user', 'alice@a.example', '--password', 'pw', '--to', 'zed@nowhere.example', '--text', 'hello?'], {
      PARLEY_HOME: tempDir('alice-send'),
    });
    expect(run.code, run.transcript).to.equal(1);
    expect(run.stdout, run.transcript).to.deep.equal([]);
    expect(run.stderr, run.transcript).to.include('parley send: 404 No route to domain');
  });

  // -------------------------------------------------------------------------------------------
  // kill -9 of B

  interface Stream {
    label: string;
    /** Text → Message-ID of every send answered 2xx. */
    accepted: Map<string, string>;
    issued: string[];
    failures: string[];
    /** Message-IDs of delivery notifications that came back to the sender. */
    delivered: Set<string>;
  }
  const streams: Stream[] = [];
  /** carol's listen of the crash test (what it printed, for the test after it). */
  let carolBefore: Proc | undefined;

  it('B killed with SIGKILL twice mid-stream and restarted on the same data and ports: carol on C prints every 202 once, in order per sender', async function () {
    this.timeout(240_000);
    const carol = await listen(c, 'carol@c.example', carolHome, nodes);
    carolBefore = carol;
    const printed = (): number => carol.out().length;
    /** What happened when, for failure messages. */
    const trace: string[] = [];
    const mark = (what: string): void => void trace.push(`${new Date().toISOString()} ${what} (accepted ${acceptedCount()}, printed at carol ${printed()})`);
    const everything = (): string => `${trace.join('\n')}\n${tail(carol.transcript(), 3000)}\n${transcripts(nodes)}`;

    // Two senders on A, one message at a time each, until told to stop.
    let stop = false;
    const senders = await Promise.all(
      ['alice', 'dave'].map(async (label) => {
        const client = await ParleyClient.connect({ server: a.uri, user: `${label}@a.example`, password: 'pw', stateDir: tempDir(label) });
        clients.push(client);
        const stream: Stream = { label, accepted: new Map(), issued: [], failures: [], delivered: new Set() };
        client.on('delivered', (messageId) => stream.delivered.add(messageId));
        streams.push(stream);
        return { client, stream };
      }),
    );
    const loops = Promise.all(
      senders.map(async ({ client, stream }) => {
        for (let n = 1; !stop && stream.failures.length < 5; n++) {
          const text = `${stream.label} ${n}`;
          stream.issued.push(text);
          try {
            const result = await client.send('carol@c.example', text);
            stream.accepted.set(text, result.messageId);
          } catch (error) {
            stream.failures.push(`${text}: ${error instanceof Error ? error.message : String(error)}`);
          }
          await sleep(40); // ~25 messages a second per sender: hundreds in all, not thousands
        }
      }),
    );
    const acceptedCount = (): number => streams.reduce((sum, s) => sum + s.accepted.size, 0);
    const failures = (): string[] => streams.flatMap((s) => s.failures);
    /**
     * How long carol waited for messages once A had its route through the restarted B again
     * ("Any route change or link up retries at once"): checked at the end, after the promise
     * that matters more (nothing lost, nothing twice).
     */
    const resumes: { what: string; ms: number }[] = [];
    const resumed = async (what: string): Promise<void> => {
      const began = Date.now();
      const count = printed();
      await during(() => printed() >= count + 5, what, 90_000);
      resumes.push({ what, ms: Date.now() - began });
      mark(`${what}: after ${Date.now() - began} ms`);
    };
    /** Waits for `condition` while the senders run (A never fails: any refusal ends the test). */
    const during = async (condition: () => boolean, what: string, ms = 30_000): Promise<void> => {
      const deadline = Date.now() + ms;
      while (!condition()) {
        if (failures().length > 0) expect(failures(), `sends refused by A while ${what}\n${everything()}`).to.deep.equal([]);
        if (Date.now() > deadline) throw new Error(`gave up after ${ms} ms waiting for ${what}\n${everything()}`);
        await sleep(20);
      }
    };

    try {
      // Kill 1: messages flowing A → B → C; B gets SIGKILL at a random instant.
      await during(() => acceptedCount() >= 30 && printed() >= 10, 'the stream to flow through to carol');
      const bootBefore = (await rawView(b.port))?.boot;
      await sleep(Math.floor(Math.random() * 300));
      b.proc.child.kill('SIGKILL');
      await b.proc.exited;
      const atKill = acceptedCount();
      mark('B killed (1)');

      // Liveness: A finds B gone (3 pings of 200 ms) and withdraws the route through it; A keeps
      // answering 202 for c.example (a known domain) while there is no route.
      await waitView(a, (view) => !isUp(view, 'b.example') && route(view, 'c.example') === undefined, 'b.example not up and c.example withdrawn', nodes, 10_000);
      mark('A: b.example not up, c.example withdrawn');
      expect(logged(a.proc, /\blink b\.example down\b/), `A logs "link b.example down (…)"\n${tail(a.proc.transcript())}`).to.have.length.at.least(1);
      await during(() => acceptedCount() >= atKill + 20, 'A to keep accepting while B is down', 15_000);

      // Restart B on the same data and ports; A links to it again and the route comes back.
      mark('restarting B');
      await launch(b, () => nodes);
      mark('B ready');
      const bootAfter = (await rawView(b.port))?.boot;
      expect(bootAfter, 'a restarted server has a new boot').to.be.a('string').and.not.equal(bootBefore);
      await waitView(a, (view) => routedVia(view, 'c.example', 'b.example', ['b.example', 'c.example']), 'the route to c.example via the restarted B', nodes, 30_000);
      mark('A: c.example via b.example again');
      await resumed('the backlog to drain through the restarted B');

      // Kill 2: while A's backlog drains into B, restarted at once — before A's liveness
      // notices: the new boot must renew the link.
      await sleep(Math.floor(Math.random() * 200));
      b.proc.child.kill('SIGKILL');
      await b.proc.exited;
      mark('B killed (2), restarting at once');
      await launch(b, () => nodes);
      mark('B ready');
      await waitView(a, (view) => routedVia(view, 'c.example', 'b.example', ['b.example', 'c.example']), 'the route to c.example via B after the second restart', nodes, 30_000);
      mark('A: c.example via b.example again');
      await resumed('messages to flow through B after the second restart');
      const atSecond = acceptedCount();
      await during(() => acceptedCount() >= atSecond + 20, 'the stream to go on after the second restart');
    } finally {
      stop = true;
      await settles(loops, 30_000);
      mark('senders stopped');
    }
    expect(failures(), `sends refused by A\n${everything()}`).to.deep.equal([]);
    for (const stream of streams) expect(stream.accepted.size, `${stream.label}: every send answered (A never went away)`).to.equal(stream.issued.length);

    // Everything arrives at carol.
    const wanted = new Set(streams.flatMap((stream) => [...stream.accepted.keys()]));
    let seen = 0;
    const allArrived = (): boolean => {
      const messages = jsonMessages(carol);
      for (; seen < messages.length; seen++) wanted.delete(messages[seen]!.text);
      return wanted.size === 0;
    };
    await carol.waitFor(allArrived, `all ${acceptedCount()} accepted messages at carol`, 90_000, () => `${wanted.size} missing, e.g. ${[...wanted].slice(0, 5).join(', ')}\n${trace.join('\n')}\n${transcripts(nodes)}`);
    mark('all at carol');
    await sleep(2000); // duplicates would show up now

    const keep = process.env.PARLEY_TEST_KEEP;
    if (keep !== undefined) writeFileSync(join(keep, 'carol-crash.log'), `${trace.join('\n')}\n${carol.transcript()}`);
    const messages = jsonMessages(carol);
    const ids = new Map(streams.flatMap((stream) => [...stream.accepted]));
    for (const stream of streams) {
      const got = messages.filter((m) => m.text.startsWith(`${stream.label} `)).map((m) => Number(m.text.slice(stream.label.length + 1)));
      const accepted = [...stream.accepted.keys()].map((text) => Number(text.slice(stream.label.length + 1)));
      const duplicates = got.filter((n, i) => got.indexOf(n) !== i);
      expect(duplicates, `"${stream.label}" printed twice\n${trace.join('\n')}`).to.deep.equal([]);
      const outOfOrder = got.flatMap((n, i) => (i > 0 && n <= got[i - 1]! ? [`${n} after ${got.slice(Math.max(0, i - 6), i).join(', ')}`] : []));
      expect(outOfOrder, `"${stream.label}" out of send order (printed at carol: N after the previous ones)\n${trace.join('\n')}`).to.deep.equal([]);
      expect(accepted.filter((n) => !got.includes(n)), `"${stream.label}" answered 202 but never printed`).to.deep.equal([]);
      expect(got.filter((n) => !accepted.includes(n)), `"${stream.label}" printed but never sent`).to.deep.equal([]);
    }
    for (const message of messages) {
      expect(message.to, JSON.stringify(message)).to.equal('carol@c.example');
      expect(message.from, JSON.stringify(message)).to.equal(`${message.text.split(' ')[0]!}@a.example`);
      expect(message.messageId, `the Message-ID of "${message.text}": the one A's 202 was for`).to.equal(ids.get(message.text));
    }

    // At the store level too (carol's client would hide duplicates by Message-ID): C stored each
    // message once; B, across its three processes, never twice.
    for (const stream of streams) {
      const storedAt = (procs: Proc[]): number =>
        procs.flatMap((proc) => proc.err()).filter((line) => line.includes(`from ${stream.label}@a.example for carol@c.example`) && /\bstored #\d+/.test(line)).length;
      const atC = storedAt(c.runs);
      if (atC > 0) expect(atC, `C's "stored" lines for ${stream.label}'s messages`).to.equal(stream.accepted.size);
      expect(storedAt(b.runs), `B's "stored" lines for ${stream.label}'s messages`).to.be.at.most(stream.accepted.size);
    }

    // Nothing is left waiting for a next hop.
    await waitView(a, (view) => view.relaying === 0, 'relaying 0 at A', nodes, 20_000);
    await waitView(b, (view) => view.relaying === 0, 'relaying 0 at B', nodes, 20_000);
    expect(await carol.stop('SIGTERM'), tail(carol.transcript())).to.equal(0);

    // Relaying resumed promptly once the route was back (a few seconds, not a transaction timeout).
    expect(resumes.filter((r) => r.ms > 10_000), `relaying stalled after B came back\n${trace.join('\n')}`).to.deep.equal([]);
  });

  it('the delivery notifications of that stream come back through the network to the senders on A', async function () {
    if (streams.length === 0) this.skip();
    const missing = (): string[] => streams.flatMap((stream) => [...stream.accepted].filter(([, id]) => !stream.delivered.has(id)).map(([text]) => text));
    const deadline = Date.now() + 30_000;
    while (missing().length > 0 && Date.now() < deadline) await sleep(100);
    expect(missing(), `messages carol took whose delivery notification never reached the sender\n${transcripts(nodes)}`).to.deep.equal([]);
  });

  it('C stopped gracefully (SIGTERM → exit 0): its routes are withdrawn by tear-down, not liveness; A still accepts for c.example; C back → delivered', async () => {
    const mark = b.proc.err().length;
    expect(await c.proc.stop('SIGTERM'), tail(c.proc.transcript())).to.equal(0);
    await waitView(b, (view) => route(view, 'c.example') === undefined, 'c.example withdrawn at B', nodes, 10_000);
    await waitView(a, (view) => route(view, 'c.example') === undefined, 'c.example withdrawn at A (propagated)', nodes, 10_000);
    const after = b.proc.err().slice(mark);
    const withdrawn = after.findIndex((line) => /\broute c\.example withdrawn$/.test(line));
    expect(withdrawn, `B logs "route c.example withdrawn"\n${tail(b.proc.transcript())}`).to.be.at.least(0);
    expect(
      after.slice(0, withdrawn).filter((line) => /\blink c\.example down\b.*pings? missed/.test(line)),
      `B withdrew c.example because C said it was leaving, not by missing pings\n${tail(b.proc.transcript())}`,
    ).to.deep.equal([]);

    // c.example is known: A takes a message for it while there is no route.
    const sent = await parley(['send', '--server', a.uri, '--user', 'alice@a.example', '--password', 'pw', '--to', 'carol@c.example', '--text', 'while C was away'], {
      PARLEY_HOME: tempDir('alice-send2'),
    });
    expect(sent.code, sent.transcript).to.equal(0);
    expect(sent.stdout, sent.transcript).to.have.length(1);
    expect(sent.stdout[0], sent.transcript).to.match(/^accepted \S+$/);
    const id = sent.stdout[0]!.slice('accepted '.length);

    await launch(c, () => nodes);
    await waitView(a, (view) => routedVia(view, 'c.example', 'b.example', ['b.example', 'c.example']), 'the route to c.example again', nodes, 30_000);
    const carol = await listen(c, 'carol@c.example', carolHome, nodes);
    await carol.waitFor(() => jsonMessages(carol).some((m) => m.text === 'while C was away'), '"while C was away" at carol', 30_000, () => transcripts(nodes));
    await sleep(1000);
    const got = jsonMessages(carol);
    expect(got.filter((m) => m.text === 'while C was away').map((m) => [m.from, m.messageId]), tail(carol.transcript())).to.deep.equal([['alice@a.example', id]]);
    // Nothing the listen of the crash test printed comes again (C kept carol's cursor across its
    // graceful restart; her client drops what it saw anyway).
    const before = new Set(carolBefore === undefined ? [] : jsonMessages(carolBefore).map((m) => m.messageId));
    const again = got.filter((m) => before.has(m.messageId)).map((m) => m.text);
    expect(again, `printed again after C's restart\n${tail(carol.transcript())}`).to.deep.equal([]);
    expect(await carol.stop('SIGTERM'), carol.transcript()).to.equal(0);
  });
});

// =============================================================================================

describe('parley server with a peer configured with the wrong secret', function () {
  this.timeout(90_000);
  const nodes: Node[] = [];

  after(async function () {
    this.timeout(30_000);
    await stopNodes(nodes);
    killAll();
  });

  it('the link is refused and logged, no route is learned on either side; the same peer with the right secret links up', async () => {
    const [px, py, pz, pw] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const x = declare('x.example', tempDir('x'), px, []);
    x.args = serverArgs(x.name, x.data, px, ['--secret', SECRET, '--ping-interval', '200']);
    // y: the network secret on its command line is not the network's.
    const y = declare('y.example', tempDir('y'), py, []);
    y.args = serverArgs(y.name, y.data, py, ['--secret', 'not-the-secret', '--ping-interval', '200', '--peer', `x.example=${x.uri}`]);
    // z (config file): the right network secret, but its peer x has a wrong secret of its own.
    // w (config file): another network secret, but the right one for its peer x.
    const file = (node: Node, federationSecret: string, peerSecret: string): string => {
      const path = join(tempDir(`${node.name}-config`), 'parley.json');
      writeFileSync(
        path,
        JSON.stringify({
          domains: [node.name],
          listen: [`tcp:127.0.0.1:${node.port}`, `udp:127.0.0.1:${node.port}`],
          data: node.data,
          federationSecret,
          pingIntervalMs: 200,
          peers: [{ domain: 'x.example', uri: x.uri, secret: peerSecret }],
        }),
      );
      return path;
    };
    const z = declare('z.example', tempDir('z'), pz, []);
    z.args = ['--config', file(z, SECRET, 'not-the-secret')];
    const w = declare('w.example', tempDir('w'), pw, []);
    w.args = ['--config', file(w, 'another-network', SECRET)];
    nodes.push(x, y, z, w);
    await Promise.all(nodes.map((node) => launch(node, () => nodes)));

    // The control: w and x link (w's peer secret is x's network secret) — each learns the other.
    await waitView(w, (view) => isUp(view, 'x.example') && routedVia(view, 'x.example', 'x.example', ['x.example']), 'x.example up and routed', nodes);
    await waitView(x, (view) => isUp(view, 'w.example') && routedVia(view, 'w.example', 'w.example', ['w.example']), 'w.example up and routed', nodes);

    // y and z log the refusal.
    for (const node of [y, z]) {
      await node.proc.waitFor(() => logged(node.proc, /\blink x\.example refused\b/).length > 0, `${node.name} to log "link x.example refused"`, 15_000, () => transcripts(nodes));
    }
    // For a while (a refused link is tried again after linkRetryMs): never up, nothing learned.
    for (let sample = 0; sample < 8; sample++) {
      for (const node of [y, z]) {
        const view = await rawView(node.port);
        expect(view, `${node.name}'s view`).to.not.equal(undefined);
        const state = neighbour(view!, 'x.example')?.state;
        expect(['refused', 'connecting', 'down'], `${node.name}'s link to x.example: ${JSON.stringify(view)}`).to.include(state);
        expect(view!.routes, `${node.name}'s routes: ${JSON.stringify(view)}`).to.deep.equal([{ domain: node.name, nextHop: null, path: [node.name] }]);
      }
      const vx = await rawView(x.port);
      expect(vx, "x's view").to.not.equal(undefined);
      for (const name of ['y.example', 'z.example']) {
        expect(isUp(vx!, name), `x's link to ${name}: ${JSON.stringify(vx)}`).to.equal(false);
        expect(route(vx!, name), `x's route to ${name}: ${JSON.stringify(vx)}`).to.equal(undefined);
      }
      await sleep(250);
    }

    // parley network on y says so.
    const run = await network(y.port);
    expect(run.code, run.transcript).to.equal(0);
    const lines = run.stdout.map((line) => line.trimEnd());
    expect(lines[0], run.transcript).to.equal('server y.example (y.example)');
    expect(lines[1], run.transcript).to.equal('neighbours');
    expect(lines[2], run.transcript).to.match(new RegExp(`^ {2}x\\.example {2}(refused|connecting|down) +${x.uri.replace(/[.;]/g, '\\$&')} {2}since \\d\\d:\\d\\d:\\d\\d$`));
    expect(lines.slice(3), run.transcript).to.deep.equal(['routes', '  y.example  local', 'relaying 0']);
  });
});

// =============================================================================================

describe('parley server --discover: servers with the same secret find each other on a multicast group, with no --peer', function () {
  this.timeout(90_000);
  const nodes: Node[] = [];

  after(async function () {
    this.timeout(30_000);
    await stopNodes(nodes);
    killAll();
  });

  it('each shows the other as a neighbour that is up (origin discovered or inbound) and a route to its domain; a server with another secret joins no one', async () => {
    const group = await freePort();
    const discover = (secret: string): string[] => [
      '--secret',
      secret,
      '--ping-interval',
      '200',
      '--discover',
      '--discover-group',
      `224.0.1.75:${group}`,
      '--discover-interface',
      '127.0.0.1',
    ];
    const [pd, pe, pf] = [await freePort(), await freePort(), await freePort()];
    const d = declare('d.example', tempDir('d'), pd, []);
    d.args = serverArgs(d.name, d.data, pd, discover(SECRET));
    const e = declare('e.example', tempDir('e'), pe, []);
    e.args = serverArgs(e.name, e.data, pe, discover(SECRET));
    const f = declare('f.example', tempDir('f'), pf, []);
    f.args = serverArgs(f.name, f.data, pf, discover('another-network'));
    nodes.push(d, e, f);
    // One after the other: each one's HELLO at start is heard by those already in the group.
    for (const node of nodes) await launch(node, () => nodes);

    await waitView(d, (view) => isUp(view, 'e.example') && routedVia(view, 'e.example', 'e.example', ['e.example']), 'e.example up and routed', nodes, 30_000);
    await waitView(e, (view) => isUp(view, 'd.example') && routedVia(view, 'd.example', 'd.example', ['d.example']), 'd.example up and routed', nodes, 30_000);

    // parley network on each, as a user would check.
    const [jd, je] = await Promise.all([network(d.port, true), network(e.port, true)]);
    const views: NetworkView[] = [];
    for (const run of [jd, je]) {
      expect(run.code, run.transcript).to.equal(0);
      views.push(JSON.parse(run.rawStdout) as NetworkView);
    }
    const [vd, ve] = views as [NetworkView, NetworkView];
    expect(neighbour(vd, 'e.example'), JSON.stringify(vd)).to.deep.include({ name: 'e.example', uri: e.uri, state: 'up' });
    expect(neighbour(ve, 'd.example'), JSON.stringify(ve)).to.deep.include({ name: 'd.example', uri: d.uri, state: 'up' });
    const origins = [neighbour(vd, 'e.example')!.origin, neighbour(ve, 'd.example')!.origin];
    for (const origin of origins) expect(['discovered', 'inbound'], JSON.stringify(origins)).to.include(origin);
    expect(origins, 'at least one side discovered the other').to.include('discovered');
    expect(origins, 'nobody configured a peer').to.not.include('config');

    const text = await network(d.port);
    expect(text.code, text.transcript).to.equal(0);
    const lines = text.stdout.map((line) => line.trimEnd());
    expect(lines[0], text.transcript).to.equal('server d.example (d.example)');
    // The contract's table shows a configured neighbour; an "(origin)" after the time of another is tolerated.
    const eLine = `  e.example  up          ${e.uri}  since ${neighbour(vd, 'e.example')!.since.slice(11, 19)}`;
    expect(lines.filter((line) => line === eLine || line === `${eLine} (${origins[0]!})`), text.transcript).to.have.length(1);
    expect(lines, text.transcript).to.include('  d.example  local');
    expect(lines.some((line) => /^ {2}e\.example {2}via e\.example {2}1 hops? +e\.example$/.test(line)), text.transcript).to.equal(true);

    // f (another secret) is heard but never authenticated: not up anywhere, no route to or from it.
    for (let sample = 0; sample < 6; sample++) {
      const [sd, se, sf] = await Promise.all([rawView(d.port), rawView(e.port), rawView(f.port)]);
      for (const [view, node] of [[sd, d], [se, e]] as const) {
        expect(view, `${node.name}'s view`).to.not.equal(undefined);
        expect(isUp(view!, 'f.example'), `${node.name}: ${JSON.stringify(view)}`).to.equal(false);
        expect(route(view!, 'f.example'), `${node.name}: ${JSON.stringify(view)}`).to.equal(undefined);
      }
      expect(sf, "f's view").to.not.equal(undefined);
      expect(sf!.neighbours.filter((n) => n.state === 'up'), `f: ${JSON.stringify(sf)}`).to.deep.equal([]);
      expect(sf!.routes, `f: ${JSON.stringify(sf)}`).to.deep.equal([{ domain: 'f.example', nextHop: null, path: ['f.example'] }]);
      await sleep(250);
    }
  });
});

describe('a neighbour killed and restarted before liveness could notice (--ping-misses 1000)', function () {
  this.timeout(90_000);
  const nodes: Node[] = [];

  after(async function () {
    this.timeout(30_000);
    await stopNodes(nodes);
    killAll();
  });

  it("A sees B's new boot id in the next ping's answer and subscribes again; B, which only knew A from A's SUBSCRIBE, links back", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = declare('b.example', tempDir('b-restart'), pb, []);
    b.args = serverArgs(b.name, b.data, pb, ['--secret', SECRET, '--ping-interval', '200']);
    const a = declare('a.example', tempDir('a-restart'), pa, []);
    a.args = serverArgs(a.name, a.data, pa, ['--secret', SECRET, '--ping-interval', '200', '--ping-misses', '1000', '--peer', `b.example=${b.uri}`]);
    nodes.push(a, b);
    await launch(b, () => nodes);
    await launch(a, () => nodes);
    await waitView(b, (view) => isUp(view, 'a.example') && routedVia(view, 'a.example', 'a.example', ['a.example']), 'B linked back to A', nodes, 20_000);

    b.proc.child.kill('SIGKILL');
    await b.proc.exited;
    await launch(b, () => nodes);
    // A never misses 1000 pings here: only the boot id in a ping's answer can tell it B is new.
    await waitView(b, (view) => isUp(view, 'a.example') && neighbour(view, 'a.example')?.origin === 'inbound', 'the restarted B linked back to A', nodes, 10_000);
    await waitView(a, (view) => isUp(view, 'b.example'), 'A up with the new B', nodes, 10_000);
    expect(logged(a.proc, /link b\.example: it restarted \(boot [0-9a-f-]+\); subscribing again$/), a.proc.transcript()).to.have.length(1);
    expect(logged(a.proc, /pings missed/), a.proc.transcript()).to.deep.equal([]);
  });
});
