import type { LocationStore as RegistrarLocationStore, StoredBinding } from '../../tu/dum/location-store.js';
import type { LocationStore } from '../store/store.js';

/**
 * The registrar's view of the durable location store. The DUM registrar keeps a binding's end
 * (`expiresAt`) in its stack's clock, which for the system clock counts from the start of the
 * process: kept as such, a binding written before a restart would mean another instant after it
 * (a device registered for 10 minutes late in a long run would look registered for days). So the
 * store keeps wall-clock time (RFC 3261 §10.3 step 7: a binding lasts its expiration interval,
 * whatever became of the server), and this converts on the way in and out.
 *
 * For a clock read as epoch time (a ManualClock in tests) the two are the same and nothing moves.
 * Bindings written by a version that kept clock time read as long expired: their devices register
 * again, as after any restart of a server they reached over a flow.
 */
export class DurableLocations implements RegistrarLocationStore {
  constructor(
    private readonly store: LocationStore,
    /** `epochOffset` of the registrar's clock: a constant, so a binding read and written back keeps its end to the bit. */
    private readonly offset: number,
  ) {}

  get(aor: string): StoredBinding[] {
    return this.store.get(aor).map((binding) => ({ ...binding, expiresAt: binding.expiresAt - this.offset }));
  }

  put(aor: string, bindings: StoredBinding[]): Promise<void> {
    return this.store.put(
      aor,
      bindings.map((binding) => ({ ...binding, expiresAt: binding.expiresAt + this.offset })),
    );
  }
}
