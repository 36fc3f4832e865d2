export { accountHashes, AccountCredentials, DomainAuthenticators, type DomainAuthenticatorOptions } from './accounts.js';
export { DeliveryScheduler, deviceOf, RELAY, RELAY_CURSOR, type CourierSender, type CourierTarget, type DeliveryEvents, type DeliveryLog, type DeliveryOptions, type DeviceTarget, type RelayTarget } from './delivery.js';
export { ParleyServer, type ParleyServerEvents, type ParleyServerOptions } from './parley-server.js';
export { ConfigError, databasePath, DEFAULT_CONFIG, DEFAULT_DISCOVERY, readConfigFile, resolveConfig, type DiscoveryConfig, type PeerConfig, type ServerConfig } from './server-config.js';
export { INTAKE_STEPS, runIntake, type IntakeContext, type IntakeServer, type IntakeStep, type IntakeStepName, type StepOutcome } from './intake.js';
export { DurableLocations } from './durable-locations.js';
