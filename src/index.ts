// Parley's public API: named exports only. Layers are added here as they land.
export * from './message/index.js';
export * from './transport/index.js';
export * from './transaction/index.js';
export * from './tu/index.js';
export * from './dns/index.js';
export { SipStack, targetOf, type FlowEnded, type ListenSpec, type SipStackOptions } from './stack.js';
export { OutgoingRequest, type ClientRequest } from './outgoing-request.js';
export { ParleyError } from './util/errors.js';
export {
  Fifo,
  IdSequence,
  consumerErrorChannel,
  ManualClock,
  systemClock,
  type Clock,
  type Sink,
  type TimerHandle,
} from './util/index.js';
export { TimerQueue } from './util/timer-queue.js';
export { TimeLimitFifo } from './util/time-limit-fifo.js';
export * from './app/index.js';
