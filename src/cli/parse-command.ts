import { readFileSync } from 'node:fs';
import { parseMessage } from '../message/parse-message.js';
import { SipParseError } from '../message/parse-error.js';
import { validateMessage, verdictCode } from '../message/validate.js';

/** One line of `parley parse` output, in the shape ARCHITECTURE.md fixes. */
export type ParseReport =
  | { file: string; ok: true; kind: 'request'; method: string; reject: number | 'drop' | null }
  | { file: string; ok: true; kind: 'response'; status: number; reject: number | 'drop' | null }
  | { file: string; ok: false; code: string; error: string };

/** Reads `file` as one datagram and says what a receiving element must do with it. */
export function reportFile(file: string): ParseReport {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'ERR_READ';
    return { file, ok: false, code, error: `cannot read ${file}: ${(error as Error).message}` };
  }
  try {
    const message = parseMessage(bytes);
    const reject = verdictCode(validateMessage(message));
    return message.isRequest
      ? { file, ok: true, kind: 'request', method: message.method, reject }
      : { file, ok: true, kind: 'response', status: message.status, reject };
  } catch (error) {
    if (error instanceof SipParseError) return { file, ok: false, code: error.code, error: error.message };
    throw error;
  }
}

/** `parley parse FILE...`: exit 1 when any file is not SIP or has to be rejected, 2 on bad usage. */
export function parseCommand(args: string[], out: (line: string) => void, err: (line: string) => void): number {
  if (args.length === 0) {
    err('usage: parley parse FILE...');
    return 2;
  }
  let status = 0;
  for (const file of args) {
    const report = reportFile(file);
    if (!report.ok || report.reject !== null) status = 1;
    out(JSON.stringify(report));
  }
  return status;
}
