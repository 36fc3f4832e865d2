// Listen addresses and tuples (docs/transport-layer.md "Addresses"), TransportError, and
// createTransport picking the class from the protocol.
import { expect } from 'chai';
import {
  ParleyError,
  TcpTransport,
  TransportError,
  UdpTransport,
  WsTransport,
  createTransport,
  formatTuple,
  parseListenAddress,
  type Transport,
} from '../../src/index.js';
import { Cleanup, EventRecorder } from '../support/transport-harness.js';

describe('transport addresses', () => {
  describe('parseListenAddress', () => {
    const good: Array<[string, { protocol: string; address: string; port: number }]> = [
      ['udp:127.0.0.1:5060', { protocol: 'udp', address: '127.0.0.1', port: 5060 }],
      ['tcp:[::1]:5060', { protocol: 'tcp', address: '::1', port: 5060 }],
      ['tls:127.0.0.1:5061', { protocol: 'tls', address: '127.0.0.1', port: 5061 }],
      ['ws:127.0.0.1:8080', { protocol: 'ws', address: '127.0.0.1', port: 8080 }],
      ['wss:[::1]:8443', { protocol: 'wss', address: '::1', port: 8443 }],
      ['udp:127.0.0.1:0', { protocol: 'udp', address: '127.0.0.1', port: 0 }],
      ['tcp:127.0.0.1:65535', { protocol: 'tcp', address: '127.0.0.1', port: 65535 }],
    ];
    for (const [text, tuple] of good) {
      it(`${text} → ${JSON.stringify(tuple)}, and formatTuple gives the text back`, () => {
        expect(parseListenAddress(text)).to.deep.equal(tuple);
        expect(formatTuple(parseListenAddress(text))).to.equal(text);
      });
    }

    const bad = ['', 'udp', 'udp:', 'sctp:127.0.0.1:5060', 'udp:127.0.0.1:65536', 'udp:127.0.0.1:-1', 'udp:127.0.0.1:abc', 'tcp:[::1:5060'];
    for (const text of bad) {
      it(`${JSON.stringify(text)} throws TransportError TRANSPORT_BAD_ADDRESS`, () => {
        let caught: unknown;
        try {
          parseListenAddress(text);
        } catch (error) {
          caught = error;
        }
        expect(caught).to.be.instanceOf(TransportError);
        expect(caught).to.be.instanceOf(ParleyError);
        expect((caught as TransportError).code).to.equal('TRANSPORT_BAD_ADDRESS');
      });
    }
  });

  describe('formatTuple', () => {
    it('brackets IPv6 addresses only', () => {
      expect(formatTuple({ protocol: 'tcp', address: '::1', port: 5060 })).to.equal('tcp:[::1]:5060');
      expect(formatTuple({ protocol: 'udp', address: '127.0.0.1', port: 40000 })).to.equal('udp:127.0.0.1:40000');
    });
  });

  describe('createTransport', () => {
    const cleanup = new Cleanup();
    afterEach(() => cleanup.run());

    const cases: Array<[string, abstract new (...args: never[]) => Transport, string]> = [
      ['udp:127.0.0.1:0', UdpTransport, '127.0.0.1'],
      ['tcp:[::1]:0', TcpTransport, '::1'],
      ['ws:127.0.0.1:0', WsTransport, '127.0.0.1'],
    ];
    for (const [listen, type, address] of cases) {
      it(`${listen} makes a ${type.name} that binds a real port`, async () => {
        const transport = createTransport(listen, { sink: new EventRecorder() });
        cleanup.add(listen, transport, (t) => t.close());
        expect(transport).to.be.instanceOf(type);
        await transport.start();
        expect(transport.local.protocol).to.equal(listen.slice(0, listen.indexOf(':')));
        expect(transport.local.address).to.equal(address);
        expect(transport.local.port).to.be.a('number').above(0);
      });
    }
  });
});
