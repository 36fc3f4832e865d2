// The stack's inbound queue (transport → transaction layer) is bounded: a flood of new requests
// beyond `maxInboundQueue` in one turn is shed before any work is spent on it; responses and ACKs
// are always taken (ARCHITECTURE.md: overload degrades service, never grows memory without bound).
import { expect } from 'chai';
import { ManualClock, SipStack, parseMessage, type Tuple } from '../../src/index.js';

const source: Tuple = { protocol: 'udp', address: '127.0.0.1', port: 40000 };
const local: Tuple = { protocol: 'udp', address: '127.0.0.1', port: 5060 };

function message(text: string): ReturnType<typeof parseMessage> {
  return parseMessage(text.replace(/\n/g, '\r\n'));
}

function request(i: number, method = 'MESSAGE'): ReturnType<typeof parseMessage> {
  return message(
    `${method} sip:bob@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-flood-${i};rport\n` +
      `From: <sip:a@example.test>;tag=f${i}\nTo: <sip:bob@example.test>${method === 'ACK' ? ';tag=t' : ''}\n` +
      `Call-ID: flood-${i}@peer\nCSeq: 1 ${method}\nMax-Forwards: 70\nContent-Length: 0\n\n`,
  );
}

describe('the stack sheds a request flood at its inbound queue', () => {
  it('with maxInboundQueue 5, 20 requests in one turn: 5 reach the TU; ACKs still pass', async () => {
    const stack = new SipStack({ transports: [], clock: new ManualClock(), maxInboundQueue: 5 });
    const seen: string[] = [];
    stack.setDefaultTu({ onRequest: (r) => void seen.push(r.message.callId) });
    for (let i = 0; i < 20; i++) stack.sink.push({ type: 'message', message: request(i), source, local, connectionId: undefined });
    stack.sink.push({ type: 'message', message: request(99, 'ACK'), source, local, connectionId: undefined });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).to.deep.equal(['flood-0@peer', 'flood-1@peer', 'flood-2@peer', 'flood-3@peer', 'flood-4@peer', 'flood-99@peer']);
    await stack.stop();
  });
});
