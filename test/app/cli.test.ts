// The Parley server and its clients as a user runs them (docs/server.md, "Command line" and
// "Delivery"): `parley user`, `parley server`, `parley send`, `parley listen` and `parley client`
// as real child processes (the TypeScript sources through tsx) on loopback, each with its own
// temporary data directory and PARLEY_HOME. The last suite is the promise the whole network is
// built on: a server killed with SIGKILL in the middle of a stream of messages, restarted on the
// same data directory and ports, still delivers every message it answered 202 to, exactly once
// and in order.
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import { ParleyClient } from '../../src/index.js';
import { freePort, killAll, killAllBut, parley, removeTemporaries, settles, sleep, start, tail, tempDir, type Proc, type Run } from '../support/parley-process.js';

after(() => {
  killAll();
  removeTemporaries();
});

// ---------------------------------------------------------------------------------------------
// Ports

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// The server and the clients

interface Server {
  proc: Proc;
  udp: number;
  tcp: number;
  /** The client flag value for its TCP transport. */
  uri: string;
  lines: string[];
}

async function startServer(data: string, listen: string[], extra: string[] = []): Promise<Server> {
  const proc = start(['server', '--data', data, ...listen.flatMap((address) => ['--listen', address]), '--domain', 'localhost', ...extra]);
  await proc.waitFor(() => proc.out().includes('ready'), 'the server to print "ready"', 40_000);
  const lines = proc.out();
  const port = (proto: string): number => {
    const line = lines.find((l) => l.startsWith(`listening ${proto}:127.0.0.1:`));
    if (line === undefined) throw new Error(`no "listening ${proto}:127.0.0.1:PORT" line\n${proc.transcript()}`);
    return Number(line.slice(`listening ${proto}:127.0.0.1:`.length));
  };
  const tcp = port('tcp');
  const udp = listen.some((l) => l.startsWith('udp:')) ? port('udp') : 0;
  return { proc, udp, tcp, uri: `sip:127.0.0.1:${tcp};transport=tcp`, lines };
}

interface JsonMessage {
  from: string;
  to: string;
  messageId: string;
  time: string;
  contentType: string;
  text: string;
}

/** The `parley listen --json` stdout lines, parsed (a line that is not JSON fails with the transcript). */
function jsonMessages(proc: Proc): JsonMessage[] {
  return proc.out().map((line) => {
    try {
      return JSON.parse(line) as JsonMessage;
    } catch {
      throw new Error(`parley listen --json printed a line that is not JSON: ${JSON.stringify(line)}\n${proc.transcript()}`);
    }
  });
}

function clientFlags(server: Server, user: string, password = 'pw'): string[] {
  return ['--server', server.uri, '--user', user, '--password', password];
}

/** `parley listen --json` for `user`, once it said `registered as USER` on stderr. */
async function listen(server: Server, user: string, home: string, extra: string[] = []): Promise<Proc> {
  const proc = start(['listen', '--json', ...clientFlags(server, user), ...extra], { PARLEY_HOME: home });
  await proc.waitFor(() => proc.err().some((line) => line.includes(`registered as ${user}`)), `"registered as ${user}" on stderr`, 40_000);
  return proc;
}

async function addUsers(data: string, ...users: string[]): Promise<void> {
  for (const user of users) {
    const run = await parley(['user', 'add', user, '--password', 'pw', '--data', data]);
    expect(run.code, run.transcript).to.equal(0);
  }
}

// ---------------------------------------------------------------------------------------------

