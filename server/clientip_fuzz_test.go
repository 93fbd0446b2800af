package server

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// clientIPTrustSets are the RELAY_TRUSTED_PROXIES that FuzzClientIP picks from.
var clientIPTrustSets = [][]netip.Prefix{
	nil,
	{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fd00::/8")},
	{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
}

// FuzzClientIP submits events from arbitrary peers with arbitrary X-Forwarded-For and
// X-Real-IP headers (a newline in xff separates two header lines). The event's IP, which the
// limiter and the geolocation use, is the peer unless the peer is a trusted proxy; then the
// rightmost X-Forwarded-For entry that is not a trusted proxy (or, when all are, the
// leftmost), reading from the right and stopping at the first entry that is not an IP.
// X-Real-IP never counts. The IP is never empty and always in canonical form (an IPv4
// client is the same client whether a proxy wrote it 203.0.113.9 or ::ffff:203.0.113.9).
func FuzzClientIP(f *testing.F) {
	v4 := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	for _, s := range []struct {
		peer        []byte
		xff, realIP string
		trust       byte
	}{
		{v4("198.51.100.4"), "", "", 0},
		{v4("198.51.100.4"), "203.0.113.9", "203.0.113.10", 0},
		{netip.MustParseAddr("2001:db8::7").AsSlice(), "", "", 0},
		{v4("198.51.100.4"), "203.0.113.9", "", 1},
		{v4("10.1.2.3"), "203.0.113.9", "", 1},
		{v4("10.1.2.3"), "192.0.2.77, 203.0.113.9, 10.9.9.9", "", 1},
		{v4("10.1.2.3"), "192.0.2.77,\n203.0.113.9", "", 1},
		{v4("10.1.2.3"), "10.9.9.9, 192.168.1.1", "", 1},
		{v4("10.1.2.3"), "203.0.113.9, garbage, 10.9.9.9", "", 1},
		{v4("10.1.2.3"), "fe80::1%eth0", "", 1},
		{v4("10.1.2.3"), "203.0.113.009", "", 1},
		{v4("10.1.2.3"), " ", "203.0.113.10", 1},
		{netip.MustParseAddr("fd00::1").AsSlice(), "2001:db8:1:2:3:4:5:6", "", 1},
		{netip.MustParseAddr("::ffff:10.1.2.3").AsSlice(), "203.0.113.9", "", 1},
		{v4("203.0.113.1"), "1.2.3.4, 5.6.7.8", "", 2},
		{v4("203.0.113.1"), "", "", 2},
		{nil, "", "", 0},
		{[]byte{1, 2, 3}, "", "", 0},
	} {
		f.Add(s.peer, uint16(4321), s.xff, s.realIP, s.trust)
	}
	engines := make([]http.Handler, len(clientIPTrustSets))
	stores := make([]*lastCallEvents, len(clientIPTrustSets))
	for i, trusted := range clientIPTrustSets {
		engines[i], stores[i] = newFuzzEngine(Config{TrustedProxies: trusted})
	}
	f.Fuzz(func(t *testing.T, peer []byte, port uint16, xff, realIP string, trust byte) {
		i := int(trust) % len(clientIPTrustSets)
		peerIP := fuzzPeer(peer)
		req := httptest.NewRequest(http.MethodPost, "/event/submit", strings.NewReader(`{"name":"a"}`))
		// As net/http writes it: an IPv4 peer on an IPv6 socket shows as IPv4.
		req.RemoteAddr = (&net.TCPAddr{IP: peerIP.AsSlice(), Port: int(port)}).String()
		var lines []string
		if xff != "" {
			lines = strings.Split(xff, "\n")
			for _, l := range lines {
				req.Header.Add("X-Forwarded-For", l)
			}
		}
		if realIP != "" {
			req.Header.Set("X-Real-IP", realIP)
		}
		rec := httptest.NewRecorder()
		engines[i].ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("peer %s, X-Forwarded-For %q: want 202, got %d: %s", req.RemoteAddr, xff, rec.Code, rec.Body)
		}
		got := stores[i].accepted.IP
		want := referenceClientIP(peerIP, lines, clientIPTrustSets[i]).String()
		if got != want {
			t.Fatalf("peer %s, trusted %v, X-Forwarded-For %q: client IP %q, want %q", req.RemoteAddr, clientIPTrustSets[i], xff, got, want)
		}
		// The limiter counts an IPv4 client by its address, an IPv6 one by its /64.
		wantKey := want
		if a := netip.MustParseAddr(want); a.Is6() {
			wantKey = netip.PrefixFrom(a, 64).Masked().String()
		}
		if key := clientKey(got); key != wantKey {
			t.Fatalf("client %s: limiter key %q, want %q", got, key, wantKey)
		}
	})
}

// fuzzPeer makes an address of any bytes: up to 4 bytes an IPv4 address, more an IPv6 one
// (zero-padded or cut to size).
func fuzzPeer(b []byte) netip.Addr {
	if len(b) <= 4 {
		var a [4]byte
		copy(a[:], b)
		return netip.AddrFrom4(a)
	}
	var a [16]byte
	copy(a[:], b)
	return netip.AddrFrom16(a).Unmap() // as net/http shows a mapped peer: IPv4
}

// referenceClientIP is the client address as the README describes it, in canonical form.
func referenceClientIP(peer netip.Addr, xffLines []string, trusted []netip.Prefix) netip.Addr {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if !isTrusted(peer) || len(xffLines) == 0 {
		return peer.Unmap()
	}
	entries := strings.Split(strings.Join(xffLines, ","), ",")
	for i := len(entries) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(entries[i]))
		if err != nil || a.Zone() != "" {
			break // not an address: nothing left of it can be believed
		}
		if i == 0 || !isTrusted(a) {
			return a.Unmap()
		}
	}
	return peer.Unmap()
}
