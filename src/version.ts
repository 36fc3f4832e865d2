/**
 * Parley's version, for User-Agent and `parley version`. A constant rather than package.json read
 * at import (the file is not where a bundle or another build layout puts it); a test keeps it equal
 * to package.json's.
 */
export const PARLEY_VERSION = '0.1.0';
