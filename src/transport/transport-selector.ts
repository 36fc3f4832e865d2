import { isIP } from 'node:net';
import type { SipResolver } from '../dns/sip-resolver.js';
import { SipParseError } from '../message/parse-error.js';
import type { SipMessage } from '../message/sip-message.js';
import { unbracket } from '../message/uri.js';
import type { Via } from '../message/via.js';
import type { NameAddr } from '../message/name-addr.js';
import { sentByOf, type SentBy } from './sent-by.js';
import { defaultPort, family, formatHostPort, isProtocol } from './address.js';
import { TransportError } from './transport-error.js';
import type { Transport, TransportProtocol, Tuple } from './types.js';

/** Where to send a request. */
export interface Target extends Tuple {
  /** RFC 3261 §18.1.1: may a large UDP request move to TCP? Default true; false when the target
   *  named its transport explicitly and must be honoured. */
  readonly allowTcpSwitch?: boolean;
  /**
   * RFC 5626 §5.3: the connection id of the flow a device registered over. The request goes on
   * that connection only — never a new one to the same address (behind a NAT it would not reach
   * the device) — and fails with TRANSPORT_FLOW_FAILED when it is gone.
   */
  readonly flow?: number;
  /**
   * RFC 5922 §7.3: the SIP domain a TLS server must prove in its certificate — the host of the
   * URI the request was routed by (first Route or Request-URI), before DNS. The stack sets it;
   * other transports ignore it.
   */
  readonly tlsDomain?: string;
}

/** A message on the wire: its bytes are kept so a retransmission never serializes again. */
export interface Sent {
  readonly bytes: Buffer;
  readonly transport: Transport;
  readonly target: Tuple;
  readonly connectionId: number | undefined;
  readonly tid: string | undefined;
}

/** RFC 3261 §18.1.1: above this a request goes over a congestion-controlled transport. */
export const UDP_SIZE_LIMIT = 1300;


/**
 * Chooses a transport for each message and gets it onto the wire (reSIProcate's
 * TransportSelector): fills in what only the transport layer knows (the top Via's sent-by and
 * transport, a Contact left for it), serializes once, and answers responses per RFC 3261 §18.2.2.
 */
export class TransportSelector {
  private readonly transports: Transport[];
  /** What each transport was told to advertise (`--advertise-host`), by transport. */
  private readonly advertised = new Map<Transport, { host: string; port: number | undefined }>();
  /** Each transport's sent-by, worked out on first use (a transport knows its port once started). */
  private readonly sentBys = new Map<Transport, SentBy>();
  /** RFC 3263 §5 for responses whose first destination failed or is a host name. */
  resolver: SipResolver | undefined;

  constructor(options: { transports: Transport[] }) {
    this.transports = [...options.transports];
  }

  /** Adds a started transport; `advertise` is the host (and port) others reach it at, when not its bound address. */
  add(transport: Transport, advertise?: { host: string; port: number | undefined }): void {
    this.transports.push(transport);
    if (advertise) this.advertised.set(transport, advertise);
  }

  /** What `transport` writes as its sent-by (Via) and in Contacts it fills: never a wildcard address. */
  sentBy(transport: Transport): SentBy {
    let sentBy = this.sentBys.get(transport);
    if (!sentBy) this.sentBys.set(transport, (sentBy = sentByOf(transport, this.advertised.get(transport))));
    return sentBy;
  }

  /**
   * RFC 3261 §18.1.2: "If the value of the 'sent-by' parameter in that header field value does
   * not correspond to a value that the client transport is configured to insert into requests,
   * the response MUST be silently discarded." True when the top Via names one of ours.
   */
  isOwnSentBy(via: Via): boolean {
    const host = unbracket(via.host).toLowerCase();
    for (const transport of this.transports) {
      const own = this.sentBy(transport);
      if (own.host.toLowerCase() !== host) continue;
      if ((via.port ?? defaultPort(transport.protocol)) === own.port) return true;
    }
    return false;
  }

  /** A transport for `protocol` whose address family matches `address`. */
  find(protocol: TransportProtocol, address: string): Transport | undefined {
    const wanted = family(address);
    return (
      this.transports.find((t) => t.protocol === protocol && family(t.local.address) === wanted) ??
      // A host name resolves later (by the socket): any transport of the protocol will do.
      (/[a-z]/i.test(address) && !address.includes(':') ? this.transports.find((t) => t.protocol === protocol) : undefined)
    );
  }

