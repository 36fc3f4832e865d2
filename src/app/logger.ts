/**
 * Where the Parley server and client say what happened (registrations, stored, delivered,
 * failures). Library code never prints; the CLI passes a logger that does.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const silentLogger: Logger = Object.freeze({
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
});
