import { formatParams } from './params.js';

/**
 * A Contact that names this UA at an address only the transport layer knows (RFC 3261 §8.1.1.8:
 * "the Contact header field… contains a SIP or SIPS URI that can be used to contact that specific
 * instance of the UA"; which host, port and transport depends on the transport a message goes out
 * on). Put into a message as the Contact (`addHeader('Contact', localContact)` or a builder's
 * `contact`), it sets the message's typed `contactFillIn` flag, and the transport selector writes
 * its advertised host, port and transport into the first Contact each time it sends the message.
 * Until then the Contact reads `sip:user@fill-in.invalid` (RFC 2606: a name that can never resolve),
 * so an unfilled one cannot be mistaken for a real address.
 */
export class LocalContact {
  constructor(
    /** The user part (the AOR's user), if any. */
    readonly user: string | undefined,
    /** Contact parameters: +sip.instance, reg-id, expires… */
    readonly params: Readonly<Record<string, string | null>> = {},
  ) {}

  toString(): string {
    return `<sip:${this.user !== undefined ? `${this.user}@` : ''}${LOCAL_CONTACT_HOST}>${formatParams({ ...this.params })}`;
  }
}

/** What an unfilled LocalContact carries as its host: only ever a placeholder, never the flag. */
export const LOCAL_CONTACT_HOST = 'fill-in.invalid';
