export { DeviceState } from './device-state.js';
export { ClientError, ParleyClient, type ChatMessage, type ClientEvents, type ClientOptions, type SendResult } from './parley-client.js';
