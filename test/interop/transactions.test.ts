// Interoperability of the transaction layer (docs/transaction-layer.md) with SIPp and with raw
// UDP peers:
//
//  1. SIPp's MESSAGE UAC over UDP with `-lost 10` (SIPp drops 10% of what it sends and of what it
//     receives) against the stateful `parley responder`: every call still succeeds, through
//     SIPp's retransmissions of the MESSAGE and the responder's transactions answering each
//     retransmission with the same response.
//  2. SIPp's built-in `-sn uac` (INVITE, 100/180/183 optional, 200, ACK, BYE, 200) against the
//     responder over UDP: every call succeeds, and the ACK stops the responder's 2xx
//     retransmissions (RFC 3261 §13.3.1.4) before the first one (T1 = 500 ms).
//  3. Parley as the UAC (a SipStack in this process) against SIPp's built-in `-sn uas`: INVITE
//     through stack.request() (180 via onProvisional, 200 final), the ACK for the 2xx built and
//     sent by the TU (§13.2.2.4) through stack.sendStateless, then BYE through stack.request();
//     SIPp must count every call successful and every ACK received, and exit by itself (-m N).
//  4. Overload: SIPp's MESSAGE UAC with no effective rate limit (-r 10000 -l 2000) against the
//     responder with the default TU queue limit (the CLI has no flag for it), and against one
//     whose stack has tuQueueLimitMs = 1 (test/support/tuned-responder.ts, so the 503 path runs):
//     every call ends on 200 or 503 (message-uac-overload.xml counts each), failures and
//     timeouts stay under 1%, and the responder is still alive and answers an OPTIONS.
//  4b. From a raw UDP socket (no SIPp): a retransmitted MESSAGE gets the same 200 byte for byte
//     (a stateless responder would make a new To tag), and a 200 to an INVITE is retransmitted
//     at T1 and 2·T1 until the ACK, then no more.
//  5. Every RFC 4475 torture message as one UDP datagram from a raw socket to the responder
//     (no SIPp needed): a request whose verdict is a status gets exactly one response, with that
//     status; an accepted request gets the responder's 200; responses ('drop' or not) and
//     unframeable bytes get nothing. Each message is followed by an OPTIONS: once that is
//     answered the responder has processed the message (one FIFO), and 300 ms more catch
//     stragglers and duplicates.
//     Responses go where RFC 3261 §18.2.2 says (docs/transport-layer.md, "respond"): to the
//     received address and the top Via's port and transport, so the fixtures' Vias send them to
//     udp 127.0.0.1:5060 and :5050, tcp :5060 and tls :5061 (bext01), or to the sender (rport,
//     and the transport's own 400 for clerr). The suite listens on each of those it computes
//     with responseTarget(); the responder listens on UDP, TCP and TLS (trusting a test CA via
//     NODE_EXTRA_CA_CERTS). A port that cannot be bound skips its cases locally, fails on CI.
//
// No sipp on PATH: 1-4 are skipped, except on CI (CI=true) where they fail.
// PARLEY_INTEROP_VERBOSE=1 prints each SIPp run's figures.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import {
  createRequest,
  createNonSuccessAck,
  createResponse,
  parseMessage,
  responseTarget,
  SipStack,
  stampReceived,
  StreamFramer,
  type SipMessage,
  type Tuple,
  LocalContact,
} from '../../src/index.js';
import { RFC4475_CASES, type TortureCase } from '../fixtures/torture-cases.js';
import { testCerts } from '../support/certs.js';
import { repoRoot, startResponder, startResponderProcess, type Responder } from '../support/parley-responder.js';
import { sip } from '../support/sip-bytes.js';
import { freePort, killAll, onCi, requireSipp, waitForUdpBound } from '../support/sipp.js';
import { alive, count, runScenario, stat, sumCounts, type ScenarioRun } from '../support/sipp-scenario.js';
import { ping, safeCallId, token, UdpSipPeer, type Received } from '../support/udp-sip.js';

const HOST = '127.0.0.1';
const MESSAGE_UAC = join(repoRoot, 'test', 'interop', 'message-uac.xml');
const OVERLOAD_UAC = join(repoRoot, 'test', 'interop', 'message-uac-overload.xml');
/** PARLEY_INTEROP_VERBOSE=1 prints each SIPp run's main figures. */
const verbose = process.env.PARLEY_INTEROP_VERBOSE === '1';


