export * from './documents.js';
export * from './federation.js';
export * from './peer-link.js';
export * from './route-table.js';
export * from './discovery.js';
