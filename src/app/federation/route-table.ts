/** A way to a domain: the neighbour to hand it to, and the servers from that neighbour to the domain's home. */
export interface Route {
  domain: string;
  nextHop: string;
  /** `[nextHop, …, home]`: its length is the hop count. */
  path: string[];
  /** From configuration (`routes`), not learned. */
  static?: boolean;
}

/** One line of an advertisement: a domain and the path from the advertiser, or its withdrawal. */
export interface Advertised {
  domain: string;
  /** Undefined: withdrawn (no route, or poisoned reverse). */
  path: string[] | undefined;
}

/**
 * The path-vector routing table (docs/federation.md "Routing"). Each neighbour that is up tells
 * us, per domain, the path from itself to the domain's home; we take the shortest path that
 * does not pass through us (a path holding our own name is a loop and is never taken, so the
 * table cannot count to infinity), and advertise ours to each neighbour with split horizon and
 * poisoned reverse.
 */
export class RouteTable {
  /** What each neighbour that is up advertised: domain → path (starting with the neighbour). */
  private readonly learned = new Map<string, Map<string, string[]>>();
  /** The best route per domain, as last computed (to report changes). */
  private readonly chosen = new Map<string, Route>();
  /** Every domain ever reachable while we run: a MESSAGE for one waits rather than getting 404. */
  private readonly knownDomains = new Set<string>();
  private readonly local: Set<string>;

  constructor(
    readonly self: string,
    localDomains: readonly string[],
    private readonly staticRoutes: Readonly<Record<string, string>> = {},
    /** Neighbours we configured (docs/federation.md "Routing": preferred over learned ones). */
    private readonly preferred: (neighbour: string) => boolean = () => false,
  ) {
    this.local = new Set(localDomains);
    for (const domain of Object.keys(staticRoutes)) this.knownDomains.add(domain);
  }

  isLocal(domain: string): boolean {
    return this.local.has(domain);
  }

  /** Reachable now, or reachable once while we run, or statically routed. */
  isKnown(domain: string): boolean {
    return this.knownDomains.has(domain) || this.chosen.has(domain);
  }

  /**
   * A neighbour's advertisement. `full` replaces what it said before; otherwise `routes` and
   * `withdrawn` update it. Entries that are not a path from that neighbour, or that pass through
   * us, or name one of our own domains, are ignored. Returns the domains whose best route changed.
   */
  learn(neighbour: string, full: boolean, routes: readonly Advertised[]): string[] {
    let table = this.learned.get(neighbour);
    const touched = new Set<string>();
    if (!table || full) {
      for (const domain of table?.keys() ?? []) touched.add(domain);
      table = new Map();
      this.learned.set(neighbour, table);
    }
    for (const { domain, path } of routes) {
      touched.add(domain);
      if (path === undefined || !this.acceptable(neighbour, domain, path)) table.delete(domain);
      else table.set(domain, [...path]);
    }
    // The neighbour itself: reachable in one hop whatever it advertised.
    touched.add(neighbour);
    return this.recompute(this.withStaticVia(neighbour, touched));
  }

  /** A neighbour went down (or its link was refused): everything through it is withdrawn. */
  dropNeighbour(neighbour: string): string[] {
    const table = this.learned.get(neighbour);
    if (!table) return [];
    this.learned.delete(neighbour);
    return this.recompute(this.withStaticVia(neighbour, new Set([...table.keys(), neighbour])));
  }

  /** Neighbours whose advertisements are in the table (the links that are up). */
  get neighbours(): string[] {
    return [...this.learned.keys()];
  }

  /**
   * The best route to a domain: the neighbour itself, else through a configured neighbour before
   * an unconfigured one; then the shortest path, ties to the lower neighbour name.
   */
  best(domain: string): Route | undefined {
    return this.chosen.get(domain);
  }