  /**
   * Sends a request (RFC 3261 §18.1.1): the top Via gets this transport's protocol and sent-by
   * (the branch, set by the transaction layer, is kept), a Contact marked ours is filled in,
   * and a UDP request over 1300 bytes goes over TCP instead unless the target forbids it.
   */
  async transmit(request: SipMessage, target: Target, tid?: string): Promise<Sent> {
    if (target.flow !== undefined) return this.transmitOnFlow(request, target, target.flow, tid);
    let protocol = target.protocol;
    let transport = this.require(protocol, target);
    let bytes = this.prepare(request, transport);
    if (protocol === 'udp' && bytes.length > UDP_SIZE_LIMIT && target.allowTcpSwitch !== false) {
      // "…it MUST be sent using an RFC 2914 congestion controlled transport protocol, such as
      // TCP. If this causes a change in the transport protocol from the one indicated in the top
      // Via, the value in the top Via MUST be changed."
      const tcp = this.find('tcp', target.address);
      if (tcp) {
        protocol = 'tcp';
        transport = tcp;
        bytes = this.prepare(request, transport);
      }
    }
    const to: Tuple = { protocol, address: target.address, port: target.port, ...(target.tlsDomain === undefined ? {} : { tlsDomain: target.tlsDomain }) };
    const connectionId = await transport.send(bytes, to, tid);
    return { bytes, transport, target: to, connectionId, tid };
  }

  /**
   * RFC 5626 §5.3: "the proxy MUST forward the request over the flow"; "If the flow has failed,
   * the proxy MUST return a 430 (Flow Failed) response" — the client transaction turns the
   * TRANSPORT_FLOW_FAILED thrown here into that 430. No size switch: the flow is the only way.
   */
  private async transmitOnFlow(request: SipMessage, target: Target, flow: number, tid: string | undefined): Promise<Sent> {
    const transport = this.transports.find((t) => t.protocol === target.protocol && t.hasConnection(flow));
    if (!transport) throw new TransportError('TRANSPORT_FLOW_FAILED', `the ${target.protocol} flow ${flow} to ${formatHostPort(target.address, target.port)} is gone`, target);
    const bytes = this.prepare(request, transport);
    let connectionId: number;
    try {
      connectionId = await transport.sendOnConnection(flow, bytes, tid);
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      throw new TransportError('TRANSPORT_FLOW_FAILED', `the ${target.protocol} flow ${flow} failed: ${error.message}`, target);
    }
    return { bytes, transport, target: { protocol: target.protocol, address: target.address, port: target.port }, connectionId, tid };
  }

  /**
   * Sends a response where RFC 3261 §18.2.2 says: back on the connection the request came in on
   * while it is open; else to the top Via's `maddr`; else to `received` (or the sent-by host) at
   * `rport` (or the sent-by port, or the default port), over the Via's transport.
   */
  async respond(response: SipMessage, to: { source: Tuple; connectionId?: number | undefined }, tid?: string): Promise<Sent> {
    const source = to.source;
    // A TU's Contact left for us (a dialog-creating 2xx) names the transport the request came on.
    if (response.hasHeader('contact')) {
      const arrivedOn = this.transports.find((t) => t.protocol === source.protocol);
      if (arrivedOn) this.fillContact(response, arrivedOn);
    }
    const bytes = response.toBuffer();
    if (to.connectionId !== undefined) {
      const transport = this.transports.find((t) => t.protocol === source.protocol && t.hasConnection(to.connectionId!));
      if (transport) {
        const connectionId = await transport.sendOnConnection(to.connectionId, bytes, tid);
        return { bytes, transport, target: source, connectionId, tid };
      }
    }
    const via = readableTopVia(response);
    const target = responseTarget(via, source);
    const resolver = this.resolver;
    if (resolver && via && isIP(target.address) === 0) {
      // A maddr or sent-by that is a host name: look it up (RFC 3263 §5) instead of the OS.
      const sent = await this.respondToResolved(bytes, resolver, via, target, tid, false);
      if (sent) return sent;
      throw new TransportError('TRANSPORT_UNREACHABLE', `no address for ${formatHostPort(target.address, target.port)}`, target);
    }
    try {
      const transport = this.require(target.protocol, target);
      const connectionId = await transport.send(bytes, target, tid);
      return { bytes, transport, target, connectionId, tid };
    } catch (error) {
      // RFC 3263 §5: when sending to that location fails, the server "examines the value of the
      // sent-by construction in the topmost Via header" and tries each of its targets in turn.
      if (!(error instanceof TransportError) || !resolver || !via) throw error;
      const sent = await this.respondToResolved(bytes, resolver, via, target, tid, true);
      if (sent) return sent;
      throw error;
    }
  }

