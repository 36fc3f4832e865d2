export { ParleyError } from './errors.js';
export { randomToken } from './random.js';
export { Fifo, type Sink } from './fifo.js';
export { ManualClock, systemClock, type Clock, type TimerHandle } from './clock.js';
