import { BlockList, isIP } from 'node:net';

/**
 * Addresses a remote image may never be fetched from: loopback, private, link-local, shared, multicast, reserved and
 * documentation ranges (IPv4 and IPv6; IPv4-mapped and -compatible IPv6 forms entirely), so the model cannot be used to reach this machine
 * or its network.
 */
// Two lists: an IPv6 rule covering IPv4-mapped addresses would otherwise match every IPv4 address.
const blocked4 = new BlockList();
const blocked6 = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15],
  ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked4.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 96], ['::ffff:0:0', 96], ['::1', 128], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32],
  ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) blocked6.addSubnet(net, bits, 'ipv6');

/** True when `address` (an IP literal) is a public unicast address a remote image may come from. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !blocked4.check(address, 'ipv4');
  return family === 6 && !blocked6.check(address, 'ipv6');
}
