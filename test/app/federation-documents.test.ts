import { expect } from 'chai';
import { DocumentError, formatHello, formatRoutes, parseHello, parseRoutes } from '../../src/app/federation/documents.js';
import { ConfigError, resolveConfig } from '../../src/app/server/server-config.js';

const HELLO = { server: 'b.example', boot: 'f00d', uri: 'sip:127.0.0.1:5071;transport=tcp' };

/** A small deterministic PRNG so the fuzz run is the same every time (mulberry32). */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('federation documents (docs/federation.md)', () => {
  it('a routes NOTIFY body round-trips, withdrawals included, in the documented shape', () => {
    const text = formatRoutes({
      ...HELLO,
      version: 4,
      full: false,
      routes: [
        { domain: 'c.example', path: ['b.example', 'c.example'] },
        { domain: 'd.example', path: undefined },
      ],
    });
    expect(JSON.parse(text)).to.deep.equal({
      server: 'b.example',
      boot: 'f00d',
      uri: 'sip:127.0.0.1:5071;transport=tcp',
      version: 4,
      full: false,
      routes: [{ domain: 'c.example', path: ['b.example', 'c.example'] }],
      withdrawn: ['d.example'],
    });
    expect(parseRoutes(Buffer.from(text))).to.deep.equal({
      ...HELLO,
      version: 4,
      full: false,
      routes: [
        { domain: 'c.example', path: ['b.example', 'c.example'] },
        { domain: 'd.example', path: undefined },
      ],
    });
  });

  it('a hello round-trips', () => {
    expect(parseHello(formatHello(HELLO))).to.deep.equal(HELLO);
  });

  const bad: Array<[string, unknown]> = [
    ['not JSON', '{'],
    ['an array', []],
    ['no server', { boot: 'x', uri: 'sip:h', version: 1, full: true, routes: [], withdrawn: [] }],
    ['an upper-case or spaced server name', { ...HELLO, server: 'B EXAMPLE', version: 1, full: true, routes: [], withdrawn: [] }],
    ['a uri that is not sip', { ...HELLO, uri: 'http://x', version: 1, full: true, routes: [], withdrawn: [] }],
    ['version 0', { ...HELLO, version: 0, full: true, routes: [], withdrawn: [] }],
    ['full as a string', { ...HELLO, version: 1, full: 'yes', routes: [], withdrawn: [] }],
    ['an empty path', { ...HELLO, version: 1, full: true, routes: [{ domain: 'c.example', path: [] }], withdrawn: [] }],
    ['a path of numbers', { ...HELLO, version: 1, full: true, routes: [{ domain: 'c.example', path: [1] }], withdrawn: [] }],
    ['withdrawn not names', { ...HELLO, version: 1, full: true, routes: [], withdrawn: [null] }],
  ];
  for (const [why, value] of bad) {
    it(`refuses ${why} with FEDERATION_BAD_DOCUMENT`, () => {
      const body = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
      expect(() => parseRoutes(body)).to.throw(DocumentError).with.property('code', 'FEDERATION_BAD_DOCUMENT');
    });
  }

  it('refuses a body over 1 MiB without parsing it', () => {
    const body = Buffer.alloc(1_048_577, 0x20);
    expect(() => parseRoutes(body)).to.throw(DocumentError, /over 1048576 bytes/);
  });

  it('fuzz: 3,000 mutated bodies either parse to names and paths or throw DocumentError, never anything else', () => {
    const random = prng(7);
    const seed = Buffer.from(
      formatRoutes({ ...HELLO, version: 2, full: true, routes: [{ domain: 'c.example', path: ['b.example', 'c.example'] }, { domain: 'x', path: undefined }] }),
    );
    const alphabet = Buffer.from('{}[]",:0123456789abcz.-\\ \u00ff');
    let parsed = 0;
    for (let i = 0; i < 3000; i++) {
      const body = Buffer.from(seed);
      const edits = 1 + Math.floor(random() * 4);
      for (let e = 0; e < edits; e++) body[Math.floor(random() * body.length)] = alphabet[Math.floor(random() * alphabet.length)]!;
      try {
        const document = parseRoutes(body);
        parsed++;
        for (const route of document.routes) {
          expect(route.domain).to.match(/^[a-z0-9.-]+$|^\[/);
          if (route.path) for (const hop of route.path) expect(hop).to.be.a('string');
        }
      } catch (error) {
        expect(error, String(error)).to.be.instanceOf(DocumentError);
      }
    }
    // Some mutations only touch values and still parse: the fuzz reaches past JSON.parse.
    expect(parsed).to.be.greaterThan(0);
  });
});

describe('federation configuration (docs/federation.md "Configuration")', () => {
  it('defaults: no peers, 5 s pings, 3 misses, backoff 1 s to 60 s, Max-Forwards 70, no discovery', () => {
    const config = resolveConfig({});
    expect(config.peers).to.deep.equal([]);
    expect(config.pingIntervalMs).to.equal(5000);
    expect(config.pingMisses).to.equal(3);
    expect(config.linkRetryMs).to.deep.equal([1000, 60_000]);
    expect(config.maxForwards).to.equal(70);
    expect(config.routes).to.deep.equal({});
    expect(config.dnsFallback).to.equal(false);
    expect(config.discovery).to.equal(false);
  });

  it('peers are lower-cased; discovery true takes SIP\'s multicast group', () => {
    const config = resolveConfig({ federationSecret: 's', peers: [{ domain: 'B.Example', uri: 'sip:127.0.0.1:5071' }], discovery: true as never });
    expect(config.peers).to.deep.equal([{ domain: 'b.example', uri: 'sip:127.0.0.1:5071' }]);
    expect(config.discovery).to.deep.equal({ group: '224.0.1.75', port: 5060, interface: '127.0.0.1', intervalMs: 30_000 });
  });

  const refused: Array<[string, object, RegExp]> = [
    ['a peer without any secret', { peers: [{ domain: 'b.example', uri: 'sip:h' }] }, /no secret/],
    ['a peer that is our own domain', { federationSecret: 's', peers: [{ domain: 'localhost', uri: 'sip:h' }] }, /our own domains/],
    ['a peer URI that is not SIP', { federationSecret: 's', peers: [{ domain: 'b.example', uri: 'http://h' }] }, /not a sip/],
    ['a peer listed twice', { federationSecret: 's', peers: [{ domain: 'b.example', uri: 'sip:h' }, { domain: 'b.example', uri: 'sip:i' }] }, /twice/],
    ['pingMisses 0', { pingMisses: 0 }, /pingMisses/],
    ['linkRetryMs first over cap', { linkRetryMs: [10, 1] }, /linkRetryMs/],
    ['discovery without a secret', { discovery: { group: '224.0.1.75' } }, /federationSecret/],
    ['a discovery group that is not multicast', { federationSecret: 's', discovery: { group: '10.0.0.1' } }, /multicast/],
    ['a static route to nowhere', { routes: { 'x.example': 7 } }, /not domain → neighbour/],
  ];
  for (const [why, config, message] of refused) {
    it(`refuses ${why} (CONFIG_INVALID)`, () => {
      expect(() => resolveConfig(config as never))
        .to.throw(ConfigError, message)
        .with.property('code', 'CONFIG_INVALID');
    });
  }
});
