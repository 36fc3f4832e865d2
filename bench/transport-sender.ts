// The load generator for bench/transport.bench.ts, run in a worker thread so it has a core of
// its own: it keeps `window` messages in flight and sends one more for every one the receiver
// reports, until told to stop.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

interface Job {
  protocol: 'udp' | 'tcp';
  port: number;
  message: Uint8Array;
  window: number;
}

const job = workerData as Job;
const message = Buffer.from(job.message);
const port = parentPort!;

let stopped = false;

if (job.protocol === 'udp') {
  const socket = createSocket('udp4');
  const sendOne = (): void => socket.send(message, job.port, '127.0.0.1');
  port.on('message', (m: { credit?: number; stop?: boolean }) => {
    if (stopped) return;
    if (m.stop) {
      stopped = true;
      socket.close(() => port.close());
    } else for (let i = 0; i < (m.credit ?? 0); i++) sendOne();
  });
  for (let i = 0; i < job.window; i++) sendOne();
} else {
  const socket = connect(job.port, '127.0.0.1', () => {
    socket.setNoDelay(true);
    socket.write(Buffer.concat(Array.from({ length: job.window }, () => message)));
  });
  socket.on('error', () => undefined);
  port.on('message', (m: { credit?: number; stop?: boolean }) => {
    if (stopped) return;
    if (m.stop) {
      stopped = true;
      socket.destroy();
      port.close();
    } else if (m.credit) socket.write(m.credit === 1 ? message : Buffer.concat(Array.from({ length: m.credit }, () => message)));
  });
}