describe('parley user add|remove|list|passwd', function () {
  this.timeout(120_000);
  let data: string;

  before(() => {
    data = tempDir('users');
  });

  afterEach(killAll);

  it('add prints "added USER", exit 0; adding it again fails with exit 1', async () => {
    const added = await parley(['user', 'add', 'alice@localhost', '--password', 'pw', '--data', data]);
    expect(added.stdout, added.transcript).to.deep.equal(['added alice@localhost']);
    expect(added.code, added.transcript).to.equal(0);
    expect(existsSync(join(data, 'parley.db')), 'DIR/parley.db').to.equal(true);

    const again = await parley(['user', 'add', 'alice@localhost', '--password', 'other', '--data', data]);
    expect(again.code, again.transcript).to.equal(1);
    expect(again.stdout, again.transcript).to.deep.equal([]);
    expect(again.stderr.length, again.transcript).to.be.at.least(1);
  });

  it('list prints one user@domain per line, sorted; sip: may be put in front; domains are case-insensitive', async () => {
    const empty = await parley(['user', 'list', '--data', tempDir('empty')]);
    expect(empty.code, empty.transcript).to.equal(0);
    expect(empty.stdout, empty.transcript).to.deep.equal([]);

    await addUsers(data, 'carol@localhost', 'bob@example.com');
    const sip = await parley(['user', 'add', 'sip:dave@localhost', '--data', data], { PARLEY_PASSWORD: 'pw' });
    expect(sip.code, sip.transcript).to.equal(0);
    expect(sip.stdout, sip.transcript).to.have.length(1);
    expect(sip.stdout[0], sip.transcript).to.match(/^added (sip:)?dave@localhost$/);

    const upper = await parley(['user', 'add', 'carol@LocalHost', '--password', 'pw', '--data', data]);
    expect(upper.code, `carol@LocalHost is carol@localhost, which exists\n${upper.transcript}`).to.equal(1);

    const list = await parley(['user', 'list', '--data', data]);
    expect(list.code, list.transcript).to.equal(0);
    expect(list.stdout, list.transcript).to.deep.equal(['alice@localhost', 'bob@example.com', 'carol@localhost', 'dave@localhost']);
  });

  it('passwd (password from PARLEY_PASSWORD) prints "password changed for USER"; unknown user → exit 1', async () => {
    const changed = await parley(['user', 'passwd', 'alice@localhost', '--data', data], { PARLEY_PASSWORD: 'new' });
    expect(changed.stdout, changed.transcript).to.deep.equal(['password changed for alice@localhost']);
    expect(changed.code, changed.transcript).to.equal(0);

    const unknown = await parley(['user', 'passwd', 'nobody@localhost', '--data', data], { PARLEY_PASSWORD: 'new' });
    expect(unknown.code, unknown.transcript).to.equal(1);
    expect(unknown.stdout, unknown.transcript).to.deep.equal([]);
    expect(unknown.stderr.length, unknown.transcript).to.be.at.least(1);
  });

  it('remove prints "removed USER"; removing an unknown user → exit 1', async () => {
    const removed = await parley(['user', 'remove', 'alice@localhost', '--data', data]);
    expect(removed.stdout, removed.transcript).to.deep.equal(['removed alice@localhost']);
    expect(removed.code, removed.transcript).to.equal(0);

    const again = await parley(['user', 'remove', 'alice@localhost', '--data', data]);
    expect(again.code, again.transcript).to.equal(1);
    expect(again.stdout, again.transcript).to.deep.equal([]);
    expect(again.stderr.length, again.transcript).to.be.at.least(1);

    const list = await parley(['user', 'list', '--data', data]);
    expect(list.stdout, list.transcript).to.not.include('alice@localhost');
  });

  it('a missing argument or an unknown subcommand is bad usage: exit 2, nothing on stdout', async () => {
    const runs = await Promise.all([
      parley(['user', 'add', '--password', 'pw', '--data', data]),
      parley(['user', 'remove', '--data', data]),
      parley(['user', 'passwd', '--data', data], { PARLEY_PASSWORD: 'pw' }),
      parley(['user', 'frobnicate', 'alice@localhost', '--data', data]),
    ]);
    expect(runs.map((r) => r.code), runs.map((r) => r.transcript).join('\n')).to.deep.equal([2, 2, 2, 2]);
    for (const run of runs) {
      expect(run.stdout, run.transcript).to.deep.equal([]);
      expect(run.stderr.length, run.transcript).to.be.at.least(1);
    }
  });
});