  /** Tries each RFC 3263 §5 target for a response (not `tried` again); undefined when all fail. */
  private async respondToResolved(
    bytes: Buffer,
    resolver: SipResolver,
    via: Via,
    tried: Tuple,
    tid: string | undefined,
    skipTried: boolean,
  ): Promise<Sent | undefined> {
    const list =
      via.maddr !== undefined
        ? (await resolver.lookupAddresses(unbracket(via.maddr))).map((address) => ({ transport: tried.protocol, address, port: tried.port }))
        : await resolver.resolveResponse(via).all();
    for (const next of list) {
      if (skipTried && next.transport === tried.protocol && next.address === tried.address && next.port === tried.port) continue;
      const target: Tuple = { protocol: next.transport, address: next.address, port: next.port };
      try {
        const transport = this.require(target.protocol, target);
        const connectionId = await transport.send(bytes, target, tid);
        return { bytes, transport, target, connectionId, tid };
      } catch (error) {
        if (!(error instanceof TransportError)) throw error;
      }
    }
    return undefined;
  }

  /** Sends the same bytes again (the transaction layer's retransmissions). */
  async retransmit(sent: Sent): Promise<void> {
    if (sent.connectionId !== undefined && sent.transport.hasConnection(sent.connectionId)) {
      await sent.transport.sendOnConnection(sent.connectionId, sent.bytes, sent.tid);
    } else await sent.transport.send(sent.bytes, sent.target, sent.tid);
  }

  private require(protocol: TransportProtocol, target: Tuple): Transport {
    const transport = this.find(protocol, target.address);
    if (!transport) {
      throw new TransportError('TRANSPORT_NO_TRANSPORT', `no ${protocol} transport for ${formatHostPort(target.address, target.port)}`, target);
    }
    return transport;
  }

  /** Fills in the transport-dependent parts of a request and serializes it. */
  private prepare(request: SipMessage, transport: Transport): Buffer {
    const sentBy = this.sentBy(transport);
    const host = hostOf(sentBy.host);
    const transportName = transport.protocol.toUpperCase();
    if (request.via.length > 0) {
      const top = request.via[0]!;
      if (top.transport !== transportName || top.host !== host || top.port !== sentBy.port) {
        request.update<Via>('via', 0, (via) => {
          via.transport = transportName;
          via.host = host;
          via.port = sentBy.port;
        });
      }
    }
    this.fillContact(request, transport);
    return request.toBuffer();
  }

  /**
   * A message whose Contact is ours (its typed `contactFillIn` flag, set by a LocalContact) gets
   * the sent-by and transport it goes out on in its first Contact — each time it is sent, so a
   * request that fails over to another transport names the new one. Only the transport layer
   * knows them (RFC 3261 §8.1.1.8).
   */
  private fillContact(message: SipMessage, transport: Transport): void {
    if (!message.contactFillIn || !message.hasHeader('contact') || message.wildcardContact) return;
    const sentBy = this.sentBy(transport);
    const host = hostOf(sentBy.host);
    const param = transport.protocol === 'udp' ? undefined : transport.protocol;
    const uri = message.contact[0]?.uri;
    if (!uri || (uri.host === host && uri.port === sentBy.port && uri.params.transport === param)) return;
    message.update<NameAddr>('contact', 0, (contact) => {
      contact.uri.host = host;
      contact.uri.port = sentBy.port;
      if (param === undefined) delete contact.uri.params.transport;
      else contact.uri.params.transport = param;
    });
  }
}

/** RFC 3261 §18.2.2 and RFC 3581 §4: where a response goes when there is no connection to use. */
export function responseTarget(via: Via | undefined, source: Tuple): Tuple {
  if (!via) return source;
  const named = via.transport.toLowerCase();
  const protocol: TransportProtocol = isProtocol(named) ? named : source.protocol;
  const maddr = via.maddr;
  if (maddr) return { protocol, address: unbracket(maddr), port: via.port ?? defaultPort(protocol) };
  const address = unbracket(via.received ?? via.host);
  // RFC 3581 §4: rport redirects responses over unreliable transports only; over a reliable one
  // whose connection is gone, §18.2.2 connects to received at the sent-by port.
  const rport = protocol === 'udp' ? via.rport : undefined;
  const port = typeof rport === 'number' ? rport : (via.port ?? defaultPort(protocol));
  return { protocol, address, port };
}

/** The top Via, or undefined when it cannot be read (a 400 for a broken Via goes to the source). */
function readableTopVia(response: SipMessage): Via | undefined {
  try {
    return response.via[0];
  } catch (error) {
    if (error instanceof SipParseError) return undefined;
    throw error;
  }
}

function hostOf(address: string): string {
  return family(address) === 6 ? `[${address}]` : address;
}
