import { clientAddress } from './client-address';

const from = (ip: string | undefined) => clientAddress({ ip, socket: {} as never });

describe('clientAddress', () => {
  it('keeps an IPv4 address as it is', () => {
    expect(from('203.0.113.7')).toBe('203.0.113.7');
  });

  it('counts an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(from('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(from('::ffff:cb00:7107')).toBe('203.0.113.7');
  });

  it('counts every IPv6 address of one /64 as one client', () => {
    const a = from('2001:db8:1:2:aaaa:bbbb:cccc:dddd');
    expect(a).toBe('2001:db8:1:2::/64');
    expect(from('2001:db8:1:2::1')).toBe(a);
    expect(from('2001:0db8:0001:0002:ffff:ffff:ffff:ffff')).toBe(a);
    expect(from('2001:db8:1:3::1')).not.toBe(a);
    expect(from('::1')).toBe('::/64');
  });

  it('falls back to what it was given when it is not an address', () => {
    expect(from(undefined)).toBe('unknown');
    expect(from('not-an-ip')).toBe('not-an-ip');
  });
});
