// The requests a UA builds from other messages (src/message/builder.ts), header by header against
// the RFC 3261 rules: the CANCEL (§9.1), the ACK for a non-2xx final response (§17.1.1.3) and a
// request inside a dialog (§12.2.1.1, loose and strict routing). Each is a message built directly,
// not text joined and re-parsed: what is asserted is exactly what goes on the wire.
import { expect } from 'chai';
import { NameAddr, parseMessage, parseNameAddr, parseUri, type SipMessage } from '../../src/index.js';
import {
  createCancel,
  createDialogRequest,
  createNonSuccessAck,
  decidedNextHop,
  RoutedRequest,
  routeFor,
  type DialogState,
} from '../../src/message/builder.js';
import { Dialog } from '../../src/tu/dum/dialog.js';
import { sip } from '../support/sip-bytes.js';

/** An INVITE as the transport layer sent it, then forwarded once (two Vias, so "top only" shows). */
const INVITE = sip(
  [
    'INVITE sip:bob@biloxi.example.com;transport=tcp SIP/2.0',
    'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport',
    'Via: SIP/2.0/UDP older.example.com;branch=z9hG4bKolder',
    'Max-Forwards: 17',
    'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr;foo=bar>',
    'Route: <sip:p3.example.com;lr>',
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
    'To: Bob <sip:bob@biloxi.example.com>',
    'Call-ID: 3848276298220188511@atlanta.example.com',
    'CSeq: 31862 INVITE',
    'Contact: <sip:alice@client.atlanta.example.com;transport=tcp>',
    'Proxy-Authorization: Digest username="alice", realm="atlanta.example.com", nonce="n", uri="sip:bob@biloxi.example.com", response="r"',
    'Content-Type: application/sdp',
    'Content-Length: {CL}',
  ],
  'v=0\r\n',
);

const RESPONSE_486 = sip([
  'SIP/2.0 486 Busy Here',
  'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport=5060;received=192.0.2.101',
  'Via: SIP/2.0/UDP older.example.com;branch=z9hG4bKolder',
  'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
  'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
  'Call-ID: 3848276298220188511@atlanta.example.com',
  'CSeq: 31862 INVITE',
  'Content-Length: 0',
]);

function headerLines(message: SipMessage): string[] {
  return message.toString().split('\r\n\r\n')[0]!.split('\r\n');
}