describe('parley server', function () {
  this.timeout(90_000);

  afterEach(killAll);

  it('prints its transports (real ports), domains, data directory, the no-users hint, then ready; SIGTERM → exit 0', async () => {
    const data = join(tempDir('server'), 'not-yet'); // created when missing
    const server = await startServer(data, ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0']);
    expect(server.lines, server.proc.transcript()).to.have.length(6);
    expect(server.lines[0], server.proc.transcript()).to.match(/^listening udp:127\.0\.0\.1:\d+$/);
    expect(server.lines[1], server.proc.transcript()).to.match(/^listening tcp:127\.0\.0\.1:\d+$/);
    expect(server.udp, 'the UDP port, not 0').to.be.above(0);
    expect(server.tcp, 'the TCP port, not 0').to.be.above(0);
    expect(server.lines.slice(2), server.proc.transcript()).to.deep.equal([
      'domains: localhost',
      `data: ${data}`,
      `no users yet: add one with "parley user add alice@localhost --data ${data}"`,
      'ready',
    ]);
    expect(existsSync(join(data, 'parley.db')), 'DIR/parley.db').to.equal(true);
    expect(await tcpAccepts(server.tcp), 'a TCP connection to the printed port').to.equal(true);

    const code = await server.proc.stop('SIGTERM');
    expect(code, server.proc.transcript()).to.equal(0);
    expect(await tcpAccepts(server.tcp), 'the TCP port after the exit').to.equal(false);
  });

  it('several --domain flags are listed; with an account there is no hint; SIGINT → exit 0', async () => {
    const data = tempDir('server2');
    await addUsers(data, 'alice@localhost');
    const server = await startServer(data, ['tcp:127.0.0.1:0'], ['--domain', 'example.test']);
    expect(server.lines, server.proc.transcript()).to.have.length(4);
    expect(server.lines[0], server.proc.transcript()).to.match(/^listening tcp:127\.0\.0\.1:\d+$/);
    expect(server.lines.slice(1), server.proc.transcript()).to.deep.equal(['domains: localhost, example.test', `data: ${data}`, 'ready']);
    const code = await server.proc.stop('SIGINT');
    expect(code, server.proc.transcript()).to.equal(0);
  });
});

describe('parley server configuration', function () {
  this.timeout(90_000);

  afterEach(killAll);

  it('--config FILE gives the fields; --domain and --listen on the command line replace the file\'s lists', async () => {
    const dir = tempDir('config');
    const data = join(dir, 'data');
    const file = join(dir, 'parley.json');
    writeFileSync(file, JSON.stringify({ domains: ['example.test', 'example.org'], listen: ['tcp:127.0.0.1:0'], data }));
    await addUsers(data, 'alice@example.test');

    const fromFile = start(['server', '--config', file]);
    await fromFile.waitFor(() => fromFile.out().includes('ready'), 'ready', 40_000);
    expect(fromFile.out(), fromFile.transcript()).to.have.length(4);
    expect(fromFile.out()[0], fromFile.transcript()).to.match(/^listening tcp:127\.0\.0\.1:\d+$/);
    expect(fromFile.out().slice(1), fromFile.transcript()).to.deep.equal(['domains: example.test, example.org', `data: ${data}`, 'ready']);
    expect(await fromFile.stop('SIGTERM'), fromFile.transcript()).to.equal(0);

    const overridden = start(['server', '--config', file, '--domain', 'localhost', '--listen', 'udp:127.0.0.1:0']);
    await overridden.waitFor(() => overridden.out().includes('ready'), 'ready', 40_000);
    expect(overridden.out(), overridden.transcript()).to.have.length(4);
    expect(overridden.out()[0], overridden.transcript()).to.match(/^listening udp:127\.0\.0\.1:\d+$/);
    expect(overridden.out().slice(1), overridden.transcript()).to.deep.equal(['domains: localhost', `data: ${data}`, 'ready']);
    expect(await overridden.stop('SIGTERM'), overridden.transcript()).to.equal(0);
  });

  it('--max-message-bytes N: a larger MESSAGE is refused, "parley send: 413 …", exit 1', async () => {
    const data = tempDir('max-bytes');
    await addUsers(data, 'alice@localhost', 'bob@localhost');
    const server = await startServer(data, ['tcp:127.0.0.1:0'], ['--max-message-bytes', '1000']);
    const home = tempDir('max-bytes-home');
    const [small, large] = await Promise.all([
      parley(['send', ...clientFlags(server, 'alice@localhost'), '--to', 'bob@localhost', '--text', 'short'], { PARLEY_HOME: home }),
      parley(['send', ...clientFlags(server, 'alice@localhost'), '--to', 'bob@localhost', '--text', 'x'.repeat(5000)], { PARLEY_HOME: home }),
    ]);
    expect(small.code, small.transcript).to.equal(0);
    expect(large.code, large.transcript).to.equal(1);
    expect(large.stdout, large.transcript).to.deep.equal([]);
    expect(large.stderr.some((line) => /^parley send: 413\b/.test(line)), large.transcript).to.equal(true);
    expect(await server.proc.stop('SIGTERM'), server.proc.transcript()).to.equal(0);
  });
});

describe('parley send and parley listen', function () {
  this.timeout(120_000);
  let data: string;
  let server: Server;
  let aliceHome: string;
  let bobHome: string;
  const started = Date.now();

  before(async function () {
    this.timeout(120_000);
    data = tempDir('send');
    aliceHome = tempDir('alice');
    bobHome = tempDir('bob');
    await addUsers(data, 'alice@localhost', 'bob@localhost', 'carol@localhost', 'erin@localhost', 'frank@localhost', 'gina@localhost', 'hank@localhost', 'ivan@localhost');
    server = await startServer(data, ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0']);
    expect(server.lines.join('\n'), 'users exist: no hint').to.not.include('no users yet');
  });

  after(async () => {
    await server?.proc.stop('SIGTERM');
  });

  afterEach(() => {
    // Everything but the server.
    killAllBut((child) => child === server?.proc.child);
  });

  function send(to: string, text: string, extra: string[] = [], user = 'alice@localhost', password = 'pw'): Promise<Run> {
    return parley(['send', ...clientFlags(server, user, password), '--to', to, '--text', text, ...extra], { PARLEY_HOME: aliceHome });
  }

  it('three messages to an offline user are accepted, then `listen --json` prints exactly those three, in order', async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const run = await send('bob@localhost', `hi ${n}`);
      expect(run.code, run.transcript).to.equal(0);
      expect(run.stdout, run.transcript).to.have.length(1);
      expect(run.stdout[0], run.transcript).to.match(/^accepted \S+$/);
      expect(run.ms, `parley send took ${run.ms} ms to exit\n${run.transcript}`).to.be.below(10_000);
      ids.push(run.stdout[0]!.slice('accepted '.length));
    }
    expect(new Set(ids).size, 'three distinct message ids').to.equal(3);

    const bob = await listen(server, 'bob@localhost', bobHome);
    await bob.waitFor(() => bob.out().length >= 3, 'three messages', 30_000);
    await sleep(1500); // and no more
    const messages = jsonMessages(bob);
    expect(messages, bob.transcript()).to.have.length(3);
    messages.forEach((message, i) => {
      expect(Object.keys(message).sort(), bob.transcript()).to.deep.equal(['contentType', 'from', 'messageId', 'text', 'time', 'to']);
      expect(message.from).to.equal('alice@localhost');
      expect(message.to).to.equal('bob@localhost');
      expect(message.messageId, 'the id `parley send` printed').to.equal(ids[i]);
      expect(message.contentType).to.equal('text/plain;charset=utf-8');
      expect(message.text).to.equal(`hi ${i + 1}`);
      expect(message.time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const time = Date.parse(message.time);
      expect(time, 'stored during this test').to.be.within(started - 1000, Date.now() + 1000);
    });
    const code = await bob.stop('SIGTERM');
    expect(code, bob.transcript()).to.equal(0);
  });

  it('send --wait-delivery while the recipient listens: "accepted ID" then "delivered ID", exit 0', async () => {
    const bob = await listen(server, 'bob@localhost', bobHome);
    await sleep(500); // anything left over would show up now
    const before = bob.out().length;
    const run = await send('bob@localhost', 'are you there', ['--wait-delivery', '10']);
    expect(run.code, run.transcript).to.equal(0);
    expect(run.stdout, run.transcript).to.have.length(2);
    expect(run.stdout[0], run.transcript).to.match(/^accepted \S+$/);
    const id = run.stdout[0]!.slice('accepted '.length);
    expect(run.stdout[1], run.transcript).to.equal(`delivered ${id}`);
    await bob.waitFor(() => bob.out().length > before, 'the message at bob', 10_000);
    const messages = jsonMessages(bob).slice(before);
    expect(messages.map((m) => [m.text, m.messageId]), bob.transcript()).to.deep.equal([['are you there', id]]);
    expect(await bob.stop('SIGTERM'), bob.transcript()).to.equal(0);
  });

  it('send --wait-delivery while nobody listens: "accepted ID", then exit 1 with "not delivered within S s"', async () => {
    const run = await send('ivan@localhost', 'nobody home', ['--wait-delivery', '2']);
    expect(run.code, run.transcript).to.equal(1);
    expect(run.stdout, run.transcript).to.have.length(1);
    expect(run.stdout[0], run.transcript).to.match(/^accepted \S+$/);
    expect(run.stderr.some((line) => line.includes('not delivered within 2 s')), run.transcript).to.equal(true);
  });

  it('listen without --json prints "[YYYY-MM-DD HH:MM:SS] FROM: TEXT"', async () => {
    const carolHome = tempDir('carol');
    const sent = await send('carol@localhost', 'plain text please');
    expect(sent.code, sent.transcript).to.equal(0);
    const carol = start(['listen', ...clientFlags(server, 'carol@localhost')], { PARLEY_HOME: carolHome, TZ: 'UTC' });
    await carol.waitFor(() => carol.out().length >= 1, 'the message', 40_000);
    expect(carol.out()[0], carol.transcript()).to.match(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] alice@localhost: plain text please$/);
    expect(carol.err().some((line) => line.includes('registered as carol@localhost')), carol.transcript()).to.equal(true);
    expect(await carol.stop('SIGINT'), carol.transcript()).to.equal(0);
  });

  it('to an unknown user or a domain not served: exit 1, a stderr line with 404, nothing on stdout', async () => {
    const [user, domain] = await Promise.all([send('nobody@localhost', 'hello?'), send('bob@elsewhere.test', 'hello?')]);
    for (const run of [user, domain]) {
      expect(run.code, run.transcript).to.equal(1);
      expect(run.stdout, run.transcript).to.deep.equal([]);
      expect(run.stderr.some((line) => line.includes('404')), run.transcript).to.equal(true);
    }
    expect(user.stderr.some((line) => /^parley send: 404 /.test(line)), `"parley send: 404 Not Found"\n${user.transcript}`).to.equal(true);
  });

  it('a wrong password: send and listen exit 1 with a line naming the authentication failure', async () => {
    const [sent, listened] = await Promise.all([
      send('bob@localhost', 'let me in', [], 'alice@localhost', 'wrong'),
      parley(['listen', '--json', ...clientFlags(server, 'bob@localhost', 'wrong')], { PARLEY_HOME: tempDir('wrong') }),
    ]);
    for (const run of [sent, listened]) {
      expect(run.code, run.transcript).to.equal(1);
      expect(run.stdout, run.transcript).to.deep.equal([]);
      expect(run.stderr.some((line) => /auth|401|403|password|credential/i.test(line)), run.transcript).to.equal(true);
    }
  });

  it('bad usage (no --to, no --text, an unknown flag): exit 2', async () => {
    const runs = await Promise.all([
      parley(['send', ...clientFlags(server, 'alice@localhost'), '--text', 'hi'], { PARLEY_HOME: aliceHome }),
      parley(['send', ...clientFlags(server, 'alice@localhost'), '--to', 'bob@localhost'], { PARLEY_HOME: aliceHome }),
      parley(['listen', ...clientFlags(server, 'bob@localhost'), '--bogus'], { PARLEY_HOME: bobHome }),
    ]);
    expect(runs.map((r) => r.code), runs.map((r) => r.transcript).join('\n')).to.deep.equal([2, 2, 2]);
    for (const run of runs) expect(run.stdout, run.transcript).to.deep.equal([]);
  });

  it('over UDP too: send to the udp transport is accepted', async () => {
    const run = await parley(['send', '--server', `sip:127.0.0.1:${server.udp}`, '--user', 'alice@localhost', '--password', 'pw', '--to', 'carol@localhost', '--text', 'by udp'], {
      PARLEY_HOME: aliceHome,
    });
    expect(run.code, run.transcript).to.equal(0);
    expect(run.stdout, run.transcript).to.have.length(1);
    expect(run.stdout[0], run.transcript).to.match(/^accepted \S+$/);
  });

  it('a sender with messages waiting for her exits as soon as the server accepted (a plain send registers no device)', async () => {
    const waiting = await send('bob@localhost', 'waiting for bob');
    expect(waiting.code, waiting.transcript).to.equal(0);
    const run = await parley(['send', ...clientFlags(server, 'bob@localhost'), '--to', 'alice@localhost', '--text', 'from bob'], { PARLEY_HOME: tempDir('bob-sends') });
    expect(run.code, run.transcript).to.equal(0);
    expect(run.stdout, run.transcript).to.have.length(1);
    expect(run.stdout[0], run.transcript).to.match(/^accepted \S+$/);
    expect(run.ms, `parley send took ${run.ms} ms to exit\n${run.transcript}`).to.be.below(10_000);
    // The message waiting for bob is still his devices' to take.
    const bob = await listen(server, 'bob@localhost', bobHome);
    await bob.waitFor(() => jsonMessages(bob).some((m) => m.text === 'waiting for bob'), '"waiting for bob" at bob', 20_000);
    await bob.stop('SIGTERM');
  });

  it('user commands work while the server runs: passwd takes effect; remove drops the stored messages', async () => {
    const changed = await parley(['user', 'passwd', 'carol@localhost', '--data', data], { PARLEY_PASSWORD: 'carol2' });
    expect(changed.code, changed.transcript).to.equal(0);
    const [oldPassword, newPassword] = await Promise.all([
      send('alice@localhost', 'old', [], 'carol@localhost', 'pw'),
      send('alice@localhost', 'new', [], 'carol@localhost', 'carol2'),
    ]);
    expect(oldPassword.code, oldPassword.transcript).to.equal(1);
    expect(newPassword.code, newPassword.transcript).to.equal(0);

    // A message waits for dave; dave is removed (messages and all), then added again.
    await addUsers(data, 'dave@localhost');
    const waiting = await send('dave@localhost', 'you will never see this');
    expect(waiting.code, waiting.transcript).to.equal(0);
    const removed = await parley(['user', 'remove', 'dave@localhost', '--data', data]);
    expect(removed.stdout, removed.transcript).to.deep.equal(['removed dave@localhost']);
    const gone = await send('dave@localhost', 'still there?');
    expect(gone.code, `a removed user is unknown at once\n${gone.transcript}`).to.equal(1);
    expect(gone.stderr.some((line) => line.includes('404')), gone.transcript).to.equal(true);
    await addUsers(data, 'dave@localhost');
    const dave = await listen(server, 'dave@localhost', tempDir('dave'));
    await sleep(2000);
    expect(dave.out(), `the new dave gets nothing of the old one\n${dave.transcript()}`).to.deep.equal([]);
    await dave.stop('SIGTERM');
  });

  it('a delivery notification reaching `listen` is acknowledged, not printed, and holds back nothing after it', async () => {
    // gina's message to hank, taken by hank: the server stores a delivery notification for gina.
    const ping = await parley(['send', ...clientFlags(server, 'gina@localhost'), '--to', 'hank@localhost', '--text', 'ping'], { PARLEY_HOME: tempDir('gina-send') });
    expect(ping.code, ping.transcript).to.equal(0);
    const hank = await listen(server, 'hank@localhost', tempDir('hank'));
    await hank.waitFor(() => jsonMessages(hank).some((m) => m.text === 'ping'), 'hank to get "ping"', 20_000);
    expect(await hank.stop('SIGTERM'), hank.transcript()).to.equal(0);

    // gina listens: the notification comes first, then a message sent after it.
    const gina = await listen(server, 'gina@localhost', tempDir('gina'));
    await sleep(1000);
    const pong = await parley(['send', ...clientFlags(server, 'hank@localhost'), '--to', 'gina@localhost', '--text', 'after the notification', '--wait-delivery', '15'], {
      PARLEY_HOME: tempDir('hank-send'),
    });
    try {
      await gina.waitFor(() => jsonMessages(gina).some((m) => m.text === 'after the notification'), 'gina to get "after the notification"', 20_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${pong.transcript}`, { cause: error });
    }
    expect(pong.code, pong.transcript).to.equal(0);
    expect(jsonMessages(gina).map((m) => [m.from, m.text]), gina.transcript()).to.deep.equal([['hank@localhost', 'after the notification']]);
    expect(await gina.stop('SIGTERM'), gina.transcript()).to.equal(0);
  });

  it('parley client: /msg sends (sent, accepted, delivered marks), plain lines follow the conversation, incoming printed, /quit → exit 0', async () => {
    const frank = await listen(server, 'frank@localhost', tempDir('frank'));
    const erin = start(['client', ...clientFlags(server, 'erin@localhost')], { PARLEY_HOME: tempDir('erin') }, 'pipe');
    const all = (): string => `${erin.raw().stdout}\n${erin.raw().stderr}`;
    // Waiting at frank: a failure shows what erin's client said too.
    const atFrank = async (text: string): Promise<void> => {
      try {
        await frank.waitFor(() => jsonMessages(frank).some((m) => m.text === text), `frank to get "${text}"`, 20_000);
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${erin.transcript()}`, { cause: error });
      }
    };
    // It registers; connection status changes are printed. Give it time to start.
    await erin.waitFor(() => /regist|connect|online/i.test(all()), 'the client to say it is registered', 40_000);
    erin.child.stdin!.write('/msg frank@localhost hello frank\n');
    await atFrank('hello frank');
    await erin.waitFor(() => all().includes('✓ accepted'), '"✓ accepted"', 20_000);
    await erin.waitFor(() => all().includes('✓✓ delivered'), '"✓✓ delivered"', 20_000);
    expect(all(), erin.transcript()).to.include('→ sent');

    erin.child.stdin!.write('second line\n');
    await atFrank('second line');

    const reply = await parley(['send', ...clientFlags(server, 'frank@localhost'), '--to', 'erin@localhost', '--text', 'hi erin'], { PARLEY_HOME: tempDir('frank-send') });
    expect(reply.code, reply.transcript).to.equal(0);
    await erin.waitFor(() => erin.out().some((line) => /\[\d\d:\d\d:\d\d\] frank@localhost: hi erin$/.test(line)), '"[HH:MM:SS] frank@localhost: hi erin"', 20_000);

    erin.child.stdin!.write('/quit\n');
    const timer = setTimeout(() => erin.child.kill('SIGKILL'), 15_000);
    const code = await erin.exited;
    clearTimeout(timer);
    expect(code, erin.transcript()).to.equal(0);

    // frank's listen printed the two messages, in order, and nothing for the notification of his reply.
    await sleep(1000);
    expect(jsonMessages(frank).map((m) => m.text), frank.transcript()).to.deep.equal(['hello frank', 'second line']);
    expect(await frank.stop('SIGTERM'), frank.transcript()).to.equal(0);
  });
});

