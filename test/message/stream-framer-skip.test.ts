// StreamFramer with skipOversizedBodies (issue 16): a body over maxBodyBytes is a 'refused' item
// with the head, its bytes are read past without being buffered, and framing goes on.
import { expect } from 'chai';
import { MAX_SKIPPED_BODY_BYTES, StreamFramer } from '../../src/message/stream-framer.js';

function request(callId: string, body: string, contentLength = body.length): Buffer {
  return Buffer.from(
    [
      'MESSAGE sip:bob@localhost SIP/2.0',
      'Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-' + callId,
      'Max-Forwards: 70',
      'To: <sip:bob@localhost>',
      'From: <sip:alice@localhost>;tag=1',
      `Call-ID: ${callId}`,
      'CSeq: 1 MESSAGE',
      `Content-Length: ${contentLength}`,
      '',
      body,
    ].join('\r\n'),
    'latin1',
  );
}

describe('StreamFramer skipOversizedBodies', () => {
  it('a body over the limit: one refused item with the head, the body skipped in pieces, the next message framed', () => {
    const framer = new StreamFramer({ maxBodyBytes: 100, skipOversizedBodies: true });
    const big = request('big', 'x'.repeat(5_000));
    const items = [];
    let peak = 0;
    for (let at = 0; at < big.length; at += 700) {
      items.push(...framer.push(big.subarray(at, at + 700)));
      peak = Math.max(peak, framer.bufferedBytes);
      if (at + 700 < big.length) expect(framer.partial, 'partial while the body is skipped').to.equal(true);
    }
    expect(items.map((i) => i.type)).to.deep.equal(['refused']);
    const refused = items[0] as Extract<(typeof items)[number], { type: 'refused' }>;
    expect(refused.error.code).to.equal('SIP_BODY_TOO_LARGE');
    expect(refused.head.toString('latin1')).to.match(/^MESSAGE sip:bob@localhost SIP\/2\.0\r\n[\s\S]*Call-ID: big\r\n[\s\S]*\r\n\r\n$/);
    expect(peak, 'never more than one chunk held').to.be.at.most(700);
    expect(framer.partial).to.equal(false);
    const next = framer.push(request('small', 'hello'));
    expect(next.map((i) => i.type)).to.deep.equal(['message']);
    expect(next[0]!.type === 'message' && next[0]!.message.callId).to.equal('small');
  });

  it('without the option (the default) it is still an error that ends the stream', () => {
    const framer = new StreamFramer({ maxBodyBytes: 100 });
    const items = framer.push(request('big', 'x'.repeat(200)));
    expect(items.map((i) => i.type)).to.deep.equal(['error']);
    expect(framer.push(request('small', 'hello'))).to.deep.equal([]);
  });

  it(`a Content-Length over MAX_SKIPPED_BODY_BYTES (${MAX_SKIPPED_BODY_BYTES}) is an error even with the option`, () => {
    const framer = new StreamFramer({ maxBodyBytes: 100, skipOversizedBodies: true });
    const items = framer.push(request('huge', '', MAX_SKIPPED_BODY_BYTES + 1));
    expect(items.map((i) => i.type)).to.deep.equal(['error']);
  });

  it('a store grown for a large message is given back once it is empty', () => {
    const framer = new StreamFramer();
    expect(framer.push(request('large', 'y'.repeat(300_000))).map((i) => i.type)).to.deep.equal(['message']);
    const store = (framer as unknown as { store: Buffer }).store;
    expect(store.length).to.be.at.most(65_536);
  });
});
