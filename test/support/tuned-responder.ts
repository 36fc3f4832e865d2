// `parley responder` with stack options the CLI does not expose (the TU queue limit, T1, T2), for
// interop tests that need them:
//
//   node --import tsx test/support/tuned-responder.ts '{"tuQueueLimitMs":1}' --listen udp:127.0.0.1:0 ...
//
// The first argument is the JSON options object handed to runResponder (src/cli/responder-command.ts);
// the rest are the `parley responder` arguments. Prints the same "listening" lines; stops on
// SIGINT/SIGTERM.
import { parseResponderArgs, runResponder } from '../../src/cli/responder-command.js';

const [json = '{}', ...rest] = process.argv.slice(2);
const options = JSON.parse(json) as { t1?: number; t2?: number; tuQueueLimitMs?: number };
const parsed = parseResponderArgs(rest);
if (typeof parsed === 'string') {
  process.stderr.write(`${parsed}\n`);
  process.exit(2);
}
const running = await runResponder(parsed, (line) => process.stdout.write(`${line}\n`), options);
process.stdout.write(`options ${JSON.stringify(options)}\n`);
const stop = (): void => {
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  void running.stop().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
