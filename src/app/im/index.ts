export { CpimError, cpimAddress, cpimHeader, formatCpim, imdnHeaders, IMDN_NAMESPACE, parseCpim, type CpimInit, type CpimMessage } from './cpim.js';
export { formatDeliveryNotification, IMDN_CONTENT_TYPE, parseDeliveryNotification, type DeliveryNotification } from './imdn.js';