function summary(label: string, run: ScenarioRun): void {
  if (!verbose) return;
  const pick = ['OutgoingCall', 'IncomingCall', 'SuccessfulCall', 'FailedCall', 'FailedUnexpectedMessage', 'FailedMaxUDPRetrans', 'Retransmissions'];
  const figures = pick.map((k) => `${k}=${run.stats[`${k}(C)`] ?? '?'}`).join(' ');
  const counts = Object.entries(run.counts)
    .filter(([, v]) => v !== 0)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  process.stderr.write(`      [${label}] ${run.run.elapsedMs} ms; ${figures}; counts: ${counts}\n`);
}

let workDir: string | undefined;
let keepWorkDir = false;

function requireWorkDir(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'parley-tx-interop-'));
  return workDir;
}

/** Ends what the suite started and removes its work directory, unless a test failed (then says where it is). */
async function releaseWorkDir(): Promise<void> {
  await killAll();
  if (workDir === undefined) return;
  if (keepWorkDir) process.stderr.write(`SIPp logs and certificates of the failed transaction interop runs are kept in ${workDir}\n`);
  else rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
  keepWorkDir = false;
}


function keepLogsOnFailure(this: Mocha.Context): void {
  if (this.currentTest?.state === 'failed') keepWorkDir = true;
}

// ---------------------------------------------------------------------------------------------
// 1-2. SIPp UACs against the stateful responder
// ---------------------------------------------------------------------------------------------

