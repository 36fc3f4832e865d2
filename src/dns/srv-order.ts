import type { DnsRecord } from './dns-client.js';

export type SrvRecord = Extract<DnsRecord, { type: 'SRV' }>;

/**
 * RFC 2782 "Usage rules": lowest priority first; within a priority, repeatedly draw a record with
 * probability proportional to its weight — records of weight 0 are put first in the running sum,
 * so they are chosen only when the draw is 0 ("a very small chance of being selected").
 */
export function orderSrv(records: readonly SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) {
    const group = byPriority.get(r.priority);
    if (group) group.push(r);
    else byPriority.set(r.priority, [r]);
  }
  const ordered: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const left = byPriority.get(priority)!.sort((a, b) => (a.weight === 0 ? 0 : 1) - (b.weight === 0 ? 0 : 1));
    while (left.length > 0) {
      const sum = left.reduce((total, r) => total + r.weight, 0);
      // "a uniform random number between 0 and the sum (inclusive)"
      const draw = Math.floor(random() * (sum + 1));
      let running = 0;
      let chosen = left.length - 1;
      for (let i = 0; i < left.length; i++) {
        running += left[i]!.weight;
        if (running >= draw) {
          chosen = i;
          break;
        }
      }
      ordered.push(left.splice(chosen, 1)[0]!);
    }
  }
  return ordered;
}
