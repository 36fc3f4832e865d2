#!/usr/bin/env node
// The `parley` command. This is the only place that prints for people; the library never does.
import { readFileSync } from 'node:fs';
import { parseCommand } from './parse-command.js';
import { resolveCommand } from './resolve-command.js';
import { responderCommand } from './responder-command.js';

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
  help              Show this text.
  version           Show Parley's version.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'parse':
      return parseCommand(rest, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'responder':
      return responderCommand(rest, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'resolve':
      return resolveCommand(rest, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`${version()}\n`);
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
  },
  (error: unknown) => {
    process.stderr.write(`parley: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exitCode = 70;
  },
);