describe('Transaction interop: SIPp UACs against the stateful parley responder (UDP)', function () {
  this.timeout(150_000);
  let responder: Responder | undefined;

  before(async function () {
    requireSipp(this, 'SIPp transaction interop tests');
    requireWorkDir();
    responder = await startResponder([`udp:${HOST}:0`]);
  });

  afterEach(keepLogsOnFailure);

  after(async function () {
    await responder?.stop();
    responder = undefined;
    await releaseWorkDir();
  });

  it('MESSAGE with -lost 10 both ways: 200 calls at 40/s all succeed through retransmissions', async function () {
    const CALLS = 200;
    const port = responder!.address('udp').port;
    const run = await runScenario({
      workDir: workDir!,
      name: 'message-lost-10',
      responder,
      killAfterMs: 140_000,
      args: [
        '-sf', MESSAGE_UAC, `${HOST}:${port}`,
        '-t', 'u1', '-i', HOST,
        '-m', String(CALLS), '-r', '40', '-rp', '1000',
        '-lost', '10',
        // A lost 200 costs SIPp a retransmission at 500, 1000, 2000… ms (7 for a non-INVITE by
        // default); a call only fails if the MESSAGE and all 7 retransmissions each lose the
        // request or the response (0.19^8 ≈ 2e-6 per call).
        '-default_behaviors', 'abortunexp',
        '-timeout', '120s', '-timeout_error',
      ],
    });
    summary('MESSAGE -lost 10', run);
    const { report } = run;
    expect(run.run.code, `sipp must exit 0 (all calls successful)\n${report}`).to.equal(0);
    expect(stat(run, 'OutgoingCall'), report).to.equal(CALLS);
    expect(stat(run, 'SuccessfulCall'), report).to.equal(CALLS);
    expect(stat(run, 'FailedCall'), report).to.equal(0);
    // The loss was real: SIPp dropped requests and responses, and retransmitted.
    expect(count(run, '0_MESSAGE_Lost') + count(run, '2_200_Lost'), `SIPp lost nothing: -lost had no effect\n${report}`).to.be.greaterThan(0);
    expect(stat(run, 'Retransmissions'), `no retransmissions under 10% loss\n${report}`).to.be.greaterThan(0);
    expect(alive(responder!), report).to.equal(true);
  });

  it('built-in -sn uac (INVITE/200/ACK/BYE/200): 100 calls at 20/s all succeed, and each ACK stops the 2xx retransmissions', async function () {
    const CALLS = 100;
    const port = responder!.address('udp').port;
    const run = await runScenario({
      workDir: workDir!,
      name: 'sn-uac',
      responder,
      killAfterMs: 100_000,
      args: [
        '-sn', 'uac', `${HOST}:${port}`,
        '-t', 'u1', '-i', HOST,
        '-m', String(CALLS), '-r', '20', '-rp', '1000',
        '-timeout', '90s', '-timeout_error',
      ],
    });
    summary('-sn uac', run);
    const { report } = run;
    expect(run.run.code, `sipp must exit 0 (all calls successful)\n${report}`).to.equal(0);
    expect(stat(run, 'OutgoingCall'), report).to.equal(CALLS);
    expect(stat(run, 'SuccessfulCall'), report).to.equal(CALLS);
    expect(stat(run, 'FailedCall'), report).to.equal(0);
    // Steps of SIPp's uac: 0 INVITE, 1 100?, 2 180?, 3 183?, 4 200, 5 ACK, 6 pause, 7 BYE, 8 200.
    expect(count(run, '4_200_Recv'), report).to.equal(CALLS);
    expect(count(run, '5_ACK_Sent'), report).to.equal(CALLS);
    expect(count(run, '8_200_Recv'), report).to.equal(CALLS);
    // SIPp ACKs within a millisecond; the responder's first 2xx retransmission is due at T1 =
    // 500 ms (§13.3.1.4), so a 200 seen again means the ACK did not stop it.
    expect(count(run, '4_200_Retrans'), `2xx retransmitted after the ACK\n${report}`).to.equal(0);
    expect(stat(run, 'OutOfCallMsgs') + stat(run, 'DeadCallMsgs'), `stray messages after the calls ended\n${report}`).to.equal(0);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Parley (SipStack) as the UAC against SIPp's built-in uas
// ---------------------------------------------------------------------------------------------

describe('Transaction interop: a SipStack UAC against SIPp -sn uas (UDP)', function () {
  this.timeout(90_000);

  before(function () {
    requireSipp(this, 'SIPp transaction interop tests');
    requireWorkDir();
  });

  afterEach(keepLogsOnFailure);
  after(releaseWorkDir);

  it('10 calls: INVITE → 180 (onProvisional) → 200, ACK by the TU (sendStateless), BYE → 200; SIPp counts 10 good calls and exits', async function () {
    const CALLS = 10;
    const port = await freePort(HOST);
    const target = { protocol: 'udp', address: HOST, port } as const;
    // SIPp's uas: 0 INVITE, 1 180, 2 200 (retrans 500), 3 ACK (optional), 4 BYE, 5 200, 6 timewait 4 s.
    const uasRun = runScenario({
      workDir: workDir!,
      name: 'sn-uas',
      killAfterMs: 80_000,
      args: ['-sn', 'uas', '-i', HOST, '-p', String(port), '-t', 'u1', '-m', String(CALLS), '-timeout', '70s', '-timeout_error'],
    });
    let uasDone: ScenarioRun | undefined;
    void uasRun.then((r) => (uasDone = r));
    const stack = new SipStack({ transports: [`udp:${HOST}:0`] });
    await stack.start();
    const log: string[] = [];
    try {
      await waitForUdpBound(HOST, port);
      if (uasDone) throw new Error(`sipp uas exited early\n${uasDone.report}`);
      for (let i = 0; i < CALLS; i++) {
        const invite = createRequest({
          method: 'INVITE',
          uri: `sip:service@${HOST}:${port}`,
          from: `"Parley" <sip:parley@${HOST}>`,
          to: `<sip:service@${HOST}:${port}>`,
          contact: new LocalContact('parley'),
          cseq: 1,
          contentType: 'application/sdp',
          body: ['v=0', `o=parley ${i} 1 IN IP4 ${HOST}`, 's=-', `c=IN IP4 ${HOST}`, 't=0 0', 'm=audio 6000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n'),
        });
        const call = stack.request(invite, { target });
        const provisional: number[] = [];
        let retransmitted2xx = 0;
        call.onProvisional((r) => provisional.push(r.status));
        const ackFor = (ok: SipMessage): SipMessage =>
          // §13.2.2.4: the UAC core builds the ACK for a 2xx: Request-URI = the remote target
          // (the 2xx's Contact), Call-ID, From and To (with the tag) of the dialog, the INVITE's
          // CSeq number with method ACK, and a new branch (createRequest makes one).
          createRequest({
            method: 'ACK',
            uri: ok.contact[0]?.uri ?? invite.requestUri,
            from: invite.from,
            to: ok.to,
            callId: invite.callId,
            cseq: invite.cseq.seq,
          });
        call.on2xx((again) => {
          // RFC 6026: a retransmitted 2xx means our ACK was lost or late; ACK it again.
          retransmitted2xx++;
          void stack.sendStateless(ackFor(again), target);
        });
        const final = await call.final;
        const what = `call ${i}: INVITE ${invite.callId} → ${provisional.join(',') || 'no provisional'}, ${final.status} ${final.reason}`;
        log.push(what);
        expect(final.status, `${what}\n${log.join('\n')}`).to.equal(200);
        expect(provisional, `${what}: SIPp's uas sends 180 Ringing before the 200`).to.include(180);
        const ok = final;
        expect(ok.to.tag, `${what}: the 200 has a To tag`).to.be.a('string');
        await stack.sendStateless(ackFor(ok), target);

        const bye = createRequest({
          method: 'BYE',
          uri: ok.contact[0]?.uri ?? invite.requestUri,
          from: invite.from,
          to: ok.to,
          callId: invite.callId,
          cseq: invite.cseq.seq + 1,
        });
        const byeFinal = await stack.request(bye, { target }).final;
        log.push(`call ${i}: BYE → ${byeFinal.status} ${byeFinal.reason}; 2xx retransmissions seen: ${retransmitted2xx}`);
        expect(byeFinal.status, log.join('\n')).to.equal(200);
      }
      const run = await uasRun;
      summary('-sn uas', run);
      const report = `${run.report}\nparley:\n${log.join('\n')}`;
      expect(run.run.signal, `sipp must exit by itself (-m ${CALLS})\n${report}`).to.equal(null);
      expect(run.run.code, `sipp must exit 0\n${report}`).to.equal(0);
      expect(stat(run, 'IncomingCall'), report).to.equal(CALLS);
      expect(stat(run, 'SuccessfulCall'), report).to.equal(CALLS);
      expect(stat(run, 'FailedCall'), report).to.equal(0);
      expect(count(run, '3_ACK_Recv'), `SIPp did not see every ACK\n${report}`).to.equal(CALLS);
      expect(count(run, '4_BYE_Recv'), report).to.equal(CALLS);
      expect(stat(run, 'OutOfCallMsgs') + stat(run, 'DeadCallMsgs'), `messages SIPp could not place in a call\n${report}`).to.equal(0);
    } finally {
      await stack.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Overload
// ---------------------------------------------------------------------------------------------

describe('Transaction interop: overload (SIPp MESSAGE burst, no rate limit)', function () {
  this.timeout(180_000);
  const CALLS = 20_000;

  before(function () {
    requireSipp(this, 'SIPp transaction interop tests');
    requireWorkDir();
  });

  afterEach(keepLogsOnFailure);
  afterEach(async function () {
    await killAll();
  });
  after(releaseWorkDir);

  const variants: { name: string; stackOptions: { tuQueueLimitMs: number } | undefined }[] = [
    { name: 'default TU queue limit (2000 ms; the CLI exposes none)', stackOptions: undefined },
    { name: 'tuQueueLimitMs = 1 (runResponder option, via tuned-responder.ts)', stackOptions: { tuQueueLimitMs: 1 } },
  ];

  for (const variant of variants) {
    it(`${variant.name}: ${CALLS} MESSAGEs at -r 10000 -l 2000 end in 200 or 503, <1% fail, responder survives`, async function () {
      const responder = await startResponderProcess({ listen: [`udp:${HOST}:0`], stackOptions: variant.stackOptions });
      try {
        const port = responder.address('udp').port;
        const run = await runScenario({
          workDir: workDir!,
          name: `overload-${variant.stackOptions ? 'tuned' : 'default'}`,
          responder,
          killAfterMs: 170_000,
          args: [
            '-sf', OVERLOAD_UAC, `${HOST}:${port}`,
            '-t', 'u1', '-i', HOST,
            '-m', String(CALLS), '-r', '10000', '-rp', '1000', '-l', '2000',
            '-default_behaviors', 'abortunexp',
            '-timeout', '150s', '-timeout_error',
          ],
        });
        summary(`overload ${variant.stackOptions ? 'tuned' : 'default'}`, run);
        const { report } = run;
        const ok = count(run, '3_200_Recv');
        const unavailable = count(run, '2_503_Recv');
        const failed = stat(run, 'FailedCall');
        const timeouts = stat(run, 'FailedMaxUDPRetrans') + stat(run, 'FailedTimeoutOnRecv') + stat(run, 'FailedTimeoutOnSend');
        const unexpected = stat(run, 'FailedUnexpectedMessage') + sumCounts(run.counts, /_Unexp$/);
        const small = Math.ceil(CALLS * 0.01);
        const figures = `200: ${ok}, 503: ${unavailable}, failed: ${failed}, timeouts: ${timeouts}, unexpected: ${unexpected}, retransmissions: ${stat(run, 'Retransmissions')}`;
        expect(run.run.signal, `sipp must exit by itself\n${report}`).to.equal(null);
        expect(stat(run, 'OutgoingCall'), report).to.equal(CALLS);
        // Every successful call ended on a 200 or a 503 (nothing else completes the scenario).
        expect(ok + unavailable, `${figures}\n${report}`).to.equal(stat(run, 'SuccessfulCall'));
        expect(failed, `${figures}\n${report}`).to.be.at.most(small);
        expect(timeouts, `${figures}\n${report}`).to.be.at.most(small);
        expect(unexpected, `${figures}\n${report}`).to.be.at.most(small);
        if (variant.stackOptions !== undefined) {
          // With a 1 ms limit a burst like this always finds requests queued longer: the 503 path
          // (by the server transaction, Retry-After) must have run, or this variant tested nothing.
          expect(unavailable, `no 503 with tuQueueLimitMs = 1: ${figures}\n${report}`).to.be.greaterThan(0);
        }
        // No crash: still running, and still answering.
        expect(alive(responder), `the responder died\n${report}`).to.equal(true);
        const peer = await UdpSipPeer.bind(HOST, 0);
        try {
          const answer = await ping(peer, HOST, port, 10_000);
          expect(answer?.status, `no answer to an OPTIONS after the burst\n${report}`).to.equal(200);
        } finally {
          await peer.close();
        }
      } finally {
        await responder.stop();
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// 4b. What makes the responder stateful, seen from a raw UDP peer
// ---------------------------------------------------------------------------------------------

describe('Transaction interop: retransmissions between a raw UDP peer and parley responder', function () {
  this.timeout(30_000);
  let responder: Responder | undefined;
  let peer: UdpSipPeer | undefined;
  let port = 0;

  before(async function () {
    responder = await startResponder([`udp:${HOST}:0`]);
    port = responder.address('udp').port;
    peer = await UdpSipPeer.bind(HOST, 0, 'udp:peer');
  });

  after(async function () {
    await peer?.close();
    await responder?.stop();
    responder = undefined;
  });

  const request = (method: string, branch: string, callId: string, extra: string[] = []): Buffer =>
    sip([
      `${method} sip:service@${HOST}:${port} SIP/2.0`,
      `Via: SIP/2.0/UDP ${HOST}:${peer!.port};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: <sip:peer@${HOST}:${peer!.port}>;tag=${token(4)}`,
      `To: <sip:service@${HOST}:${port}>`,
      `Call-ID: ${callId}`,
      `CSeq: 7 ${method}`,
      ...extra,
      'Content-Length: 0',
    ]);

  const finalsFor = (callId: string) => (r: Received) =>
    r.message !== undefined && !r.message.isRequest && r.message.status >= 200 && safeCallId(r.message) === callId;

  it('a retransmitted MESSAGE (same branch) is absorbed and gets the same response, byte for byte (§17.2.2)', async function () {
    const callId = `retrans-${token()}`;
    const bytes = request('MESSAGE', `z9hG4bK-${token()}`, callId);
    const from = peer!.received.length;
    await peer!.send(bytes, port);
    const first = await peer!.waitFor(finalsFor(callId), 3000, from);
    expect(first?.message?.status, 'no answer to the MESSAGE').to.equal(200);
    const next = peer!.received.length;
    await peer!.send(bytes, port);
    const second = await peer!.waitFor(finalsFor(callId), 3000, next);
    expect(second, 'no answer to the retransmitted MESSAGE').to.not.equal(undefined);
    // A stateless responder would build a new 200 (a new To tag); the transaction resends its own.
    expect(second!.bytes.equals(first!.bytes), `${first!.bytes.toString('latin1')}\n---\n${second!.bytes.toString('latin1')}`).to.equal(true);
  });

  it('a 200 to an INVITE is retransmitted at T1, then 2·T1, until the ACK arrives, and not after (§13.3.1.4)', async function () {
    const callId = `invite-${token()}`;
    const branch = `z9hG4bK-${token()}`;
    const from = peer!.received.length;
    const sent = performance.now();
    await peer!.send(request('INVITE', branch, callId, ['Contact: <sip:peer@127.0.0.1>']), port);
    // Copies at ~0, ~500 and ~1500 ms (T1 = 500 doubling to T2 = 4000).
    const copies: Received[] = [];
    while (copies.length < 3) {
      const got = await peer!.waitFor(finalsFor(callId), 3000, copies.length === 0 ? from : peer!.received.indexOf(copies.at(-1)!) + 1);
      if (got === undefined) break;
      copies.push(got);
    }
    const at = copies.map((c) => Math.round(c.at - sent));
    expect(copies.length, `200 copies arrived at ${at.join(', ')} ms`).to.equal(3);
    for (const c of copies) expect(c.bytes.equals(copies[0]!.bytes), 'every copy is the same 200').to.equal(true);
    expect(copies[1]!.at - copies[0]!.at, `first retransmission after T1: ${at.join(', ')} ms`).to.be.within(400, 900);
    expect(copies[2]!.at - copies[1]!.at, `second after 2·T1: ${at.join(', ')} ms`).to.be.within(850, 1500);
    // The retransmitted INVITE is absorbed in Accepted (RFC 6026 §7.1): no new transaction, no new To tag.
    await peer!.send(request('INVITE', branch, callId, ['Contact: <sip:peer@127.0.0.1>']), port);
    const ok = copies[0]!.message!;
    const acked = performance.now();
    await peer!.send(ackFor2xx(ok, peer!.port, `sip:service@${HOST}:${port}`), port);
    // The next retransmission would be due 2000 ms after the third copy: wait past it.
    await new Promise((r) => setTimeout(r, Math.max(0, copies[2]!.at + 2400 - performance.now())));
    const later = peer!.received.slice(from).filter(finalsFor(callId)).filter((r) => r.at > acked + 50);
    for (const r of peer!.received.slice(from).filter(finalsFor(callId))) {
      expect(r.message!.to.tag, 'a 200 with another To tag: the retransmitted INVITE made a new transaction').to.equal(ok.to.tag);
    }
    expect(later.map((r) => Math.round(r.at - sent)), '2xx retransmitted after the ACK (ms since the INVITE)').to.deep.equal([]);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. RFC 4475 torture messages over UDP
// ---------------------------------------------------------------------------------------------

/** Where a response to `bytes` sent from `source` must go, or why none may come. */
interface Plan {
  /** 'answer': exactly one response with `status`; 'ok': the responder's 200 (1xx allowed before); 'none'. */
  expect: 'answer' | 'ok' | 'none';
  status: number | undefined;
  /** The §18.2.2 destination (docs/transport-layer.md, "respond"), when the top Via can be read. */
  target: Tuple | undefined;
  why: string;
}

const fixtureBytes = (c: TortureCase): Buffer => readFileSync(join(repoRoot, 'test', 'fixtures', `rfc${c.rfc}`, `${c.file}.sip`));

function planFor(c: TortureCase, source: Tuple): Plan {
  if (c.kind === 'response') return { expect: 'none', status: undefined, target: undefined, why: `a response (verdict ${JSON.stringify(c.reject)}) is never answered` };
  if (c.parseError) return { expect: 'none', status: undefined, target: undefined, why: 'not SIP: the UDP transport drops it' };
  const bytes = fixtureBytes(c);
  let message: SipMessage;
  try {
    message = parseMessage(bytes);
  } catch (error) {
    throw new Error(`${c.file}: the fixture table says it parses, but: ${(error as Error).message}`, { cause: error });
  }
  // A datagram shorter than its Content-Length is answered 400 by the UDP transport, to the source.
  if (message.bodyTruncated) return { expect: 'answer', status: c.reject === null ? undefined : Number(c.reject), target: source, why: '400 from the UDP transport (§18.3)' };
  stampReceived(message, source);
  let target: Tuple | undefined;
  try {
    target = responseTarget(message.via[0], source);
  } catch {
    // An unreadable top Via (badinv01): §18.2.2 names no destination; the transport selector
    // answers to the datagram's source (undefined here prints as "top Via unreadable").
    target = undefined;
  }
  if (c.reject === null) return { expect: 'ok', status: 200, target, why: 'accepted: the responder answers 200' };
  if (c.reject === 'drop') return { expect: 'none', status: undefined, target, why: 'the validator drops it' };
  return { expect: 'answer', status: c.reject, target, why: `the validator answers ${c.reject}` };
}

const formatTarget = (t: Tuple | undefined): string => (t === undefined ? '(top Via unreadable)' : `${t.protocol}:${t.address}:${t.port}`);

/** A TCP or TLS listener that frames and records every SIP message sent to it. */
class StreamCollector {
  readonly received: Received[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: TcpServer | TlsServer,
    readonly label: string,
  ) {}

  static async listen(protocol: 'tcp' | 'tls', host: string, port: number, tls?: { key: Buffer; cert: Buffer }): Promise<StreamCollector> {
    const label = `${protocol}:${host}:${port}`;
    const sockets: { collector?: StreamCollector } = {};
    const onSocket = (socket: Socket): void => sockets.collector?.accept(socket);
    const server = protocol === 'tls' ? createTlsServer({ key: tls!.key, cert: tls!.cert }, onSocket) : createTcpServer(onSocket);
    const collector = new StreamCollector(server, label);
    sockets.collector = collector;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return collector;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const framer = new StreamFramer();
    socket.on('data', (chunk: Buffer) => {
      for (const item of framer.push(chunk)) {
        if (item.type !== 'message') continue;
        this.received.push({
          at: performance.now(),
          bytes: item.message.toBuffer(),
          message: item.message,
          from: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
          endpoint: this.label,
        });
      }
    });
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Endpoint {
  label: string;
  received: Received[];
}

describe('Transaction interop: RFC 4475 torture messages as UDP datagrams to parley responder', function () {
  this.timeout(30_000);
  let responder: Responder | undefined;
  let sender: UdpSipPeer | undefined;
  let responderPort = 0;
  const endpoints: Endpoint[] = [];
  const closers: Array<() => Promise<void>> = [];
  /** Endpoints a response must reach that could not be opened (label → error). */
  const unavailable = new Map<string, string>();
  const plans = new Map<string, Plan>();

  before(async function () {
    this.timeout(60_000);
    const dir = requireWorkDir();
    // The responder answers over the transport the top Via names (§18.2.2), so it listens on UDP,
    // TCP and TLS; its TLS client trusts the test CA through NODE_EXTRA_CA_CERTS, and our TLS
    // collector presents a certificate for IP:127.0.0.1 signed by it.
    const certs = testCerts();
    const caFile = join(dir, 'ca.pem');
    const certFile = join(dir, 'server.pem');
    const keyFile = join(dir, 'server.key');
    writeFileSync(caFile, certs.ca);
    writeFileSync(certFile, certs.serverCert);
    writeFileSync(keyFile, certs.serverKey);
    responder = await startResponderProcess({
      listen: [`udp:${HOST}:0`, `tcp:${HOST}:0`, `tls:${HOST}:0`],
      extra: ['--cert', certFile, '--key', keyFile],
      env: { NODE_EXTRA_CA_CERTS: caFile },
    });
    responderPort = responder.address('udp').port;
    sender = await UdpSipPeer.bind(HOST, 0, 'udp:source');
    endpoints.push(sender);
    closers.push(() => sender!.close());
    const source: Tuple = { protocol: 'udp', address: HOST, port: sender.port };
    const wanted = new Map<string, Tuple>();
    for (const c of RFC4475_CASES) {
      const plan = planFor(c, source);
      plans.set(c.file, plan);
      const t = plan.target;
      if (t === undefined || (t.protocol === 'udp' && t.port === sender.port)) continue;
      wanted.set(formatTarget(t), t);
    }
    for (const [label, t] of wanted) {
      try {
        if (t.address !== HOST) throw new Error(`not a local address`);
        if (t.protocol === 'udp') {
          const peer = await UdpSipPeer.bind(t.address, t.port, label);
          endpoints.push(peer);
          closers.push(() => peer.close());
        } else if (t.protocol === 'tcp' || t.protocol === 'tls') {
          const collector = await StreamCollector.listen(t.protocol, t.address, t.port, { key: certs.serverKey, cert: certs.serverCert });
          endpoints.push(collector);
          closers.push(() => collector.close());
        } else throw new Error(`no collector for ${t.protocol}`);
      } catch (error) {
        unavailable.set(label, (error as Error).message);
      }
    }
  });

  afterEach(keepLogsOnFailure);

  after(async function () {
    for (const close of closers.splice(0)) await close();
    await responder?.stop();
    responder = undefined;
    await releaseWorkDir();
  });

  const snapshot = (): number[] => endpoints.map((e) => e.received.length);
  const since = (mark: number[]): Received[] => endpoints.flatMap((e, i) => e.received.slice(mark[i] ?? 0));
  const isPing = (r: Received): boolean => r.message !== undefined && (safeCallId(r.message) ?? '').startsWith('ping-');

  for (const c of RFC4475_CASES) {
    const expectText =
      c.kind === 'response' || c.parseError || c.reject === 'drop'
        ? 'no response'
        : c.reject === null
          ? 'the responder\'s 200'
          : `exactly one ${c.reject}`;
    it(`${c.file} (§${c.section} ${c.title}): ${expectText}`, async function () {
      const plan = plans.get(c.file);
      if (plan === undefined) throw new Error('no plan (before hook failed)');
      const where = formatTarget(plan.target);
      if (plan.expect !== 'none' && unavailable.has(where)) {
        const why = `cannot listen on ${where}, where the response must go: ${unavailable.get(where)}`;
        if (onCi()) throw new Error(why);
        process.stderr.write(`      skipped ${c.file}: ${why}\n`);
        this.skip();
      }
      const bytes = fixtureBytes(c);
      const mark = snapshot();
      await sender!.send(bytes, responderPort, HOST);
      // The responder handles datagrams in order: once the follow-up OPTIONS is answered, the
      // fixture has been processed and any answer to it sent.
      const followUp = await ping(sender!, HOST, responderPort, 5000);
      expect(followUp?.status, `the follow-up OPTIONS got no 200 (responder ${alive(responder!) ? 'running' : 'dead'})\n${responder!.output()}`).to.equal(200);
      const isAnswer = (r: Received): boolean => !isPing(r) && r.message !== undefined && !r.message.isRequest && r.message.status >= 200;
      if (plan.expect !== 'none' && !since(mark).some(isAnswer)) {
        // Stream responses need a connection (and a TLS handshake) first: wait for one.
        const deadline = performance.now() + 3000;
        while (performance.now() < deadline && !since(mark).some(isAnswer)) await new Promise((r) => setTimeout(r, 20));
      }
      // ACK every final response to an INVITE as a UAC would, before Timer G (T1) could resend
      // it: the responder retransmits a 2xx until its ACK (§13.3.1.4), and a 4xx–6xx it answers
      // through the INVITE server transaction on Timer G until the ACK (§17.2.1).
      const acked = new Set<Received>();
      const ackFinals = async (): Promise<void> => {
        for (const r of since(mark)) {
          const m = r.message;
          if (acked.has(r) || isPing(r) || !m || m.isRequest || m.status < 200 || headerSafe(() => m.cseq.method) !== 'INVITE') continue;
          acked.add(r);
          const ack = m.status < 300 ? ackFor2xx(m, sender!.port, `sip:${c.file}@${HOST}`) : headerSafe(() => createNonSuccessAck(parseMessage(bytes), m).toBuffer());
          if (ack) await sender!.send(ack, responderPort, HOST);
        }
      };
      await ackFinals();
      await new Promise((r) => setTimeout(r, 300));
      await ackFinals();
      const got = since(mark).filter((r) => !isPing(r));
      const show = (r: Received): string =>
        r.message === undefined
          ? `${r.endpoint}: ${r.bytes.length} non-SIP bytes`
          : `${r.endpoint}: ${r.message.isRequest ? r.message.method : `${r.message.status} ${r.message.reason}`} (Call-ID ${safeCallId(r.message) ?? '?'})`;
      let context = `${plan.why}; expected at ${where}; received ${got.length}: [${got.map(show).join('; ')}]`;
      if (plan.expect !== 'none' && got.length === 0) context += `\ndiagnosis: ${diagnose(c, plan.status ?? 200, { protocol: 'udp', address: HOST, port: sender!.port })}`;
      if (plan.expect === 'none') {
        expect(got.map(show), context).to.deep.equal([]);
      } else if (plan.expect === 'answer') {
        expect(got.map(show), context).to.have.length(1);
        expect(got[0]!.message?.status, context).to.equal(plan.status);
      } else {
        const finals = got.filter((r) => r.message !== undefined && !r.message.isRequest && r.message.status >= 200);
        const others = got.filter((r) => r.message === undefined || r.message.isRequest || r.message.status < 100);
        expect(finals.length, `no final response: ${context}`).to.be.greaterThan(0);
        expect(finals.map((r) => r.message!.status), context).to.satisfy((s: number[]) => s.every((x) => x === 200));
        expect(others.map(show), context).to.deep.equal([]);
      }
    });
  }
});

/** Why an answer may not have come: can the response be built, and does it have somewhere to go? */
function diagnose(c: TortureCase, status: number, source: Tuple): string {
  const request = parseMessage(fixtureBytes(c));
  stampReceived(request, source);
  let response: SipMessage;
  try {
    response = createResponse(request, status);
  } catch (error) {
    return `createResponse(request, ${status}) throws ${(error as { code?: string }).code ?? ''} ${(error as Error).message}: the stack cannot build the answer, and drops the request`;
  }
  try {
    return `a ${status} can be built here, and §18.2.2 sends it to ${formatTarget(responseTarget(response.via[0], source))}`;
  } catch (error) {
    return `the ${status} is built, but its top Via cannot be read (${(error as Error).message}), so responseTarget() finds no destination; the datagram's source (udp:${source.address}:${source.port}) is the only address left to answer`;
  }
}

function headerSafe<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/** An ACK for a 2xx to an INVITE sent by a raw peer (Request-URI: the 2xx's Contact), with the response's From, To, Call-ID and CSeq number copied verbatim. */
function ackFor2xx(ok: SipMessage, localPort: number, fallbackUri: string): Buffer {
  const uri = headerSafe(() => ok.contact[0]?.uri.toString()) ?? fallbackUri;
  return sip([
    `ACK ${uri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${HOST}:${localPort};branch=z9hG4bK-ack-${token()};rport`,
    'Max-Forwards: 70',
    `From: ${ok.header('from') ?? ''}`,
    `To: ${ok.header('to') ?? ''}`,
    `Call-ID: ${ok.header('call-id') ?? ''}`,
    `CSeq: ${headerSafe(() => ok.cseq.seq) ?? 1} ACK`,
    'Content-Length: 0',
  ]);
}
