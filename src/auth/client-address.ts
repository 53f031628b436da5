import ipaddr from 'ipaddr.js';
import type { Request } from 'express';

/**
 * The client a request counts against for per-address limits. An IPv6 client usually holds a whole
 * /64 (one customer's prefix) and can rotate through it freely, so IPv6 addresses count by their
 * /64; an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack socket reports) counts as
 * the IPv4 address it is.
 */
export function clientAddress(req: Pick<Request, 'ip' | 'socket'>): string {
  const raw = req.ip ?? req.socket?.remoteAddress;
  if (!raw) return 'unknown';
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.parse(raw);
  } catch {
    return raw;
  }
  if (address.kind() === 'ipv4') return address.toString();
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  const prefix = new ipaddr.IPv6([...v6.parts.slice(0, 4), 0, 0, 0, 0]);
  return `${prefix.toString()}/64`;
}
