// Parley's public API: named exports only. Layers are added here as they land.
export * from './message/index.js';
export * from './transport/index.js';
export { ParleyError } from './util/errors.js';
export { Fifo, ManualClock, systemClock, type Clock, type Sink, type TimerHandle } from './util/index.js';
