// Registers alice, sends a MESSAGE, unregisters. Run: npx tsx examples/client.ts [registrar-uri]
import { DialogUsageManager, SipStack } from 'parley';

const stack = new SipStack({ transports: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'] });
await stack.start();
const dum = new DialogUsageManager(stack, {
  aor: 'sip:alice@example.com',
  credentials: [{ username: 'alice', password: 'secret' }],
  outboundProxy: process.argv[2] ?? 'sip:127.0.0.1:5060', // every request goes there first
});
dum.onMessage((message) => {
  console.log(`${message.from.uri.toString()}: ${message.text}`);
  return 200;
});
const registration = dum.register({ expires: 600 });
await registration.ready; // rejects with a DumError when it cannot register
const response = await dum.sendMessage({ to: 'sip:alice@example.com', text: 'hello' });
console.log(`MESSAGE: ${response.status} ${response.reason}`);
await registration.unregister();
await stack.stop();
