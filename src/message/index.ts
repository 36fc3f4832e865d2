export { SipParseError, type SipParseErrorCode } from './parse-error.js';
export { parseMessage } from './parse-message.js';
export { DEFAULT_LIMITS, type ParseLimits } from './scanner.js';
export { SipMessage } from './sip-message.js';
export { StreamFramer, type FramedItem, type FramerLimits } from './stream-framer.js';
export { SipUri, parseUri, unbracket } from './uri.js';
export { NameAddr, parseNameAddr } from './name-addr.js';
export { Via, parseVia } from './via.js';
export { type Params } from './params.js';
export {
  parseAuthValue,
  parseCSeq,
  parseEvent,
  parseMediaType,
  parseSubscriptionState,
  type AuthValue,
  type CSeq,
  type EventHeader,
  type MediaType,
  type SubscriptionState,
} from './header-values.js';
export { validateMessage, validateReceived, uasVerdict, verdictCode, DEFAULT_BODY_TYPES, KNOWN_METHODS, type ValidationOptions, type Verdict } from './validate.js';
export {
  MAGIC_COOKIE,
  RoutedRequest,
  createCancel,
  createDialogRequest,
  createNonSuccessAck,
  createRequest,
  createResponse,
  decidedNextHop,
  defaultReason,
  generateBranch,
  generateCallId,
  generateTag,
  routeFor,
  type DialogState,
  type RequestInit,
  type ResponseInit,
} from './builder.js';
export { LocalContact, LOCAL_CONTACT_HOST } from './local-contact.js';
export { canonicalHeaderName } from './header-names.js';
