export { DnsClient, RCODE, type DnsClientOptions, type DnsRecord, type DnsReply, type RecordType } from './dns-client.js';
export { DnsError, type DnsErrorCode } from './dns-error.js';
export { DnsStub, type DnsStubOptions, type RecordSet } from './dns-stub.js';
export { decodeNaptr, encodeNaptr, NAPTR_TYPE, type NaptrRecord } from './naptr-record.js';
export { SipResolver, type ResolverOptions, type SipTarget } from './sip-resolver.js';
export { orderSrv } from './srv-order.js';
export { parseNameserver, readHostsFile, readResolvConf, type HostsTable, type Nameserver, type ResolvConf } from './system-files.js';
export { TargetList } from './target-list.js';
export { TargetMarks, type Mark, type SipTransport, type TargetMarksOptions, type TargetTuple } from './target-marks.js';
