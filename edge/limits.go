package edge

import (
	"net"
	"net/netip"
	"sync"
)

// ipCounts caps connections per source address. Its map holds one entry per
// address with an open connection, so it is bounded by MaxConns.
type ipCounts struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int32
}

func newIPCounts(max int) *ipCounts {
	return &ipCounts{max: max, n: make(map[netip.Addr]int32)}
}

// acquire counts a connection from ip; false when ip is at the cap.
func (p *ipCounts) acquire(ip netip.Addr) bool {
	if p.max <= 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(p.n[ip]) >= p.max {
		return false
	}
	p.n[ip]++
	return true
}

func (p *ipCounts) release(ip netip.Addr) {
	if p.max <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.n[ip] - 1; n > 0 {
		p.n[ip] = n
	} else {
		delete(p.n, ip)
	}
}

// addrIP is the source address of a gnet connection (zero when unknown).
func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
