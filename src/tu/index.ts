export type { ServerRequest, TransactionUser, TuFilter, UasProfile } from './transaction-user.js';
export { UasCore, type UasCoreOptions } from './uas-core.js';
export { TuSelector, type TuEntry } from './tu-selector.js';
export * from './dum/index.js';
