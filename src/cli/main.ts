#!/usr/bin/env node
// The `parley` command. This is the only place that prints for people; the library never does.
import { PARLEY_VERSION } from '../version.js';
import { parseCommand } from './parse-command.js';
import { resolveCommand } from './resolve-command.js';
import { clientCommand, listenCommand, sendCommand } from './client-commands.js';
import { responderCommand } from './responder-command.js';
import { networkCommand } from './network-command.js';
import { serverCommand } from './server-command.js';
import { userCommand } from './user-command.js';

const USAGE = `Usage: parley <command> [arguments]

Commands:
  parse FILE...     Parse each file as one SIP datagram; print one JSON line per file:
                    {"file","ok":true,"kind","method"|"status","reject":null|CODE|"drop"}
                    or {"file","ok":false,"code","error"}. Exit 1 if any file is
                    malformed or must be rejected.
  responder --listen PROTO:HOST:PORT... [--status CODE] [--cert FILE --key FILE]
                    Answer every request (except ACK) with CODE (default 200). Listen
                    addresses: udp:127.0.0.1:5060, tcp:[::1]:5060, tls:..., ws:...
                    Prints "listening PROTO:HOST:PORT" per address; stops on Ctrl-C.
  resolve SIP-URI [--dns HOST:PORT]... [--prefer-ipv6]
                    Print the RFC 3263 targets for a request to SIP-URI, one
                    "PROTO HOST:PORT" line each, in the order they would be tried.
                    Nameservers from --dns, else /etc/resolv.conf; /etc/hosts first.
                    Exit 1 when there are none.
  server [--config FILE] [--domain D]... [--listen ADDR]... [--data DIR]
                    Run a Parley server (defaults: domain localhost, udp+tcp
                    127.0.0.1:5060, data in ./parley-data). See docs/server.md.
                    Federation: --peer DOMAIN=URI... --secret S [--discover]
                    (docs/federation.md).
  network [--server SIP-URI] [--json]
                    A server's neighbours (with their state) and routing table.
  user add|remove|passwd USER@DOMAIN [--password P] [--data DIR]
  user list [--data DIR]
                    Manage the server's accounts (password also from PARLEY_PASSWORD
                    or a prompt).
  client --user USER@DOMAIN [--server SIP-URI] [--password P]
                    Interactive chat (/msg USER@DOMAIN TEXT, /help, /quit).
  send --user USER@DOMAIN --to USER@DOMAIN --text TEXT [--wait-delivery SECONDS]
                    Send one message; exit 0 once accepted (and delivered).
  listen --user USER@DOMAIN [--json]
                    Print incoming messages, one line each, until interrupted.
                    Client commands default to --server sip:127.0.0.1:5060;transport=tcp.
  help              Show this text.
  version           Show Parley's version.
`;


const print = (line: string): void => void process.stdout.write(`${line}\n`);
const printError = (line: string): void => void process.stderr.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'parse':
      return parseCommand(rest, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'responder':
      return responderCommand(rest, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'resolve':
      return resolveCommand(rest, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'server':
      return serverCommand(rest, print, printError);
    case 'user':
      return userCommand(rest, print, printError);
    case 'network':
      return networkCommand(rest, print, printError);
    case 'send':
      return sendCommand(rest, print, printError);
    case 'listen':
      return listenCommand(rest, print, printError);
    case 'client':
      return clientCommand(rest, print, printError);
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`${PARLEY_VERSION}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`parley: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Every command releases its sockets and timers; should anything still hold the event loop,
    // the command's answer stands and the process ends shortly after.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (error: unknown) => {
    process.stderr.write(`parley: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exitCode = 70;
  },
);
