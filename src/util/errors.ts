/**
 * The root of every error Parley throws on purpose. Each subclass carries a stable string `code`
 * (documented where the class lives) so callers branch on codes, never on message text.
 */
export class ParleyError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
