import { statfsSync } from 'node:fs';
import type { WallClock } from '../wall-clock.js';

/** Free bytes for an unprivileged writer on the file system of `path` (statfs: bavail × bsize). */
export type FreeBytes = (path: string) => number;

const statfsFree: FreeBytes = (path) => {
  const stats = statfsSync(path);
  return Number(stats.bavail) * Number(stats.bsize);
};

export interface DiskFloorOptions {
  /** The data directory (its file system is the one the database grows on). */
  path: string;
  /** Below this many free bytes, `low()` is true. */
  minFreeBytes: number;
  clock: WallClock;
  /** Asks the file system at most this often; default 2,000 ms. */
  intervalMs?: number;
  /** Default statfs; a test gives its own. */
  freeBytes?: FreeBytes;
}

/**
 * The disk floor (issue 16): new messages are refused (503) while the data directory's file
 * system has less than `minFreeBytes` free, so the disk never fills under the database — a full
 * disk would fail commits, and the server would refuse anyway, later and less gracefully. The
 * file system is asked at most every `intervalMs` (a statfs per MESSAGE would cost a syscall
 * each); between two asks the last answer holds. A statfs that fails counts as not low: the
 * commit's own failure (STORE_WRITE_FAILED → 503) still keeps every 202 durable.
 */
export class DiskFloor {
  private checkedAt = -Infinity;
  private isLow = false;
  private readonly intervalMs: number;
  private readonly freeBytes: FreeBytes;
  /** Free bytes at the last ask (undefined before the first, or when it failed). */
  lastFree: number | undefined;

  constructor(private readonly options: DiskFloorOptions) {
    this.intervalMs = options.intervalMs ?? 2000;
    this.freeBytes = options.freeBytes ?? statfsFree;
  }

  low(): boolean {
    const now = this.options.clock.now();
    if (now - this.checkedAt < this.intervalMs) return this.isLow;
    this.checkedAt = now;
    try {
      this.lastFree = this.freeBytes(this.options.path);
      this.isLow = this.lastFree < this.options.minFreeBytes;
    } catch {
      this.lastFree = undefined;
      this.isLow = false;
    }
    return this.isLow;
  }
}
