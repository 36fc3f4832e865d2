// The messages the parser benchmark feeds to every parser: a ~1 KB INVITE with SDP, as a softphone
// sends it through one proxy, and a ~360-byte pager MESSAGE (RFC 3428).
const sdp = [
  'v=0',
  'o=alice 2890844526 2890844526 IN IP4 198.51.100.33',
  's=Session SDP',
  'c=IN IP4 198.51.100.33',
  't=0 0',
  'm=audio 49170 RTP/AVP 0 8 97 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:97 iLBC/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=ptime:20',
  'a=sendrecv',
  '',
].join('\r\n');

export const INVITE = Buffer.from(
  [
    'INVITE sip:bob@biloxi.example.com SIP/2.0',
    'Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport',
    'Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds8;received=192.0.2.101',
    'Max-Forwards: 69',
    'To: Bob <sip:bob@biloxi.example.com>',
    'From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
    'CSeq: 314159 INVITE',
    'Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>',
    'Record-Route: <sip:p1.atlanta.example.com;lr>',
    'Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO',
    'Supported: replaces, timer, outbound',
    'User-Agent: Parley-Bench/1.0',
    'Content-Type: application/sdp',
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    sdp,
  ].join('\r\n'),
);

const text = 'Watson, come here. I want to see you.';

export const MESSAGE = Buffer.from(
  [
    'MESSAGE sip:user2@domain.example.com SIP/2.0',
    'Via: SIP/2.0/TCP user1pc.domain.example.com;branch=z9hG4bK776sgdkse',
    'Max-Forwards: 70',
    'From: sip:user1@domain.example.com;tag=49583',
    'To: sip:user2@domain.example.com',
    'Call-ID: asd88asd77a@1.2.3.4',
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(text)}`,
    '',
    text,
  ].join('\r\n'),
);
