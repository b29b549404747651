import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientAddress, parseProxyEntry, TrustedProxies } from '../../src/net/client-address.js';

const proxies = new TrustedProxies(['10.0.0.0/8', '192.0.2.1', 'fd00::/8']);

describe('clientAddress', () => {
  const cases: Array<[string, string | undefined, string | string[] | undefined, string]> = [
    ['no header: the peer', '10.1.2.3', undefined, '10.1.2.3'],
    ['an untrusted peer is the client, whatever it sends', '198.51.100.1', '203.0.113.9', '198.51.100.1'],
    ['a trusted peer names the client', '10.1.2.3', '203.0.113.9', '203.0.113.9'],
    ['trusted hops on the right are skipped', '10.1.2.3', '203.0.113.9, 10.9.9.9, 192.0.2.1', '203.0.113.9'],
    ["entries left of the first untrusted one are the client's own words", '10.1.2.3', '1.1.1.1, 203.0.113.9', '203.0.113.9'],
    ['repeated headers read as one list', '10.1.2.3', ['1.1.1.1', '203.0.113.9, 10.0.0.7'], '203.0.113.9'],
    ['IPv4-mapped peer and hops', '::ffff:10.1.2.3', '::ffff:203.0.113.9', '203.0.113.9'],
    ['IPv4-mapped in hex, and IPv6 in any spelling, come out in one form', '::FFFF:a01:203', '2001:DB8:0:0::7', '2001:db8::7'],
    ['a hex-mapped hop', '10.1.2.3', '::ffff:cb00:7109', '203.0.113.9'],
    ['ports and brackets are dropped', '10.1.2.3', '[2001:db8::5]:443, 10.0.0.1:8080', '2001:db8::5'],
    ['IPv6 proxy range', 'fd12::1', '2001:db8::7', '2001:db8::7'],
    ['garbage written by a trusted hop: the last trusted address stands', '10.1.2.3', '203.0.113.9, not-an-ip', '10.1.2.3'],
    ['every hop trusted: the leftmost', '10.1.2.3', '10.0.0.1, 192.0.2.1', '10.0.0.1'],
    ['empty header', '10.1.2.3', '', '10.1.2.3'],
    ['no peer address', undefined, '203.0.113.9', 'unknown'],
  ];
  for (const [what, peer, header, expected] of cases) {
    it(what, () => assert.equal(clientAddress(peer, header, proxies), expected));
  }

  it('without trusted proxies the header is never read', () => {
    assert.equal(clientAddress('10.1.2.3', '203.0.113.9', undefined), '10.1.2.3');
  });
});

describe('parseProxyEntry', () => {
  it('accepts addresses and CIDR ranges of both families', () => {
    assert.deepEqual(parseProxyEntry('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseProxyEntry(' ::1 '), { address: '::1', prefix: undefined, family: 'ipv6' });
    assert.deepEqual(parseProxyEntry('fd00::/128'), { address: 'fd00::', prefix: 128, family: 'ipv6' });
  });

  it('refuses anything else', () => {
    for (const bad of ['', 'localhost', '10.0.0.0/33', '10.0.0.0/8/8', '10.0.0.0/-1', '::/129', '10.0.0.0/x', '300.1.1.1']) {
      assert.equal(parseProxyEntry(bad), undefined, bad);
    }
  });
});
