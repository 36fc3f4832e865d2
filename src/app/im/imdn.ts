/** RFC 5438 §7.2: the `message/imdn+xml` document a delivery notification carries. */
export const IMDN_CONTENT_TYPE = 'message/imdn+xml';

export interface DeliveryNotification {
  /** The notified message's imdn.Message-ID. */
  messageId: string;
  /** When the notified message was sent (its DateTime). */
  dateTime: Date;
  recipient: string;
  status: 'delivered' | 'failed' | 'forbidden' | 'error';
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
const escapeXml = (text: string): string => text.replace(/[&<>"']/g, (c) => escapes[c]!);
const unescapeXml = (text: string): string =>
  text.replace(/&(amp|lt|gt|quot|apos);/g, (_, name: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[name]!);

/** RFC 5438 §7.2.1.1: a delivery notification document. */
export function formatDeliveryNotification(notification: DeliveryNotification): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<imdn xmlns="urn:ietf:params:xml:ns:imdn">',
    `<message-id>${escapeXml(notification.messageId)}</message-id>`,
    `<datetime>${notification.dateTime.toISOString()}</datetime>`,
    `<recipient-uri>${escapeXml(notification.recipient)}</recipient-uri>`,
    `<original-recipient-uri>${escapeXml(notification.recipient)}</original-recipient-uri>`,
    `<delivery-notification><status><${notification.status}/></status></delivery-notification>`,
    '</imdn>',
    '',
  ].join('\n');
}

/**
 * Reads a delivery notification: the message-id, recipient and status elements of RFC 5438's
 * schema. Not a general XML parser: a document without them (or a display notification) gives
 * undefined.
 */
export function parseDeliveryNotification(xml: string): DeliveryNotification | undefined {
  const element = (name: string): string | undefined => {
    const match = new RegExp(`<(?:[A-Za-z0-9_-]+:)?${name}>([^<]*)</(?:[A-Za-z0-9_-]+:)?${name}>`).exec(xml);
    return match ? unescapeXml(match[1]!.trim()) : undefined;
  };
  const messageId = element('message-id');
  const block = /<(?:[A-Za-z0-9_-]+:)?delivery-notification>([\s\S]*?)<\/(?:[A-Za-z0-9_-]+:)?delivery-notification>/.exec(xml);
  if (messageId === undefined || !block) return undefined;
  const status = /<(?:[A-Za-z0-9_-]+:)?(delivered|failed|forbidden|error)\s*\/>/.exec(block[1]!)?.[1] as DeliveryNotification['status'] | undefined;
  if (!status) return undefined;
  const when = new Date(element('datetime') ?? '');
  return { messageId, dateTime: Number.isNaN(when.getTime()) ? new Date(0) : when, recipient: element('recipient-uri') ?? '', status };
}
