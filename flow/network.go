package flow

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// The coarse network of an address: what one household, office or mobile
// cell usually shares, so that a person's phone and laptop (or a device
// and the person at it) count as one place. IPv4 addresses are grouped by
// their /24, IPv6 ones by their /56, the block an ISP typically gives one
// customer.
const (
	DefaultNetworkBitsV4 = 24
	DefaultNetworkBitsV6 = 56
)

// networkOf is the network of the first v4bits (IPv4) or v6bits (IPv6)
// bits of ip; an IPv4-mapped IPv6 address counts as IPv4. ok is false when
// ip is not an address.
func networkOf(ip string, v4bits, v6bits int) (network netip.Prefix, ok bool) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap().WithZone("")
	bits := v6bits
	if addr.Is4() {
		bits = v4bits
	}
	network, err = addr.Prefix(bits)
	return network, err == nil
}

// ParseNetwork reads one network of a setting such as issue_from: a CIDR
// ("192.0.2.0/24", "2001:db8::/32") or a single address, which stands for
// itself alone (/32 or /128). Host bits in a CIDR are dropped
// ("10.1.2.3/8" is 10.0.0.0/8).
func ParseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR form (like 192.0.2.0/24 or 2001:db8::/32)", s)
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q: write an IPv4 network in IPv4 form", s)
		}
		return p.Masked(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a network in CIDR form", s)
	}
	if addr.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: an address with a zone cannot be matched", s)
	}
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// ParseNetworks reads every network of a list (see ParseNetwork); the
// error names each one that is not.
func ParseNetworks(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	var errs []error
	for _, s := range list {
		p, err := ParseNetwork(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}
