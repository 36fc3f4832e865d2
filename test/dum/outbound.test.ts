// RFC 5626 at the UA: a DUM registering with outbound over TCP to a hand-driven registrar (a raw
// TCP server), so the test sees every byte of the flow — the REGISTER's outbound parameters, the
// CRLFCRLF keep-alives paced by Flow-Timer, and a new flow with a new REGISTER when the old one
// dies. Protocol time runs on a ManualClock.
import { expect } from 'chai';
import { DialogUsageManager, ManualClock, parseMessage, SipStack, type SipMessage } from '../../src/index.js';
import { RawTcpServer, type RawConn } from '../support/transport-harness.js';

const INSTANCE = 'urn:uuid:00000000-0000-4000-8000-000000000001';

/** Lets I/O callbacks run (loopback needs a few turns of the event loop). */
async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

async function until(condition: () => boolean, label: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${label}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
}

/** The SIP requests on a raw connection so far (keep-alive CRLFs between them skipped). */
function requestsOn(conn: RawConn): SipMessage[] {
  const out: SipMessage[] = [];
  let text = conn.data.toString('latin1');
  for (;;) {
    text = text.replace(/^(\r\n)+/, '');
    const end = text.indexOf('\r\n\r\n');
    if (end === -1) return out;
    const head = text.slice(0, end + 4);
    const length = Number(/\r\nContent-Length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (text.length < end + 4 + length) return out;
    out.push(parseMessage(text.slice(0, end + 4 + length)));
    text = text.slice(end + 4 + length);
  }
}

function ok(register: SipMessage, flowTimer: number): string {
  const contact = register.header('contact')!;
  return [
    'SIP/2.0 200 OK',
    ...register.headers('via').map((v) => `Via: ${v}`),
    `From: ${register.header('from')}`,
    `To: ${register.header('to')};tag=reg1`,
    `Call-ID: ${register.callId}`,
    `CSeq: ${register.cseq.seq} REGISTER`,
    `Contact: ${contact};expires=600`,
    'Require: outbound',
    `Flow-Timer: ${flowTimer}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

describe('DUM client registration with RFC 5626 outbound over TCP', function () {
  this.timeout(15_000);
  let clock: ManualClock;
  let stack: SipStack;
  let registrar: RawTcpServer;
  let dum: DialogUsageManager;

  beforeEach(async () => {
    clock = new ManualClock();
    stack = new SipStack({ transports: ['tcp:127.0.0.1:0'], clock, dns: false });
    await stack.start();
    registrar = await RawTcpServer.listen();
    dum = new DialogUsageManager(stack, { aor: 'sip:alice@example.com', instanceId: INSTANCE });
  });

  afterEach(async () => {
    await stack.stop();
    await registrar.close();
  });

  async function registered(): Promise<{ conn: RawConn; register: SipMessage; registration: ReturnType<DialogUsageManager['register']> }> {
    const registration = dum.register({ registrar: `sip:127.0.0.1:${registrar.port};transport=tcp`, expires: 600, outbound: { regId: 1 } });
    const conn = await registrar.connection(0);
    await until(() => requestsOn(conn).length === 1, 'the REGISTER');
    const register = requestsOn(conn)[0]!;
    await conn.write(ok(register, 30));
    await registration.ready;
    return { conn, register, registration };
  }

  it('the REGISTER carries +sip.instance, reg-id and Supported: outbound (RFC 5626 §4.2)', async () => {
    const { register, registration } = await registered();
    const contact = register.contact[0]!;
    expect(contact.params['+sip.instance']).to.equal(`"<${INSTANCE}>"`);
    expect(contact.params['reg-id']).to.equal('1');
    expect(register.supported).to.deep.equal(['outbound', 'path']);
    expect(register.expires).to.equal(600);
    expect(registration.state).to.equal('registered');
    expect(registration.expires).to.equal(600);
  });

  it('keep-alives follow the Flow-Timer: a CRLFCRLF between 80 % and 100 % of 30 s, none before (§4.4.1)', async () => {
    const { conn } = await registered();
    const before = conn.data.length;
    clock.advance(23_900);
    await turns();
    expect(conn.data.length, 'no ping before 24 s').to.equal(before);
    clock.advance(6_200);
    await until(() => conn.data.length === before + 4, 'one CRLFCRLF ping');
    expect(conn.data.subarray(before).toString('latin1')).to.equal('\r\n\r\n');
  });

  it('the flow closing brings a REGISTER at once on a new flow, same Call-ID, CSeq + 1 (§4.4.1 "MUST form a new flow")', async () => {
    const { conn, register, registration } = await registered();
    conn.socket.destroy();
    const second = await registrar.connection(1);
    await until(() => requestsOn(second).length === 1, 'the REGISTER on the new flow');
    const again = requestsOn(second)[0]!;
    expect(again.callId).to.equal(register.callId);
    expect(again.cseq.seq).to.equal(register.cseq.seq + 1);
    expect(again.contact[0]!.params['reg-id']).to.equal('1');
    await second.write(ok(again, 30));
    await until(() => registration.state === 'registered', 'registered again');
  });

  it('a ping without a pong fails the flow (10 s) and the UA registers again on a new one', async () => {
    const { conn } = await registered();
    const before = conn.data.length;
    clock.advance(30_100);
    await until(() => conn.data.length === before + 4, 'the ping');
    // No "\r\n" pong: RFC 5626 §4.4.1's timeout ends the flow.
    clock.advance(10_100);
    const second = await registrar.connection(1);
    await until(() => requestsOn(second).length === 1, 'the REGISTER on the new flow');
    expect(requestsOn(second)[0]!.method).to.equal('REGISTER');
    await conn.ended('the dead flow to be closed');
  });

  it('unregister() stops the keep-alives on the flow', async () => {
    const { conn, registration } = await registered();
    const removal = registration.unregister();
    await until(() => requestsOn(conn).length === 2, 'the removing REGISTER');
    const remove = requestsOn(conn)[1]!;
    expect(remove.expires).to.equal(0);
    await conn.write(ok(remove, 30).replace(';expires=600', ';expires=0'));
    await removal;
    const before = conn.data.length;
    clock.advance(60_000);
    await turns();
    expect(conn.data.length, 'no pings after removal').to.equal(before);
  });
});
