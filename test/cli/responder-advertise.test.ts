// `parley responder --advertise-host`: a responder bound to the wildcard answers with the
// advertised host in its Contact, never 0.0.0.0 (in-process, real UDP on loopback).
import { createSocket } from 'node:dgram';
import { expect } from 'chai';
import { parseResponderArgs, runResponder } from '../../src/cli/responder-command.js';
import { parseMessage, type SipMessage } from '../../src/index.js';

async function inviteOnce(port: number): Promise<SipMessage> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const local = socket.address().port;
  const invite = [
    `INVITE sip:service@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-advertise`,
    'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=adv',
    'To: <sip:service@127.0.0.1>',
    'Call-ID: advertise@127.0.0.1',
    'CSeq: 1 INVITE',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  try {
    return await new Promise<SipMessage>((resolve) => {
      socket.on('message', (data) => {
        const message = parseMessage(data);
        if (message.status >= 200) resolve(message);
      });
      socket.send(invite, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

describe('parley responder --advertise-host', () => {
  it('bound to 0.0.0.0 with --advertise-host 192.0.2.7: the 2xx to INVITE has Contact <sip:192.0.2.7:PORT>', async () => {
    const args = parseResponderArgs(['--listen', 'udp:0.0.0.0:0', '--advertise-host', '192.0.2.7']);
    if (typeof args === 'string') throw new Error(args);
    const running = await runResponder(args, () => undefined);
    try {
      const port = running.transports[0]!.local.port;
      const ok = await inviteOnce(port);
      expect([ok.status, ok.header('contact')]).to.deep.equal([200, `<sip:192.0.2.7:${port}>`]);
    } finally {
      await running.stop();
    }
  });

  it('bound to 0.0.0.0 without it: the Contact names an interface address, not the wildcard', async () => {
    const args = parseResponderArgs(['--listen', 'udp:0.0.0.0:0']);
    if (typeof args === 'string') throw new Error(args);
    const running = await runResponder(args, () => undefined);
    try {
      const ok = await inviteOnce(running.transports[0]!.local.port);
      expect(ok.contact[0]!.uri.host).to.not.equal('0.0.0.0');
      expect(ok.contact[0]!.uri.host).to.equal(running.stack.sentBy(running.transports[0]!).host);
    } finally {
      await running.stop();
    }
  });

  it('a wildcard or malformed --advertise-host is bad usage', () => {
    expect(parseResponderArgs(['--listen', 'udp:0.0.0.0:0', '--advertise-host', '0.0.0.0'])).to.match(/^--advertise-host: 0\.0\.0\.0 cannot be advertised/);
    expect(parseResponderArgs(['--listen', 'udp:0.0.0.0:0', '--advertise-host', 'a b'])).to.match(/^--advertise-host: not an advertised HOST\[:PORT\]/);
  });
});