  /**
   * Every way to a domain, best first (the next best is used when a hop fails, seed 000:
   * "avoiding the servers that we already sent to"): learned routes, then the static one.
   */
  candidates(domain: string): Route[] {
    const routes: Route[] = [];
    for (const [neighbour, table] of this.learned) {
      const path = table.get(domain) ?? (neighbour === domain ? [neighbour] : undefined);
      if (path) routes.push({ domain, nextHop: neighbour, path });
    }
    routes.sort((a, b) => this.rank(a) - this.rank(b) || compareRoutes(a, b));
    const via = this.staticRoutes[domain];
    if (via !== undefined && this.learned.has(via) && !routes.some((r) => r.nextHop === via)) routes.push({ domain, nextHop: via, path: [via], static: true });
    return routes;
  }

  /** Every domain with a route (not our own), sorted. */
  routes(): Route[] {
    return [...this.chosen.values()].sort((a, b) => a.domain.localeCompare(b.domain));
  }

  /**
   * What we tell neighbour `to` about `domain`: our own domains with path `[self]`; another
   * domain with `[self, …best path]`, unless that path goes through `to` (split horizon) — then
   * it is withdrawn for `to` (poisoned reverse). Static routes are not advertised.
   */
  advertisementFor(to: string, domain: string): Advertised {
    if (this.local.has(domain)) return { domain, path: [this.self] };
    const best = this.chosen.get(domain);
    if (!best || best.static || best.path.includes(to)) return { domain, path: undefined };
    return { domain, path: [this.self, ...best.path] };
  }

  /** The whole advertisement for `to`: our domains and every route not through `to`. */
  fullAdvertisementFor(to: string): Advertised[] {
    const domains = [...this.local, ...this.chosen.keys()];
    return domains.map((d) => this.advertisementFor(to, d)).filter((a) => a.path !== undefined);
  }

  /**
   * Trust before length (issue 16): 0 — the neighbour itself (its name is what its digest
   * proved); 1 — a route through a configured neighbour; 2 — through one that linked in with
   * the network's secret (inbound, discovered).
   */
  private rank(route: Route): number {
    if (route.domain === route.nextHop) return 0;
    return this.preferred(route.nextHop) ? 1 : 2;
  }

  /** Everything chosen again (which neighbours are preferred changed). Returns the domains whose best changed. */
  reconsider(): string[] {
    const domains = new Set<string>(this.chosen.keys());
    for (const table of this.learned.values()) for (const domain of table.keys()) domains.add(domain);
    for (const neighbour of this.learned.keys()) domains.add(neighbour);
    return this.recompute(domains);
  }

  /** Static routes through `neighbour` change with its link. */
  private withStaticVia(neighbour: string, domains: Set<string>): Set<string> {
    for (const [domain, via] of Object.entries(this.staticRoutes)) if (via === neighbour) domains.add(domain);
    return domains;
  }

  private acceptable(neighbour: string, domain: string, path: readonly string[]): boolean {
    if (this.local.has(domain)) return false;
    if (path.length === 0 || path[0] !== neighbour) return false;
    // A path through us is a loop (path vector: never taken, never counted up to infinity).
    if (path.includes(this.self)) return false;
    return new Set(path).size === path.length;
  }

  private recompute(domains: Set<string>): string[] {
    const changed: string[] = [];
    for (const domain of domains) {
      if (this.local.has(domain)) continue;
      const learnedRoutes = this.candidates(domain).filter((r) => !r.static);
      const next = learnedRoutes[0] ?? this.candidates(domain)[0];
      const previous = this.chosen.get(domain);
      if (next) {
        this.chosen.set(domain, next);
        if (!next.static) this.knownDomains.add(domain);
      } else this.chosen.delete(domain);
      if (!sameRoute(previous, next)) changed.push(domain);
    }
    return changed.sort();
  }
}

function compareRoutes(a: Route, b: Route): number {
  return a.path.length - b.path.length || (a.nextHop < b.nextHop ? -1 : a.nextHop > b.nextHop ? 1 : 0);
}

function sameRoute(a: Route | undefined, b: Route | undefined): boolean {
  if (!a || !b) return a === b;
  return a.nextHop === b.nextHop && a.path.join(' ') === b.path.join(' ');
}
