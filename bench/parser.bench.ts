// Parser benchmark: Parley against npm `sip` (kirm) on the same bytes in the same run.
//
//   npm run bench:parser            (BENCH_TIME=seconds per case, default 2)
//
// The script compiles bench/ (and the src/ it imports) with tsc into .bench/ and runs it with
// plain node: a loader such as tsx rewrites module bindings into getters, which would put a call
// behind every lookup-table access in the parser's hot loops and measure the loader, not Parley.
//
// "parse" measures parsing alone; "parse+access" also reads what a transaction layer and a proxy
// need from every message: top Via branch, From tag, To tag, Call-ID, CSeq number and method,
// and the Request-URI host. Both parsers get a Buffer, as a UDP socket delivers it. npm `sip`
// parses eagerly, so for it "parse" already includes most of the access work.
import Benchmark from 'benchmark';
import { createRequire } from 'node:module';
import { parseMessage } from '../src/index.js';
import { INVITE, MESSAGE } from './messages.js';

interface KirmMessage {
  uri: string;
  headers: {
    via: Array<{ params: Record<string, string> }>;
    from: { params: Record<string, string> };
    to: { params: Record<string, string> };
    'call-id': string;
    cseq: { seq: number; method: string };
  };
}
const kirm = createRequire(import.meta.url)('sip') as {
  parse(data: Buffer | string): KirmMessage;
  parseUri(uri: string): { host: string };
};

const maxTime = Number(process.env.BENCH_TIME ?? 2);
let sink = 0;

function parleyAccess(data: Buffer): void {
  const m = parseMessage(data);
  const branch = m.via[0]!.branch!;
  const fromTag = m.from.tag ?? '';
  const toTag = m.to.tag ?? '';
  const cseq = m.cseq;
  sink += branch.length + fromTag.length + toTag.length + m.callId.length + cseq.seq + cseq.method.length + m.requestUri.host.length;
}

function kirmAccess(data: Buffer): void {
  const m = kirm.parse(data);
  const h = m.headers;
  const branch = h.via[0]!.params.branch!;
  const fromTag = h.from.params.tag ?? '';
  const toTag = h.to.params.tag ?? '';
  sink += branch.length + fromTag.length + toTag.length + h['call-id'].length + h.cseq.seq + h.cseq.method.length + kirm.parseUri(m.uri).host.length;
}

interface Row {
  name: string;
  hz: number;
  rme: number;
}

function run(title: string, cases: Array<[string, () => void]>): Promise<Row[]> {
  return new Promise((resolve) => {
    const suite = new Benchmark.Suite(title);
    for (const [name, fn] of cases) suite.add(name, fn, { maxTime });
    const rows: Row[] = [];
    suite.on('cycle', (event: Benchmark.Event) => {
      const b = event.target as unknown as Benchmark & { name: string };
      rows.push({ name: b.name, hz: b.hz, rme: b.stats.rme });
      console.log(`  ${String(event.target)}`);
    });
    suite.on('complete', () => resolve(rows));
    suite.run({ async: false });
  });
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, INVITE ${INVITE.length} bytes, MESSAGE ${MESSAGE.length} bytes, ${maxTime}s per case\n`);
  const summary: string[] = [];
  for (const [label, bytes] of [['INVITE', INVITE], ['MESSAGE', MESSAGE]] as const) {
    for (const mode of ['parse', 'parse+access'] as const) {
      console.log(`${label} ${mode}`);
      const rows = await run(`${label} ${mode}`, [
        [`parley ${label} ${mode}`, mode === 'parse' ? () => void parseMessage(bytes) : () => parleyAccess(bytes)],
        [`npm sip ${label} ${mode}`, mode === 'parse' ? () => void kirm.parse(bytes) : () => kirmAccess(bytes)],
      ]);
      const [parley, peer] = rows as [Row, Row];
      summary.push(
        `| ${label} | ${mode} | ${Math.round(parley.hz).toLocaleString('en-US')} | ${Math.round(peer.hz).toLocaleString('en-US')} | ${(parley.hz / peer.hz).toFixed(1)}× |`,
      );
    }
  }
  console.log('\n| message | work | parley msg/s | npm sip msg/s | ratio |\n| --- | --- | ---: | ---: | ---: |');
  for (const line of summary) console.log(line);
  if (sink === 0) console.log('(sink)');
}

void main();
