#!/usr/bin/env node
// Regenerates test/fixtures/rfc4475 and test/fixtures/rfc5118 from the RFC texts.
// Both RFCs end with "Appendix A. Bit-Exact Archive of Each Test Message": a base64 block of a
// gzip-compressed tar of every test message. Decoding it gives the exact bytes the RFC authors
// meant (trailing garbage, NULs and all), which retyping from the prose would not.
// Usage: node scripts/extract-rfc-fixtures.mjs [RFC-DIR]   (default ../shared/rfc)
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const rfcDir = process.argv[2] ?? join(root, '..', 'shared', 'rfc');

function archiveOf(text) {
  const lines = text.split('\n');
  let inside = false;
  let b64 = '';
  for (const line of lines) {
    if (line.includes('-- BEGIN MESSAGE ARCHIVE --')) inside = true;
    if (inside && /^\s*\S+\s*$/.test(line)) b64 += line.trim();
    if (line.includes('-- END MESSAGE ARCHIVE --')) inside = false;
  }
  // The markers themselves are single "words" too; the perl script in the RFC keeps them and
  // relies on base64 decoders skipping the '-' characters. Do the same by filtering the alphabet.
  return gunzipSync(Buffer.from(b64.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'));
}

// Minimal ustar reader: 512-byte headers, name at 0..100, size (octal) at 124..136.
function* tarEntries(tar) {
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) return;
    const name = header.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    off += 512;
    if (type === '0' || type === '\0') yield { name, data: tar.subarray(off, off + size) };
    off += Math.ceil(size / 512) * 512;
  }
}

/**
 * RFC 5118's archive was made with bare LF line endings, and two of its messages (ipv6-in-sdp,
 * mult-ip-in-sdp) declare a Content-Length that matches their SDP body neither with LF nor with
 * CRLF (268 and 181 against 251 and 189 bytes) although §4.6 and §4.8 call them well-formed.
 * SIP lines end in CRLF (RFC 3261 §7), so the fixtures get CRLF, and Content-Length is set to the
 * body's real length; the messages are otherwise the archive's bytes. RFC 4475's archive is
 * already CRLF and exact, and is kept untouched.
 */
function normalize5118(data) {
  let text = data.toString('latin1').replace(/\r?\n/g, '\r\n');
  const split = text.indexOf('\r\n\r\n');
  const body = split === -1 ? '' : text.slice(split + 4);
  text = text.replace(/^(Content-Length:[ \t]*)(\d+)/im, (_, name) => `${name}${Buffer.byteLength(body, 'latin1')}`);
  return Buffer.from(text, 'latin1');
}

for (const rfc of ['4475', '5118']) {
  const outDir = join(root, 'test', 'fixtures', `rfc${rfc}`);
  mkdirSync(outDir, { recursive: true });
  let count = 0;
  for (const { name, data } of tarEntries(archiveOf(readFileSync(join(rfcDir, `rfc${rfc}.txt`), 'latin1')))) {
    const file = basename(name).replace(/\.dat$/, '');
    writeFileSync(join(outDir, `${file}.sip`), rfc === '5118' ? normalize5118(data) : data);
    count++;
  }
  console.log(`rfc${rfc}: ${count} messages -> ${outDir}`);
}
