/**
 * The address a connection comes from, for per-address caps and logs. Behind
 * a balancer every TCP peer is the balancer, so from a listed proxy
 * (`--trusted-proxies`) `X-Forwarded-For` is read from the right, the end
 * proxies append to: trusted hops are skipped, the first other address is the
 * client. Entries further left were written by the client and never believed.
 */
import { BlockList, isIP, SocketAddress } from 'node:net';

/** The proxies whose `X-Forwarded-For` is believed; built once from the option. */
export class TrustedProxies {
  readonly #list = new BlockList();

  /** `entries`: IPv4 / IPv6 addresses and CIDR ranges, already validated (`parseProxyEntry`). */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const { address, prefix, family } = parseProxyEntry(entry)!;
      if (prefix === undefined) this.#list.addAddress(address, family);
      else this.#list.addSubnet(address, prefix, family);
    }
  }

  has(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.#list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** An address or CIDR range of `--trusted-proxies`, or `undefined` when it is neither. */
export function parseProxyEntry(entry: string): { address: string; prefix: number | undefined; family: 'ipv4' | 'ipv6' } | undefined {
  const [rawAddress = '', rawPrefix, extra] = entry.trim().split('/');
  const address = unmapped(rawAddress);
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (rawPrefix !== undefined && (!/^\d{1,3}$/.test(rawPrefix) || Number(rawPrefix) > max)) return undefined;
  return { address, prefix: rawPrefix === undefined ? undefined : Number(rawPrefix), family: family === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * The client's address: the peer's, unless the peer is a trusted proxy, then
 * the first untrusted address of `X-Forwarded-For` read from the right. When
 * every hop is trusted, or a trusted hop wrote something that is not an
 * address, the last trusted address read stands.
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: TrustedProxies | undefined): string {
  let address = peer === undefined ? 'unknown' : unmapped(peer);
  if (!trusted || forwardedFor === undefined || !trusted.has(address)) return address;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = unmapped(withoutPort(hops[i]!.trim()));
    if (isIP(hop) === 0) break;
    address = hop;
    if (!trusted.has(hop)) break;
  }
  return address;
}

/**
 * One spelling per address, so one client is one key of the per-address
 * count: IPv6 in its canonical form (`2001:DB8:0::1` → `2001:db8::1`), and an
 * IPv4-mapped address (how a dual-stack socket reports an IPv4 peer,
 * `::ffff:10.0.0.1` or `::ffff:a00:1`) as the IPv4 address. Anything else
 * (not an address) unchanged.
 */
function unmapped(address: string): string {
  if (isIP(address) !== 6) return address;
  const canonical = new SocketAddress({ address, family: 'ipv6' }).address;
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(canonical) ? canonical.slice(7) : canonical;
}

/** `[2001:db8::1]:443` → `2001:db8::1`, `192.0.2.1:443` → `192.0.2.1`; anything else unchanged. */
function withoutPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(hop);
  return v4 ? v4[1]! : hop;
}
