// Parley's public API: named exports only. Layers are added here as they land.
export * from './message/index.js';
export { ParleyError } from './util/errors.js';
