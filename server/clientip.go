package server

import (
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// The client of an event submission: who it is (its IP, behind trusted proxies) and how
// often it may submit.

// submitLimiter keeps one token bucket per client, in an LRU so that memory stays bounded
// whatever the number of clients. An IPv6 client is its /64: one subscriber usually has a
// whole /64, and per-address buckets would let it take as many as it likes.
type submitLimiter struct {
	limit    rate.Limit
	burst    int
	limiters *lru.Cache[string, *rate.Limiter]
}

func newSubmitLimiter(perSecond float64, burst, size int) *submitLimiter {
	limiters, err := lru.New[string, *rate.Limiter](size)
	if err != nil {
		panic(err) // only for size <= 0, which New never passes
	}
	return &submitLimiter{limit: rate.Limit(perSecond), burst: burst, limiters: limiters}
}

// allow takes a token of ip's bucket, or says how long until one is there.
func (l *submitLimiter) allow(ip string) (bool, time.Duration) {
	key := clientKey(ip)
	lim, ok := l.limiters.Get(key)
	if !ok {
		lim = rate.NewLimiter(l.limit, l.burst)
		if prev, found, _ := l.limiters.PeekOrAdd(key, lim); found {
			lim = prev // another request of this client made it first
		}
	}
	r := lim.Reserve()
	if !r.OK() {
		return false, time.Second
	}
	if d := r.Delay(); d > 0 {
		r.Cancel() // not taken: the client is refused, not queued
		return false, d
	}
	return true, 0
}

// clientIP is the request's client address (see New) in canonical form. gin returns an
// X-Forwarded-For entry as the proxy wrote it, and a proxy on a dual-stack socket writes
// an IPv4 client as ::ffff:203.0.113.9: one client must be one address to the limiter, the
// store and the geolocation (which places IPv4 addresses only).
func clientIP(c *gin.Context) string {
	ip := c.ClientIP()
	if addr, err := netip.ParseAddr(ip); err == nil {
		return addr.Unmap().String()
	}
	return ip
}

// clientKey is what a client is limited by: its IP, or its /64 for IPv6.
func clientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}
