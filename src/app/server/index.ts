export { accountHashes, AccountCredentials, DomainAuthenticators } from './accounts.js';
export { DeliveryScheduler, deviceOf, type DeliveryEvents, type DeliveryOptions, type DeviceSender } from './delivery.js';
export { ParleyServer, type ParleyServerEvents, type ParleyServerOptions } from './parley-server.js';
export { ConfigError, databasePath, DEFAULT_CONFIG, readConfigFile, resolveConfig, type ServerConfig } from './server-config.js';
