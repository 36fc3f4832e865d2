export * from './client/index.js';
export * from './federation/index.js';
export * from './im/index.js';
export { silentLogger, type Logger } from './logger.js';
export * from './server/index.js';
export * from './store/index.js';
export { epochOffset, systemWallClock, wallClockOf, type WallClock } from './wall-clock.js';
