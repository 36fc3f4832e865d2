import type { TransportProtocol } from '../../transport/types.js';

/** A binding as a registrar keeps it (RFC 3261 §10.3 step 7: with the Call-ID and CSeq that set it). */
export interface StoredBinding {
  /** The Contact URI. */
  contact: string;
  /** When it ends, in clock milliseconds. */
  expiresAt: number;
  callId: string;
  cseq: number;
  q?: number;
  /** RFC 5626 §4.1 +sip.instance, unquoted (`urn:uuid:…`). */
  instance?: string;
  /** RFC 5626 §4.2 reg-id. */
  regId?: number;
  /** RFC 3327 Path values, in order. */
  path?: string[];
  /** Where the REGISTER came from: the flow to reach the device on (RFC 5626 §6). */
  flow?: { protocol: TransportProtocol; address: string; port: number; connectionId?: number };
  /** The Contact's parameters as registered (without expires). */
  params: Record<string, string | null>;
}

/**
 * Where a registrar keeps bindings. `put` replaces an AOR's whole set in one step, which is how
 * §10.3's "all binding updates… committed if and only if all… succeed" stays true for any store.
 * The registrar serialises requests per AOR, so a store needs no locking of its own.
 */
export interface LocationStore {
  /** The AOR's bindings; expired ones may still be there (the registrar filters by time). */
  get(aor: string): StoredBinding[] | Promise<StoredBinding[]>;
  /** Replaces the AOR's bindings; `[]` removes the AOR. */
  put(aor: string, bindings: StoredBinding[]): void | Promise<void>;
}

/** Bindings in memory: for tests and for servers that need not survive a restart. */
export class MemoryLocationStore implements LocationStore {
  private readonly byAor = new Map<string, StoredBinding[]>();

  get(aor: string): StoredBinding[] {
    return (this.byAor.get(aor) ?? []).map(copyBinding);
  }

  put(aor: string, bindings: StoredBinding[]): void {
    if (bindings.length === 0) this.byAor.delete(aor);
    else this.byAor.set(aor, bindings.map(copyBinding));
  }

  /** Every AOR with bindings. */
  aors(): string[] {
    return [...this.byAor.keys()];
  }
}

function copyBinding(binding: StoredBinding): StoredBinding {
  const copy: StoredBinding = { ...binding, params: { ...binding.params } };
  if (binding.path) copy.path = [...binding.path];
  if (binding.flow) copy.flow = { ...binding.flow };
  return copy;
}
