// Bad input at the DUM: a header the DUM reads only when it handles the request (Event,
// Subscription-State…) can be malformed in a request the stack admitted. The DUM answers 400 —
// never crashes, never leaves the transaction unanswered — and goes on serving.
import { expect } from 'chai';
import { DialogUsageManager, SipStack } from '../../src/index.js';
import { sip } from '../support/sip-bytes.js';
import { UdpSipPeer } from '../support/udp-sip.js';

function request(method: string, port: number, callId: string, extra: string[], toTag = ''): Buffer {
  return sip([
    `${method} sip:bob@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK${callId}`,
    'Max-Forwards: 70',
    'From: <sip:alice@127.0.0.1>;tag=a1',
    `To: <sip:bob@127.0.0.1>${toTag}`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    ...extra,
    'Content-Length: {CL}',
  ]);
}

describe('DUM robustness: malformed headers the DUM reads itself', function () {
  this.timeout(10_000);
  let stack: SipStack;
  let peer: UdpSipPeer;
  let port: number;
  const seen: string[] = [];

  beforeEach(async () => {
    stack = new SipStack({ transports: ['udp:127.0.0.1:0'], dns: false });
    await stack.start();
    port = stack.transports[0]!.local.port;
    const dum = new DialogUsageManager(stack, { aor: 'sip:bob@127.0.0.1' });
    dum.onSubscribe('presence', (subscription) => {
      seen.push(subscription.event.type);
      subscription.accept();
    });
    peer = await UdpSipPeer.bind('127.0.0.1');
  });

  afterEach(async () => {
    await stack.stop();
    await peer.close();
  });

  let lastWarning: string | undefined;

  async function answerTo(bytes: Buffer, callId: string): Promise<number | undefined> {
    const from = peer.received.length;
    await peer.send(bytes, port);
    const got = await peer.waitFor((r) => r.message?.isRequest === false && r.message.callId === callId, 3000, from);
    lastWarning = got?.message?.header('warning');
    return got?.message?.status;
  }

  it('SUBSCRIBE with an unreadable Event gets 400, and the next request is served', async () => {
    expect(await answerTo(request('SUBSCRIBE', port, 'bad-event', ['Event: ;;', 'Contact: <sip:alice@127.0.0.1:9>']), 'bad-event')).to.equal(400);
    // The DUM's own answer (the stack's validation does not read Event): it says what was wrong.
    expect(lastWarning).to.match(/^399 parley ".*event/i);
    expect(await answerTo(request('OPTIONS', port, 'after', []), 'after')).to.equal(200);
    expect(seen).to.deep.equal([]);
  });

  it('NOTIFY with an unreadable Subscription-State inside no dialog: 481 (matched before it is read)', async () => {
    expect(await answerTo(request('NOTIFY', port, 'bad-state', ['Event: presence', 'Subscription-State: ;x=', 'Contact: <sip:alice@127.0.0.1:9>'], ';tag=nobody'), 'bad-state')).to.equal(481);
  });

  it('MESSAGE with an unreadable From URI is refused by validation (400) before the DUM', async () => {
    const bytes = sip([
      `MESSAGE sip:bob@127.0.0.1:${port} SIP/2.0`,
      'Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKbadfrom',
      'Max-Forwards: 70',
      'From: <sip:al ice@@>;tag=a1',
      'To: <sip:bob@127.0.0.1>',
      'Call-ID: bad-from',
      'CSeq: 1 MESSAGE',
      'Content-Length: {CL}',
    ]);
    expect(await answerTo(bytes, 'bad-from')).to.equal(400);
  });
});