// ---------------------------------------------------------------------------------------------
// kill -9

describe('parley server: kill -9 in the middle of a stream loses no accepted message and duplicates none', function () {
  this.timeout(300_000);
  let data: string;
  let aliceHome: string;
  let bobHome: string;
  let port: number;
  let server: Server | undefined;
  /** Every listen process of bob in this suite. */
  const listens: Proc[] = [];
  /** alice's clients of the rounds, closing (each waits for the send that was in flight at its kill). */
  const closing: Promise<unknown>[] = [];

  before(async function () {
    this.timeout(120_000);
    data = tempDir('crash');
    aliceHome = tempDir('crash-alice');
    bobHome = tempDir('crash-bob');
    await addUsers(data, 'alice@localhost', 'bob@localhost');
    port = await freePort();
  });

  after(async function () {
    this.timeout(60_000);
    await server?.proc.stop('SIGTERM');
    killAll();
    await settles(Promise.allSettled(closing), 45_000);
  });

  async function up(): Promise<Server> {
    server = await startServer(data, [`udp:127.0.0.1:${port}`, `tcp:127.0.0.1:${port}`]);
    expect(server.udp).to.equal(port);
    expect(server.tcp).to.equal(port);
    expect(server.lines.join('\n'), server.proc.transcript()).to.not.include('no users yet');
    return server;
  }

  async function bobListens(): Promise<Proc> {
    const proc = await listen(server!, 'bob@localhost', bobHome);
    listens.push(proc);
    return proc;
  }

  /** The numbers of the messages `LABEL n` a listen process printed, in print order. */
  function printedBy(proc: Proc, label: string): number[] {
    return jsonMessages(proc)
      .filter((m) => m.text.startsWith(`${label} `))
      .map((m) => Number(m.text.slice(label.length + 1)));
  }

  interface Round {
    /** Text → Message-ID, for every send answered 2xx (kept up to date: a late answer counts). */
    accepted: Map<string, string>;
    /** Texts sent, answered or not. */
    issued: string[];
    /** Failures before the kill (a healthy server refuses nothing from these senders). */
    failures: string[];
    /** Where the kill happened, for failure messages. */
    note: string;
  }

  /** The numbers among `texts` that are `LABEL n`. */
  function numbers(texts: Iterable<string>, label: string): number[] {
    return [...texts].filter((text) => text.startsWith(`${label} `)).map((text) => Number(text.slice(label.length + 1)));
  }

  /** One past the highest number sent under `label` in `rounds`. */
  function nextNumber(rounds: Round[], label: string): number {
    return Math.max(0, ...rounds.flatMap((round) => numbers(round.issued, label))) + 1;
  }

  /**
   * alice sends `LABEL n`, n = first, first+1, … one at a time through a ParleyClient (with
   * `streams` > 1, that many such streams at once, labelled `LABEL.k`, so that commits carry
   * several messages); the server gets SIGKILL `delayMs` after the `afterAccepted`-th 202; then
   * the server is restarted on the same data directory and ports.
   */
  async function streamAndKill(label: string, first: number, afterAccepted: number, delayMs: number, streams = 1): Promise<Round> {
    const round: Round = { accepted: new Map(), issued: [], failures: [], note: `${label}: kill ${delayMs} ms after the ${afterAccepted}th 202` };
    const client = await ParleyClient.connect({ server: server!.uri, user: 'alice@localhost', password: 'pw', stateDir: aliceHome });
    let dead = false;
    let trigger!: () => void;
    const killTime = new Promise<void>((resolve) => (trigger = resolve));
    const stream = async (name: string): Promise<void> => {
      for (let n = first; !dead; n++) {
        const text = `${name} ${n}`;
        round.issued.push(text);
        try {
          const result = await client.send('bob@localhost', text);
          if (result.status >= 200 && result.status < 300) {
            round.accepted.set(text, result.messageId);
            if (round.accepted.size === afterAccepted) setTimeout(trigger, delayMs);
          } else if (!dead) round.failures.push(`${text}: ${result.status} ${result.reason}`);
        } catch (error) {
          if (!dead) round.failures.push(`${text}: ${error instanceof Error ? error.message : String(error)}`);
          if (!dead && round.failures.length >= 5) break;
        }
      }
    };
    const names = streams === 1 ? [label] : Array.from({ length: streams }, (_, k) => `${label}.${k}`);
    const loops = Promise.all(names.map(stream));
    const fallback = setTimeout(trigger, 60_000);
    await Promise.race([killTime, loops]);
    clearTimeout(fallback);
    dead = true;
    const victim = server!;
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exited;
    server = undefined;
    // The sends in flight may take a while to fail (a transaction timeout) and close() waits for
    // them: neither is waited for here. `round.accepted` stays live: should such a send still be
    // answered 2xx, it counts like any other.
    await settles(loops, 500);
    closing.push(client.close({ unregister: false }).then(() => loops));
    expect(round.failures, `sends refused before the kill (${round.note})`).to.deep.equal([]);
    expect(round.accepted.size, `202s before the kill (${round.note})`).to.be.at.least(afterAccepted);
    await up();
    return round;
  }

  /** Of `LABEL n`: every accepted n among `got` exactly once; `got` strictly increasing; nothing never sent. */
  function check(got: number[], rounds: Round[], label: string, transcript: string): void {
    const accepted = numbers(rounds.flatMap((round) => [...round.accepted.keys()]), label);
    const issued = new Set(numbers(rounds.flatMap((round) => round.issued), label));
    const notes = rounds.map((r) => `${r.note}: ${r.accepted.size} accepted of ${r.issued.length} sent`).join('; ');
    const duplicates = got.filter((n, i) => got.indexOf(n) !== i);
    expect(duplicates, `"${label}" delivered twice (${notes})\n${tail(transcript)}`).to.deep.equal([]);
    const outOfOrder = got.filter((n, i) => i > 0 && n <= got[i - 1]!);
    expect(outOfOrder, `"${label}" out of send order (${notes})\n${tail(transcript)}`).to.deep.equal([]);
    const missing = accepted.filter((n) => !got.includes(n));
    expect(missing, `"${label}" answered 202 but never delivered (${notes})\n${tail(transcript)}`).to.deep.equal([]);
    expect(got.filter((n) => !issued.has(n)), `"${label}" delivered but never sent`).to.deep.equal([]);
  }

  /** Every accepted message of `rounds` is among what `procs` printed. */
  function allArrived(procs: Proc[], rounds: Round[]) {
    return (): boolean => {
      const got = new Set(procs.flatMap((proc) => jsonMessages(proc).map((m) => m.text)));
      return rounds.every((round) => [...round.accepted.keys()].every((text) => got.has(text)));
    };
  }

  /** The printed messages carry the Message-IDs the sends were answered with, from alice to bob. */
  function checkMessageIds(proc: Proc, rounds: Round[]): void {
    const ids = new Map<string, string>();
    for (const round of rounds) for (const [text, id] of round.accepted) ids.set(text, id);
    for (const message of jsonMessages(proc)) {
      const id = ids.get(message.text);
      if (id !== undefined) expect(message.messageId, `the Message-ID of "${message.text}"`).to.equal(id);
      expect(message.from).to.equal('alice@localhost');
      expect(message.to).to.equal('bob@localhost');
    }
  }

  const accepted = (rounds: Round[]): number => rounds.reduce((sum, round) => sum + round.accepted.size, 0);

  it('bob offline: two kills at different points, restart on the same data and ports, then bob gets every 202 once, in order', async () => {
    await up();
    // bob's device registers once and goes away: the server knows it, with nothing acknowledged.
    const once = await bobListens();
    expect(await once.stop('SIGTERM'), once.transcript()).to.equal(0);

    // Kill 1: just after a 202 (the next MESSAGE on its way or being committed).
    const a = await streamAndKill('crash', 1, 15, Math.floor(Math.random() * 4));
    // Kill 2: at a wall-clock point well into the stream.
    const b = await streamAndKill('crash', nextNumber([a], 'crash'), 1, 300 + Math.floor(Math.random() * 700));

    const bob = await bobListens();
    await bob.waitFor(allArrived([bob], [a, b]), `all ${accepted([a, b])} accepted messages at bob`, 60_000);
    await sleep(2000); // duplicates would show up now
    check(printedBy(bob, 'crash'), [a, b], 'crash', bob.transcript());
    checkMessageIds(bob, [a, b]);
    expect(await bob.stop('SIGTERM'), bob.transcript()).to.equal(0);

    // Kill 3 right after the restart's first 202s, nobody listening, then a fresh listen:
    // nothing of the above again, and everything new.
    const c = await streamAndKill('crash', nextNumber([a, b], 'crash'), 5, Math.floor(Math.random() * 10));
    const again = await bobListens();
    await again.waitFor(allArrived([again], [c]), `all ${accepted([c])} accepted messages of the third round at bob`, 60_000);
    await sleep(2000);
    const all = listens.flatMap((proc) => printedBy(proc, 'crash'));
    check(all, [a, b, c], 'crash', listens.map((proc) => proc.transcript()).join('\n'));
    checkMessageIds(again, [c]);
    expect(await again.stop('SIGTERM'), again.transcript()).to.equal(0);
  });

  it('four senders at once (commits of several messages): two kills, bob offline, then every 202 once, in order per sender', async () => {
    if (server === undefined) await up();
    const labels = [0, 1, 2, 3].map((k) => `group.${k}`);
    const next = (rounds: Round[]): number => Math.max(...labels.map((label) => nextNumber(rounds, label)));
    const a = await streamAndKill('group', 1, 40, Math.floor(Math.random() * 4), 4);
    const b = await streamAndKill('group', next([a]), 1, 200 + Math.floor(Math.random() * 500), 4);
    const bob = await bobListens();
    await bob.waitFor(allArrived([bob], [a, b]), `all ${accepted([a, b])} accepted messages at bob`, 60_000);
    await sleep(2000);
    for (const label of labels) check(printedBy(bob, label), [a, b], label, bob.transcript());
    checkMessageIds(bob, [a, b]);
    expect(await bob.stop('SIGTERM'), bob.transcript()).to.equal(0);
  });

  it('bob online: two kills while messages are being delivered; his listen reconnects by itself and prints every 202 once, in order', async () => {
    if (server === undefined) await up();
    const bob = await bobListens();
    await sleep(1000); // anything left from before arrives now (and is not of this test's label)
    // Kill 1 at a wall-clock point in the stream. The listen process loses its flow and must
    // register again on the restarted server by itself (outbound flow recovery backs off).
    const first = await streamAndKill('online', 1, 1, 400 + Math.floor(Math.random() * 600));
    await bob.waitFor(allArrived([bob], [first]), `all ${accepted([first])} accepted messages at bob's listen, after it reconnected`, 150_000);
    // Kill 2 right after a 202, bob still online: acknowledgements that had not reached the disk
    // are delivered again, and his client drops them as seen.
    const second = await streamAndKill('online', nextNumber([first], 'online'), 20, Math.floor(Math.random() * 5));
    await bob.waitFor(allArrived([bob], [first, second]), `all ${accepted([second])} accepted messages of the second kill`, 150_000);
    await sleep(2000); // duplicates would show up now
    check(printedBy(bob, 'online'), [first, second], 'online', bob.transcript());
    checkMessageIds(bob, [first, second]);
    expect(await bob.stop('SIGTERM'), bob.transcript()).to.equal(0);

    // A new listen process on the same state directory prints nothing it printed before.
    const later = await bobListens();
    await sleep(2500);
    check([...printedBy(bob, 'online'), ...printedBy(later, 'online')], [first, second], 'online', `${bob.transcript()}\n${later.transcript()}`);
    expect(await later.stop('SIGTERM'), later.transcript()).to.equal(0);
  });
});
