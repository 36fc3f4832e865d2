import { expect } from 'chai';
import { RouteTable, type Advertised } from '../../src/app/federation/route-table.js';

/**
 * A synchronous network of route tables: each link carries the advertisement deltas the way
 * the notifier sends them (docs/federation.md "Routing"), until nothing changes. Returns how many
 * advertisements were exchanged, so convergence (and the absence of counting) is measurable.
 */
class Network {
  readonly tables = new Map<string, RouteTable>();
  private readonly links = new Set<string>();
  /** What each side told each neighbour last, per domain. */
  private readonly told = new Map<string, Map<string, string>>();
  messages = 0;

  add(name: string, statics: Record<string, string> = {}): void {
    this.tables.set(name, new RouteTable(name, [name], statics));
  }

  link(a: string, b: string): void {
    this.links.add(key(a, b));
    this.sendFull(a, b);
    this.sendFull(b, a);
    this.settle();
  }

  cut(a: string, b: string): void {
    this.links.delete(key(a, b));
    this.told.delete(`${a}>${b}`);
    this.told.delete(`${b}>${a}`);
    const changedA = this.tables.get(a)!.dropNeighbour(b);
    const changedB = this.tables.get(b)!.dropNeighbour(a);
    this.propagate(a, changedA);
    this.propagate(b, changedB);
    this.settle();
  }

  private queue: Array<() => void> = [];

  private sendFull(from: string, to: string): void {
    const routes = this.tables.get(from)!.fullAdvertisementFor(to);
    const told = new Map(routes.map((r) => [r.domain, r.path!.join(' ')]));
    this.told.set(`${from}>${to}`, told);
    this.queue.push(() => this.deliver(from, to, true, routes));
  }

  private deliver(from: string, to: string, full: boolean, routes: Advertised[]): void {
    if (!this.links.has(key(from, to))) return;
    this.messages++;
    this.propagate(to, this.tables.get(to)!.learn(from, full, routes));
  }

  private propagate(from: string, changed: string[]): void {
    if (changed.length === 0) return;
    const table = this.tables.get(from)!;
    for (const link of this.links) {
      const [x, y] = link.split('|') as [string, string];
      if (x !== from && y !== from) continue;
      const to = x === from ? y : x;
      const told = this.told.get(`${from}>${to}`) ?? new Map<string, string>();
      const delta: Advertised[] = [];
      for (const domain of changed) {
        const ad = table.advertisementFor(to, domain);
        const text = ad.path?.join(' ') ?? '';
        if ((told.get(domain) ?? '') === text) continue;
        if (text === '') told.delete(domain);
        else told.set(domain, text);
        delta.push(ad);
      }
      this.told.set(`${from}>${to}`, told);
      if (delta.length > 0) this.queue.push(() => this.deliver(from, to, false, delta));
    }
  }

  private settle(): void {
    let steps = 0;
    while (this.queue.length > 0) {
      if (++steps > 10_000) throw new Error('did not converge');
      this.queue.shift()!();
    }
  }

  route(at: string, domain: string): string | undefined {
    const best = this.tables.get(at)!.best(domain);
    return best ? `${best.nextHop}:${best.path.join('>')}` : undefined;
  }
}