describe('message/builder: requests built from other messages', () => {
  describe('createCancel (RFC 3261 §9.1)', () => {
    const invite = parseMessage(INVITE);
    const cancel = createCancel(invite);

    it('the exact CANCEL: Request-URI, top Via only, Route values, Max-Forwards 70, From, To, Call-ID, CSeq number with CANCEL, no body', () => {
      expect(cancel.toString()).to.equal(
        [
          'CANCEL sip:bob@biloxi.example.com;transport=tcp SIP/2.0',
          'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport',
          'Route: <sip:p1.example.com;lr>',
          'Route: <sip:p2.example.com;lr;foo=bar>',
          'Route: <sip:p3.example.com;lr>',
          'Max-Forwards: 70',
          'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
          'To: Bob <sip:bob@biloxi.example.com>',
          'Call-ID: 3848276298220188511@atlanta.example.com',
          'CSeq: 31862 CANCEL',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
      );
    });

    it('"MUST be identical to those in the request being cancelled, including tags": each value equals the INVITE\'s', () => {
      expect(cancel.method).to.equal('CANCEL');
      expect(cancel.requestUriText).to.equal(invite.requestUriText);
      for (const name of ['from', 'to', 'call-id']) expect(cancel.header(name), name).to.equal(invite.header(name));
      expect(cancel.to.tag, 'no To tag where the INVITE had none').to.equal(undefined);
      expect(cancel.from.tag).to.equal('9fxced76sl');
      expect(cancel.cseq).to.deep.equal({ seq: 31862, method: 'CANCEL' });
    });

    it('"only a single Via header field value matching the top Via value" (branch, sent-by, transport, params)', () => {
      expect(cancel.headers('via')).to.deep.equal([invite.headers('via')[0]]);
      const [via] = cancel.via;
      expect(via!.transport).to.equal('TCP');
      expect(via!.host).to.equal('client.atlanta.example.com');
      expect(via!.port).to.equal(5060);
      expect(via!.branch).to.equal(invite.via[0]!.branch);
    });

    it('"If the request being cancelled contains a Route header field, the CANCEL request MUST include that Route header field\'s values"', () => {
      expect(cancel.headers('route')).to.deep.equal(invite.headers('route'));
      expect(cancel.headers('route')).to.have.length(3);
    });

    it('nothing else of the INVITE: no Contact, credentials (§22.1: a CANCEL cannot be challenged) or body', () => {
      for (const name of ['contact', 'proxy-authorization', 'content-type']) expect(cancel.hasHeader(name), name).to.equal(false);
      expect(cancel.body.length).to.equal(0);
      expect(cancel.header('content-length')).to.equal('0');
    });

    it('without Route in the INVITE, no Route in the CANCEL; it parses back to the same message', () => {
      const plain = parseMessage(sip(['INVITE sip:bob@b.example SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKx', 'From: <sip:a@a.example>;tag=1', 'To: <sip:bob@b.example>;tag=early', 'Call-ID: c1', 'CSeq: 7 INVITE', 'Content-Length: 0']));
      const c = createCancel(plain);
      expect(c.hasHeader('route')).to.equal(false);
      expect(c.header('to'), 'a To tag is copied too').to.equal('<sip:bob@b.example>;tag=early');
      expect(parseMessage(c.toBuffer()).toString()).to.equal(c.toString());
    });
  });

  describe('createNonSuccessAck (RFC 3261 §17.1.1.3)', () => {
    const invite = parseMessage(INVITE);
    const response = parseMessage(RESPONSE_486);
    const ack = createNonSuccessAck(invite, response);

    it('the exact ACK: Request-URI of the INVITE, its top Via only, its Route, From and Call-ID; To of the response; CSeq number with ACK', () => {
      expect(ack.toString()).to.equal(
        [
          'ACK sip:bob@biloxi.example.com;transport=tcp SIP/2.0',
          'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport',
          'Route: <sip:p1.example.com;lr>',
          'Route: <sip:p2.example.com;lr;foo=bar>',
          'Route: <sip:p3.example.com;lr>',
          'Max-Forwards: 70',
          'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
          'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
          'Call-ID: 3848276298220188511@atlanta.example.com',
          'CSeq: 31862 ACK',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
      );
    });

    it('"The To header field in the ACK MUST equal the To header field in the response" — its tag included', () => {
      expect(ack.header('to')).to.equal(response.header('to'));
      expect(ack.to.tag).to.equal('8321234356');
    });

    it('"a single Via header field… equal to the top Via header field of the original request" — not the response\'s (received, rport=)', () => {
      expect(ack.headers('via')).to.deep.equal(['SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport']);
    });

    it('Call-ID, From, Request-URI and CSeq number of the request; Route fields of the INVITE; nothing else', () => {
      expect(ack.requestUriText).to.equal(invite.requestUriText);
      expect(ack.header('from')).to.equal(invite.header('from'));
      expect(ack.header('call-id')).to.equal(invite.header('call-id'));
      expect(ack.cseq).to.deep.equal({ seq: 31862, method: 'ACK' });
      expect(ack.headers('route')).to.deep.equal(invite.headers('route'));
      for (const name of ['contact', 'proxy-authorization', 'content-type']) expect(ack.hasHeader(name), name).to.equal(false);
    });
  });

  describe('createDialogRequest (RFC 3261 §12.2.1.1)', () => {
    const dialog = (routeSet: string[], remoteTarget = 'sip:bob@192.0.2.4:5070;transport=tcp'): DialogState => ({
      callId: 'a84b4c76e66710@pc33.atlanta.example.com',
      localUri: parseNameAddr('"Alice" <sip:alice@atlanta.example.com>', 'from'),
      localTag: '1928301774',
      remoteUri: parseNameAddr('Bob <sip:bob@biloxi.example.com>', 'to'),
      remoteTag: 'a6c85cf',
      remoteTarget: parseUri(remoteTarget, 'contact'),
      routeSet: routeSet.map((r) => parseNameAddr(r, 'route')),
    });

    it('To/From from the dialog URIs with the remote and local tags, its Call-ID, the given CSeq with the method, Max-Forwards 70', () => {
      const request = createDialogRequest(dialog([]), { method: 'BYE', cseq: 315 });
      // A token display name needs no quotes (§25.1 display-name = *(token LWS) / quoted-string).
      expect(request.header('from')).to.equal('Alice <sip:alice@atlanta.example.com>;tag=1928301774');
      expect(request.header('to')).to.equal('Bob <sip:bob@biloxi.example.com>;tag=a6c85cf');
      expect(request.header('call-id')).to.equal('a84b4c76e66710@pc33.atlanta.example.com');
      expect(request.header('cseq')).to.equal('315 BYE');
      expect(request.header('max-forwards')).to.equal('70');
    });

    it('a top Via left for the transport layer to fill in, with a fresh RFC 3261 branch (§8.1.1.7)', () => {
      const a = createDialogRequest(dialog([]), { method: 'INFO', cseq: 1 });
      const b = createDialogRequest(dialog([]), { method: 'INFO', cseq: 2 });
      expect(a.headers('via')).to.have.length(1);
      expect(a.header('via')).to.match(/^SIP\/2\.0\/UDP 0\.0\.0\.0;branch=z9hG4bK[-.A-Za-z0-9]{16}$/);
      expect(a.via[0]!.branch).to.not.equal(b.via[0]!.branch);
    });

    it('empty route set: "place the remote target URI into the Request-URI… MUST NOT add a Route header field"', () => {
      const request = createDialogRequest(dialog([]), { method: 'BYE', cseq: 2 });
      expect(request.requestUriText).to.equal('sip:bob@192.0.2.4:5070;transport=tcp');
      expect(request.hasHeader('route')).to.equal(false);
      expect(request.nextHop, '§8.1.2 needs nothing more').to.equal(undefined);
    });

    it('loose router first (lr): remote target in the Request-URI, the route set in Route "in order, including all parameters"', () => {
      const request = createDialogRequest(dialog(['<sip:p1.example.com;lr;x=1>', '<sip:p2.example.com;lr>']), { method: 'BYE', cseq: 2 });
      expect(request.requestUriText).to.equal('sip:bob@192.0.2.4:5070;transport=tcp');
      expect(request.headers('route')).to.deep.equal(['<sip:p1.example.com;lr;x=1>', '<sip:p2.example.com;lr>']);
      expect(request.nextHop, 'the first Route is the next hop (§8.1.2), as the headers say').to.equal(undefined);
    });

    it('strict router first (no lr): it goes in the Request-URI stripped of method and headers, the rest in Route, the remote target last', () => {
      const request = createDialogRequest(dialog(['<sip:p1.example.com;method=INVITE;maddr=192.0.2.9?X-Y=z>', '<sip:p2.example.com;lr>']), {
        method: 'BYE',
        cseq: 2,
      });
      expect(request.requestUriText).to.equal('sip:p1.example.com;maddr=192.0.2.9');
      expect(request.headers('route')).to.deep.equal(['<sip:p2.example.com;lr>', '<sip:bob@192.0.2.4:5070;transport=tcp>']);
    });

    it('a strict-routed request carries its next hop, the Request-URI (§8.1.2), as typed data', () => {
      const request = createDialogRequest(dialog(['<sip:192.0.2.9:5080>']), { method: 'INFO', cseq: 9 });
      expect(request).to.be.instanceOf(RoutedRequest);
      expect(request.nextHop?.toString()).to.equal('sip:192.0.2.9:5080');
      expect(decidedNextHop(request)?.toString()).to.equal('sip:192.0.2.9:5080');
      expect(request.headers('route')).to.deep.equal(['<sip:bob@192.0.2.4:5070;transport=tcp>']);
      // Parsed messages and plain builds say nothing: §8.1.2 reads their headers.
      expect(decidedNextHop(parseMessage(request.toBuffer()))).to.equal(undefined);
    });

    it('the dialog state is not changed by building (the route set and remote target are copied)', () => {
      const state = dialog(['<sip:p1.example.com;method=INVITE>']);
      createDialogRequest(state, { method: 'BYE', cseq: 2 });
      expect(state.routeSet.map(String)).to.deep.equal(['<sip:p1.example.com;method=INVITE>']);
      expect(state.remoteTarget.toString()).to.equal('sip:bob@192.0.2.4:5070;transport=tcp');
      const { routes } = routeFor(state);
      routes[0]!.uri.host = 'changed.example.com';
      expect(state.remoteTarget.host).to.equal('192.0.2.4');
    });

    it('Contact, more headers and a body, with Content-Type and Content-Length in bytes', () => {
      const request = createDialogRequest(dialog([]), {
        method: 'INVITE',
        cseq: 3,
        contact: '<sip:alice@0.0.0.0>',
        headers: { Allow: 'INVITE, ACK, BYE', Supported: ['outbound', 'timer'] },
        body: 'v=0\r\nс=ü\r\n',
        contentType: 'application/sdp',
      });
      expect(headerLines(request)).to.deep.equal([
        'INVITE sip:bob@192.0.2.4:5070;transport=tcp SIP/2.0',
        `Via: ${request.header('via')!}`,
        'Max-Forwards: 70',
        'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
        'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
        'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
        'CSeq: 3 INVITE',
        'Contact: <sip:alice@0.0.0.0>',
        'Allow: INVITE, ACK, BYE',
        'Supported: outbound',
        'Supported: timer',
        'Content-Length: 12', // 3 + 2 + 2 (с) + 1 + 2 (ü) + 2 bytes
        'Content-Type: application/sdp',
      ]);
      expect(request.body.toString('utf8')).to.equal('v=0\r\nс=ü\r\n');
    });
  });

  describe('Dialog (src/tu/dum/dialog.ts) builds through createDialogRequest', () => {
    const invite = parseMessage(INVITE);
    const ok = (recordRoute: string): SipMessage =>
      parseMessage(
        sip([
          'SIP/2.0 200 OK',
          `Via: ${invite.header('via')!}`,
          `Record-Route: ${recordRoute}`,
          `From: ${invite.header('from')!}`,
          'To: Bob <sip:bob@biloxi.example.com>;tag=314159',
          `Call-ID: ${invite.callId}`,
          'CSeq: 31862 INVITE',
          'Contact: <sip:bob@192.0.2.4>',
          'Content-Length: 0',
        ]),
      );

    it('UAC, Record-Route reversed; a strict router nearest us: BYE and the 2xx ACK carry it as next hop, a fresh CSeq, the INVITE\'s for the ACK', () => {
      const dialog = Dialog.asUac(invite, ok('<sip:far.example.com;lr>, <sip:near.example.com>'));
      const bye = dialog.createRequest('BYE');
      expect(bye.requestUriText).to.equal('sip:near.example.com');
      expect(bye.headers('route')).to.deep.equal(['<sip:far.example.com;lr>', '<sip:bob@192.0.2.4>']);
      expect(decidedNextHop(bye)?.toString()).to.equal('sip:near.example.com');
      expect(bye.cseq).to.deep.equal({ seq: 31863, method: 'BYE' });
      const ack = dialog.createAck(invite);
      expect(ack.cseq).to.deep.equal({ seq: 31862, method: 'ACK' });
      expect(decidedNextHop(ack)?.toString()).to.equal('sip:near.example.com');
      // §22.1: the ACK for a 2xx carries the INVITE's credentials.
      expect(ack.headers('proxy-authorization')).to.deep.equal(invite.headers('proxy-authorization'));
    });

    it('a strict router\'s method parameter and URI headers stay out of the Request-URI (§19.1.1), and in its Route nowhere (it is the Request-URI)', () => {
      const dialog = Dialog.asUac(invite, ok('<sip:near.example.com;method=BYE?Subject=x>'));
      const bye = dialog.createRequest('BYE');
      expect(bye.requestUriText).to.equal('sip:near.example.com');
      expect(bye.headers('route')).to.deep.equal(['<sip:bob@192.0.2.4>']);
    });

    it('loose routing: no next hop decided (the first Route is it); the remote target is the Contact', () => {
      const dialog = Dialog.asUac(invite, ok('<sip:far.example.com;lr>, <sip:near.example.com;lr>'));
      const bye = dialog.createRequest('BYE');
      expect(bye.requestUriText).to.equal('sip:bob@192.0.2.4');
      expect(bye.headers('route')).to.deep.equal(['<sip:near.example.com;lr>', '<sip:far.example.com;lr>']);
      expect(decidedNextHop(bye)).to.equal(undefined);
      expect(new NameAddr(dialog.remoteTarget).toString()).to.equal('<sip:bob@192.0.2.4>');
    });
  });
});
