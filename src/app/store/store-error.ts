import { ParleyError } from '../../util/errors.js';

/**
 * What the store refuses or fails to do. Codes: `STORE_ACCOUNT_EXISTS`, `STORE_NO_ACCOUNT`,
 * `STORE_BAD_ADDRESS` (an AOR that is not `sip:user@domain`), `STORE_WRITE_FAILED` (a commit
 * failed: nothing in it was acknowledged), `STORE_CLOSED`.
 */
export class StoreError extends ParleyError {}