function key(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

describe('RouteTable (path vectors, docs/federation.md "Routing")', () => {
  it('takes the shortest path, ties to the lower neighbour name', () => {
    const t = new RouteTable('a', ['a']);
    expect(t.learn('c', true, [{ domain: 'x', path: ['c', 'y', 'x'] }])).to.deep.equal(['c', 'x']);
    expect(t.learn('b', true, [{ domain: 'x', path: ['b', 'z', 'x'] }])).to.deep.equal(['b', 'x']);
    expect(t.best('x')).to.deep.equal({ domain: 'x', nextHop: 'b', path: ['b', 'z', 'x'] });
    t.learn('d', true, [{ domain: 'x', path: ['d', 'x'] }]);
    expect(t.best('x')!.nextHop).to.equal('d');
    expect(t.candidates('x').map((r) => r.nextHop)).to.deep.equal(['d', 'b', 'c']);
  });

  it('refuses paths through itself, paths not from the neighbour, repeats, and its own domains', () => {
    const t = new RouteTable('a', ['a', 'a2']);
    t.learn('b', true, [
      { domain: 'x', path: ['b', 'a', 'x'] },
      { domain: 'y', path: ['c', 'y'] },
      { domain: 'z', path: ['b', 'q', 'b', 'z'] },
      { domain: 'a2', path: ['b', 'a2'] },
      { domain: 'w', path: ['b', 'w'] },
    ]);
    expect(t.best('x')).to.equal(undefined);
    expect(t.best('y')).to.equal(undefined);
    expect(t.best('z')).to.equal(undefined);
    expect(t.best('a2')).to.equal(undefined);
    expect(t.routes().map((r) => r.domain)).to.deep.equal(['b', 'w']);
  });

  it('a partial advertisement updates and withdraws; a full one replaces', () => {
    const t = new RouteTable('a', ['a']);
    t.learn('b', true, [
      { domain: 'x', path: ['b', 'x'] },
      { domain: 'y', path: ['b', 'y'] },
    ]);
    expect(t.learn('b', false, [{ domain: 'x', path: undefined }])).to.deep.equal(['x']);
    expect(t.best('x')).to.equal(undefined);
    expect(t.best('y')!.path).to.deep.equal(['b', 'y']);
    expect(t.learn('b', true, [{ domain: 'z', path: ['b', 'z'] }])).to.deep.equal(['y', 'z']);
    expect(t.routes().map((r) => r.domain)).to.deep.equal(['b', 'z']);
  });

  it('advertises its own domains, its routes with itself first, and withdraws to the next hop (split horizon, poisoned reverse)', () => {
    const t = new RouteTable('a', ['a']);
    t.learn('b', true, [{ domain: 'x', path: ['b', 'x'] }]);
    t.learn('c', true, []);
    expect(t.advertisementFor('c', 'x')).to.deep.equal({ domain: 'x', path: ['a', 'b', 'x'] });
    expect(t.advertisementFor('b', 'x')).to.deep.equal({ domain: 'x', path: undefined });
    expect(t.advertisementFor('b', 'a')).to.deep.equal({ domain: 'a', path: ['a'] });
    expect(t.fullAdvertisementFor('b')).to.deep.equal([
      { domain: 'a', path: ['a'] },
      { domain: 'c', path: ['a', 'c'] },
    ]);
  });

  it('a neighbour going down withdraws its routes, and the next best takes over', () => {
    const t = new RouteTable('a', ['a']);
    t.learn('b', true, [{ domain: 'x', path: ['b', 'x'] }]);
    t.learn('c', true, [{ domain: 'x', path: ['c', 'd', 'x'] }]);
    expect(t.dropNeighbour('b')).to.deep.equal(['b', 'x']);
    expect(t.best('x')).to.deep.equal({ domain: 'x', nextHop: 'c', path: ['c', 'd', 'x'] });
    expect(t.dropNeighbour('c')).to.deep.equal(['c', 'x']);
    expect(t.best('x')).to.equal(undefined);
    // Once reachable, still known: a MESSAGE for it waits instead of getting 404.
    expect(t.isKnown('x')).to.equal(true);
    expect(t.isKnown('never')).to.equal(false);
    expect(t.dropNeighbour('c')).to.deep.equal([]);
  });

  it('static routes are used only without a learned route, only while their neighbour is up, and never advertised', () => {
    const t = new RouteTable('a', ['a'], { x: 'b' });
    expect(t.best('x')).to.equal(undefined);
    expect(t.isKnown('x')).to.equal(true);
    expect(t.learn('b', true, [])).to.deep.equal(['b', 'x']);
    expect(t.best('x')).to.deep.equal({ domain: 'x', nextHop: 'b', path: ['b'], static: true });
    expect(t.advertisementFor('c', 'x').path).to.equal(undefined);
    t.learn('c', true, [{ domain: 'x', path: ['c', 'x'] }]);
    expect(t.best('x')!.nextHop).to.equal('c');
    expect(t.candidates('x').map((r) => `${r.nextHop}${r.static ? '(static)' : ''}`)).to.deep.equal(['c', 'b(static)']);
    t.dropNeighbour('b');
    t.dropNeighbour('c');
    expect(t.best('x')).to.equal(undefined);
  });

  describe('a network of tables', () => {
    it('a line A–B–C converges to 2-hop routes end to end', () => {
      const n = new Network();
      for (const s of ['a', 'b', 'c']) n.add(s);
      n.link('a', 'b');
      n.link('b', 'c');
      expect(n.route('a', 'c')).to.equal('b:b>c');
      expect(n.route('c', 'a')).to.equal('b:b>a');
      expect(n.route('b', 'a')).to.equal('a:a');
    });

    it('a ring A–B–C–D–A takes shortest paths, reroutes around a cut, and comes back when it heals', () => {
      const n = new Network();
      for (const s of ['a', 'b', 'c', 'd']) n.add(s);
      n.link('a', 'b');
      n.link('b', 'c');
      n.link('c', 'd');
      n.link('d', 'a');
      expect(n.route('a', 'b')).to.equal('b:b');
      expect(n.route('a', 'c')).to.equal('b:b>c'); // b < d on a tie
      expect(n.route('a', 'd')).to.equal('d:d');
      // B goes down: both of its links are cut.
      n.cut('a', 'b');
      n.cut('b', 'c');
      expect(n.route('a', 'c')).to.equal('d:d>c');
      expect(n.route('a', 'b')).to.equal(undefined);
      expect(n.route('c', 'a')).to.equal('d:d>a');
      n.link('a', 'b');
      n.link('b', 'c');
      expect(n.route('a', 'b')).to.equal('b:b');
      expect(n.route('a', 'c')).to.equal('b:b>c');
    });

    it('does not count to infinity: a domain cut off from a mesh is withdrawn everywhere in a bounded number of messages', () => {
      const n = new Network();
      for (const s of ['a', 'b', 'c', 'x']) n.add(s);
      n.link('a', 'b');
      n.link('b', 'c');
      n.link('a', 'c');
      n.link('c', 'x');
      expect(n.route('a', 'x')).to.equal('c:c>x');
      n.messages = 0;
      n.cut('c', 'x');
      for (const s of ['a', 'b', 'c']) expect(n.route(s, 'x'), s).to.equal(undefined);
      // Distance vectors without split horizon would bounce x between a, b and c up to "infinity".
      expect(n.messages).to.be.at.most(6);
    });
  });
});
