export { ParleyError } from './errors.js';
export { randomToken } from './random.js';
export { Fifo, consumerErrorChannel, type FifoOptions, type Sink } from './fifo.js';
export { IdSequence } from './id-sequence.js';
export { ManualClock, systemClock, type Clock, type TimerHandle } from './clock.js';
