export { ParleyError } from './errors.js';
export { randomToken } from './random.js';
