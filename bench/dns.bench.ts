// RFC 3263 lookups: Parley's SipResolver against Node's own resolver (c-ares, `dns.promises.Resolver`)
// asking the same loopback nameserver (test/support/dns-server.ts, dns2) in the same run.
//
//   npm run bench:dns            (BENCH_TIME=seconds per case, default 3)
//
// - cold: every record has TTL 0, so each lookup goes to the wire: NAPTR, then SRV for the best
//   NAPTR, then A and AAAA for the best SRV target — four queries for both resolvers. c-ares is
//   native code and shares one socket; Parley opens a socket per query (a random source port,
//   RFC 5452) and decodes with dns2 in JavaScript.
// - warm: TTL 300; Parley answers from its cache, c-ares (which has no cache) asks again. This is
//   what the cache saves a server that sends to the same domain all day.
import Benchmark from 'benchmark';
import { Resolver } from 'node:dns/promises';
import { SipResolver } from '../src/index.js';
import { startDnsServer, type ZoneRecord } from '../test/support/dns-server.js';

const maxTime = Number(process.env.BENCH_TIME ?? 3);

function zone(ttl: number): ZoneRecord[] {
  return [
    { type: 'NAPTR', name: 'example.test', order: 10, preference: 10, flags: 's', service: 'SIP+D2T', regexp: '', replacement: '_sip._tcp.example.test', ttl },
    { type: 'NAPTR', name: 'example.test', order: 20, preference: 10, flags: 's', service: 'SIP+D2U', regexp: '', replacement: '_sip._udp.example.test', ttl },
    { type: 'SRV', name: '_sip._tcp.example.test', priority: 10, weight: 1, port: 5060, target: 'a.example.test', ttl },
    { type: 'SRV', name: '_sip._udp.example.test', priority: 10, weight: 1, port: 5060, target: 'a.example.test', ttl },
    { type: 'A', name: 'a.example.test', address: '192.0.2.10', ttl },
    { type: 'AAAA', name: 'a.example.test', address: '2001:db8::10', ttl },
  ];
}

/** The same RFC 3263 walk by hand on c-ares: best NAPTR → best SRV → A + AAAA. */
async function nodeLookup(resolver: Resolver): Promise<number> {
  const naptr = (await resolver.resolveNaptr('example.test')).sort((a, b) => a.order - b.order || a.preference - b.preference)[0]!;
  const srv = (await resolver.resolveSrv(naptr.replacement)).sort((a, b) => a.priority - b.priority)[0]!;
  const [v4, v6] = await Promise.all([resolver.resolve4(srv.name), resolver.resolve6(srv.name)]);
  return v4.length + v6.length;
}

async function parleyLookup(resolver: SipResolver): Promise<number> {
  const list = resolver.resolve('sip:example.test');
  const first = await list.next();
  const second = await list.next();
  return (first ? 1 : 0) + (second ? 1 : 0);
}

function run(title: string, cases: Array<[string, () => Promise<number>]>): Promise<Map<string, number>> {
  return new Promise((resolve) => {
    const rates = new Map<string, number>();
    const suite = new Benchmark.Suite(title);
    for (const [name, fn] of cases) {
      suite.add(name, {
        defer: true,
        maxTime,
        fn: (deferred: { resolve(): void }) => {
          fn().then(
            (n) => {
              if (n !== 2) throw new Error(`${name}: expected two addresses, got ${n}`);
              deferred.resolve();
            },
            (error: unknown) => {
              throw error;
            },
          );
        },
      });
    }
    suite.on('cycle', (event: Benchmark.Event) => {
      const target = event.target as unknown as { name: string; hz: number };
      rates.set(target.name, target.hz);
      console.log(`  ${String(event.target)}`);
    });
    suite.on('complete', () => resolve(rates));
    suite.run({ async: true });
  });
}

async function main(): Promise<void> {
  for (const [label, ttl] of [['cold (TTL 0: four queries per lookup)', 0], ['warm (TTL 300)', 300]] as const) {
    const server = await startDnsServer({ records: zone(ttl) });
    const node = new Resolver({ timeout: 2000, tries: 1 });
    node.setServers([server.nameserver]);
    const parley = new SipResolver({ nameservers: [server.nameserver], hostsFile: false, transports: ['udp', 'tcp'] });
    console.log(label);
    const rates = await run(label, [
      ['parley SipResolver', () => parleyLookup(parley)],
      ['node dns (c-ares)', () => nodeLookup(node)],
    ]);
    const ratio = rates.get('parley SipResolver')! / rates.get('node dns (c-ares)')!;
    console.log(`  ratio parley / node: ${ratio.toFixed(2)}×  (parley wire queries: ${parley.wireQueries})\n`);
    parley.close();
    await server.close();
  }
}

await main();
