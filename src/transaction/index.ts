export { timerValues, DEFAULT_TIMERS, TRYING_DELAY_MS, type TimerBase, type TimerValues } from './timers.js';
export { IllegalTransitionError, type TransactionKind } from './transaction.js';
export { InviteClientTransaction, NonInviteClientTransaction, localFailure, type ClientTransactionUser, type LocalFailureCause } from './client-transaction.js';
export { InviteServerTransaction, NonInviteServerTransaction, type ServerTransaction, type ResponseRoute } from './server-transaction.js';
export { TransactionLayer, type InboundRequest, type TransactionUpPort } from './transaction-layer.js';
export { clientKey, serverKey } from './matching.js';
