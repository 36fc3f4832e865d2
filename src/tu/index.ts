export type { ServerRequest, TransactionUser, TuFilter } from './transaction-user.js';
export { TuSelector, type TuEntry } from './tu-selector.js';
export * from './dum/index.js';
