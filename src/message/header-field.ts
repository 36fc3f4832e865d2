import type { HeaderDef } from './header-names.js';

/**
 * One header field: a line (with its folds) of a parsed message, or a field added by code.
 * The scanner creates these directly; a parsed field keeps its byte range and serializes from the
 * original bytes until it is changed.
 */
export class HeaderField {
  /** Decoded, unfolded value; filled on first read for parsed fields. */
  text: string | undefined;
  /** The grammar-parsed value(s), filled on first typed access. */
  parsed: unknown = undefined;
  /** True once the field must be written from `text` instead of its original bytes. */
  dirty: boolean;

  constructor(
    /** Lowercase full name (compact forms expanded): what every lookup compares. */
    readonly key: string,
    readonly def: HeaderDef | undefined,
    /** The name written when the field is encoded. */
    readonly name: string,
    /** The whole field, folds and line break included, in the source bytes (-1 for new fields). */
    readonly lineStart: number,
    readonly lineEnd: number,
    /** The value, white space trimmed; may span folds. */
    readonly valueStart: number,
    readonly valueEnd: number,
    readonly folded: boolean,
    text: string | undefined,
  ) {
    this.text = text;
    this.dirty = lineStart < 0;
  }
}
