import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WallClock } from '../wall-clock.js';
import { SqliteStore } from './sqlite-store.js';
import type { Store } from './store.js';

/** The database file inside a data directory (the server and `parley user` open the same one). */
export function databasePath(data: string): string {
  return join(data, 'parley.db');
}

/**
 * The store of a data directory (created when missing), or one in memory for `':memory:'`. The
 * one place that chooses the database: everything above holds a `Store`.
 */
export function openStore(data: string, options: { clock?: WallClock } = {}): Store {
  if (data === ':memory:') return SqliteStore.open(':memory:', options);
  mkdirSync(data, { recursive: true });
  return SqliteStore.open(databasePath(data), options);
}
