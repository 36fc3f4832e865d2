export { accountHashes, AccountCredentials, DomainAuthenticators } from './accounts.js';
export { DeliveryScheduler, deviceOf, type DeliveryEvents, type DeliveryOptions, type DeviceSender } from './delivery.js';
export { ParleyServer, type ParleyServerEvents, type ParleyServerOptions } from './parley-server.js';
export { ConfigError, databasePath, DEFAULT_CONFIG, DEFAULT_DISCOVERY, readConfigFile, resolveConfig, type DiscoveryConfig, type PeerConfig, type ServerConfig } from './server-config.js';
