// Whether someone else has bound a UDP port on loopback: the load scripts start SIPp or Kamailio
// and wait until their socket is there before sending.
import { createSocket } from 'node:dgram';

/** True when binding host:port fails (another process holds it). */
export async function udpPortTaken(host: string, port: number): Promise<boolean> {
  const udp = createSocket('udp4');
  const taken = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(true));
    udp.bind(port, host, () => resolve(false));
  });
  await new Promise<void>((resolve) => {
    try {
      udp.close(() => resolve());
    } catch {
      resolve();
    }
  });
  return taken;
}
