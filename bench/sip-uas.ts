// The peer for bench/sipp-load.ts: npm `sip` (kirm) as a UAS on UDP that answers every request
// except ACK with 200, in a child process of its own.
//
//   node .bench/bench/sip-uas.js PORT      (prints "listening udp:127.0.0.1:PORT"; SIGTERM stops it)
//
// npm `sip` has no port 0: the parent picks a free port. It runs its own server transactions
// (retransmissions are absorbed and answered from the transaction), like parley responder.
import { createRequire } from 'node:module';

interface SipRequest {
  method: string;
}
interface SipLib {
  start(options: { port: number; address: string; udp?: boolean; tcp?: boolean; logger?: object }, onRequest: (rq: SipRequest) => void): void;
  send(message: object): void;
  makeResponse(rq: SipRequest, status: number, reason: string): object;
  stop(): void;
}

const require = createRequire(import.meta.url);
const sip = require('sip') as SipLib;
const address = '127.0.0.1';
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node sip-uas.js PORT\n');
  process.exit(2);
}

sip.start({ port, address, udp: true, tcp: false, logger: {} }, (rq) => {
  if (rq.method !== 'ACK') sip.send(sip.makeResponse(rq, 200, 'OK'));
});
process.stdout.write(`listening udp:${address}:${port}\n`);
const stop = (): void => {
  sip.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
