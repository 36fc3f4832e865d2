import { TOKEN, isDigit } from './char-class.js';
import { SipParseError } from './parse-error.js';

/** The first line of a message, read liberally; what the strict grammar forbids is noted in `problem`. */
export interface StartLine {
  isRequest: boolean;
  method: string;
  uriText: string;
  version: string;
  status: number;
  reason: string;
  /** Why the line breaks RFC 3261 §7.1/§7.2 strictly while still being readable, else undefined. */
  problem: string | undefined;
}

const VERSION = /^SIP\/\d+\.\d+$/i;

/**
 * Request-Line = Method SP Request-URI SP SIP-Version CRLF   (RFC 3261 §7.1)
 * Status-Line  = SIP-Version SP Status-Code SP Reason-Phrase CRLF   (§7.2)
 * Extra or trailing spaces and odd status codes are read and reported as a `problem` so the
 * receiver can still answer 400 (RFC 4475 §3.1.2.9, §3.1.2.10) instead of staying silent.
 */
export function parseStartLine(line: string, start: number): StartLine {
  if (line.length >= 4 && (line.charCodeAt(0) | 0x20) === 0x73 && (line.charCodeAt(1) | 0x20) === 0x69 &&
    (line.charCodeAt(2) | 0x20) === 0x70 && line.charCodeAt(3) === 0x2f) {
    return parseStatusLine(line, start);
  }
  return parseRequestLine(line, start);
}

function parseStatusLine(line: string, offset: number): StartLine {
  const sp = line.indexOf(' ');
  const version = sp === -1 ? line : line.slice(0, sp);
  if (!VERSION.test(version)) throw badLine('not a SIP version in the status line', offset);
  let p = sp + 1;
  let problem: string | undefined;
  while (line.charCodeAt(p) === 0x20) {
    p++;
    problem = 'more than one SP after the SIP version';
  }
  const codeStart = p;
  let status = 0;
  while (p < line.length && isDigit(line.charCodeAt(p))) {
    if (p - codeStart < 16) status = status * 10 + line.charCodeAt(p) - 0x30;
    p++;
  }
  if (sp === -1 || p === codeStart) throw badLine('no status code in the status line', offset);
  if (p - codeStart !== 3) problem = 'the status code is not three digits';
  if (p < line.length && line.charCodeAt(p) !== 0x20) throw badLine('status code followed by a non-SP', offset + p);
  // Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB): may be empty.
  const reason = p < line.length ? line.slice(p + 1) : '';
  return { isRequest: false, method: '', uriText: '', version, status, reason, problem };
}

function parseRequestLine(line: string, offset: number): StartLine {
  let p = 0;
  while (p < line.length) {
    const c = line.charCodeAt(p);
    if (c > 0x7f || TOKEN[c] !== 1) break;
    p++;
  }
  if (p === 0) throw badLine('the start line begins with neither a method nor SIP/', offset);
  if (line.charCodeAt(p) !== 0x20) throw badLine('the method is not followed by SP', offset + p);
  const method = line.slice(0, p);
  const lastSp = line.trimEnd().lastIndexOf(' ');
  const version = line.slice(lastSp + 1).trimEnd();
  if (lastSp <= p || !VERSION.test(version)) throw badLine('no SIP version at the end of the request line', offset);
  const uriText = line.slice(p + 1, lastSp);
  let problem: string | undefined;
  if (line.length !== lastSp + 1 + version.length) problem = 'white space after the SIP version';
  else if (uriText.length === 0 || /[ \t]/.test(uriText)) problem = 'more than single SPs between request-line elements';
  return { isRequest: true, method, uriText: uriText.trim(), version, status: 0, reason: '', problem };
}

function badLine(why: string, offset: number): SipParseError {
  return new SipParseError('SIP_BAD_START_LINE', why, undefined, offset);
}
