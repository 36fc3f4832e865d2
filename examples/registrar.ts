// A registrar with digest authentication that also takes pager MESSAGEs for registered users.
// Run: npx tsx examples/registrar.ts   (PARLEY_LISTEN=udp:127.0.0.1:5070 to move it)
import { DialogUsageManager, DigestAuthenticator, MemoryCredentialStore, MemoryLocationStore, Registrar, SipStack } from 'parley';

const listen = process.env.PARLEY_LISTEN ?? 'udp:127.0.0.1:5060';
const stack = new SipStack({ transports: [listen, listen.replace(/^udp:/, 'tcp:')] });
await stack.start();
const dum = new DialogUsageManager(stack);

const credentials = new MemoryCredentialStore();
credentials.add('alice', 'example.com', 'secret'); // keeps HA1 per algorithm, never the password

const registrar = new Registrar(dum, {
  domains: ['example.com'],
  store: new MemoryLocationStore(),
  authenticator: new DigestAuthenticator({ realm: 'example.com', credentials }),
});
registrar.on('bindings', (aor, bindings) => console.log(`${aor}: ${bindings.map((b) => b.contact).join(', ') || 'none'}`));

// A MESSAGE for a registered user is accepted (202: not delivered yet); anyone else is unknown.
dum.onMessage(async (message) => {
  const bindings = await registrar.lookup(message.request.requestUri);
  console.log(`MESSAGE for ${message.request.requestUri.toString()}: ${message.text}`);
  return bindings.length > 0 ? 202 : 404;
});

console.log(`registrar for example.com on ${stack.transports.map((t) => `${t.protocol}:${t.local.address}:${t.local.port}`).join(' ')}`);
process.once('SIGINT', () => void stack.stop());
process.once('SIGTERM', () => void stack.stop());
