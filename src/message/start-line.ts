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

/**
 * Request-Line = Method SP Request-URI SP SIP-Version CRLF   (RFC 3261 §7.1)
 * Status-Line  = SIP-Version SP Status-Code SP Reason-Phrase CRLF   (§7.2)
 * Extra or trailing spaces and odd status codes are read and reported as a `problem` so the
 * receiver can still answer 400 (RFC 4475 §3.1.2.9, §3.1.2.10) instead of staying silent.
 * `offset` is where the line starts in the message, for error offsets.
 */
export function parseStartLine(line: string, offset: number): StartLine {
  const versionEnd = versionLength(line, 0);
  if (versionEnd > 0 && (versionEnd === line.length || line.charCodeAt(versionEnd) === 0x20)) {
    return parseStatusLine(line, versionEnd, offset);
  }
  return parseRequestLine(line, offset);
}

/** The length of `SIP/1*DIGIT.1*DIGIT` (any case) at `from`, or 0 when there is none. */
function versionLength(line: string, from: number): number {
  if (line.length - from < 7) return 0;
  if ((line.charCodeAt(from) | 0x20) !== 0x73 || (line.charCodeAt(from + 1) | 0x20) !== 0x69 ||
    (line.charCodeAt(from + 2) | 0x20) !== 0x70 || line.charCodeAt(from + 3) !== 0x2f) return 0;
  let p = from + 4;
  const major = p;
  while (p < line.length && isDigit(line.charCodeAt(p))) p++;
  if (p === major || line.charCodeAt(p) !== 0x2e) return 0;
  const minor = ++p;
  while (p < line.length && isDigit(line.charCodeAt(p))) p++;
  return p === minor ? 0 : p - from;
}

function parseStatusLine(line: string, versionEnd: number, offset: number): StartLine {
  const version = line.slice(0, versionEnd);
  let p = versionEnd + 1;
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
  if (p === codeStart) throw badLine('no status code in the status line', offset);
  if (p - codeStart !== 3) problem = 'the status code is not three digits';
  if (p < line.length && line.charCodeAt(p) !== 0x20) throw badLine('status code followed by a non-SP', offset + p);
  // Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB): may be empty.
  const reason = p < line.length ? line.slice(p + 1) : '';
  return { isRequest: false, method: '', uriText: '', version, status, reason, problem };
}

function parseRequestLine(line: string, offset: number): StartLine {
  const n = line.length;
  let p = 0;
  while (p < n && TOKEN[line.charCodeAt(p)] === 1) p++;
  if (p === 0) throw badLine('the start line begins with neither a method nor SIP/', offset);
  if (line.charCodeAt(p) !== 0x20) throw badLine('the method is not followed by SP', offset + p);
  const method = line.slice(0, p);
  // The version is the last word; trailing white space is read past and reported.
  let end = n;
  while (end > p && (line.charCodeAt(end - 1) === 0x20 || line.charCodeAt(end - 1) === 0x09)) end--;
  let versionStart = end;
  while (versionStart > p && line.charCodeAt(versionStart - 1) !== 0x20) versionStart--;
  if (versionStart <= p + 1 || versionLength(line, versionStart) !== end - versionStart) {
    throw badLine('no SIP version at the end of the request line', offset);
  }
  const version = line.slice(versionStart, end);
  let uriStart = p + 1;
  let uriEnd = versionStart - 1;
  let problem: string | undefined;
  if (end !== n) problem = 'white space after the SIP version';
  if (line.charCodeAt(uriStart) === 0x20 || line.charCodeAt(uriEnd - 1) === 0x20) {
    problem = 'more than one SP between request-line elements';
    while (uriStart < uriEnd && line.charCodeAt(uriStart) === 0x20) uriStart++;
    while (uriEnd > uriStart && line.charCodeAt(uriEnd - 1) === 0x20) uriEnd--;
  }
  if (uriEnd <= uriStart) throw badLine('no Request-URI', offset);
  for (let i = uriStart; i < uriEnd; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x20 || c === 0x09) {
      problem ??= 'white space inside the Request-URI';
      break;
    }
  }
  return { isRequest: true, method, uriText: line.slice(uriStart, uriEnd), version, status: 0, reason: '', problem };
}

function badLine(why: string, offset: number): SipParseError {
  return new SipParseError('SIP_BAD_START_LINE', why, undefined, offset);
}
