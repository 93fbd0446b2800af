package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every one of many keys, short and long and one the prefix of another, opens the API;
// every near miss of each (one byte changed, cut short, one byte more), another scheme
// or another header does not. withAPIKeys hashes what it is sent and compares the digest
// with every key's, without stopping at a match, so the time a refusal takes says nothing
// of the keys; this test holds it to the behaviour.
func TestAPIKeysEveryKeyAndNoNearMiss(t *testing.T) {
	keys := []string{"k", "kk", "key", "key-1", "Key-1", "0123456789abcdef0123456789abcdef", strings.Repeat("x", 300)}
	for i := range 20 {
		keys = append(keys, fmt.Sprintf("rotation-%02d-%s", i, strings.Repeat("z", i)))
	}
	hs := newHarness(t, Config{APIKeys: keys}, okCheck("database"))
	status := func(header, value string) int {
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		if header != "" {
			req.Header.Set(header, value)
		}
		return hs.do(t, req).Code
	}
	isKey := map[string]bool{}
	for _, k := range keys {
		isKey[k] = true
	}
	for _, k := range keys {
		require.Equal(t, http.StatusOK, status("Authorization", "Bearer "+k), "key %.20q", k)

		misses := []string{
			k[:len(k)-1],
			k + "x",
			"x" + k,
			strings.ToUpper(k), // keys are case-sensitive
			string(k[0]^1) + k[1:],
			k[:len(k)-1] + string(k[len(k)-1]^1),
		}
		for _, miss := range misses {
			if isKey[miss] || miss == "" {
				continue // "kk" cut short is "k", a key of its own
			}
			assert.Equal(t, http.StatusUnauthorized, status("Authorization", "Bearer "+miss), "near miss %.20q of %.20q", miss, k)
		}
		for _, other := range [][2]string{
			{"Authorization", "Token " + k},
			{"Authorization", "Basic " + k},
			{"Authorization", k},
			{"Authorization", "Bearer" + k},
			{"X-API-Key", k},
			{"Cookie", "api_key=" + k},
		} {
			assert.Equal(t, http.StatusUnauthorized, status(other[0], other[1]), "%s: %.30q", other[0], other[1])
		}
	}
	assert.Equal(t, http.StatusUnauthorized, status("", ""), "no key at all")
	assert.Equal(t, http.StatusUnauthorized, hs.get(t, "/readyz?api_key="+keys[0]).Code, "a key in the query is not a key")
	assert.Equal(t, http.StatusOK, hs.get(t, "/healthz").Code, "/healthz stays open")
	assert.NotContains(t, hs.log.String(), "rotation-", "no key reaches the log")
}

// A client that no proxy vouches for cannot choose its IP with any of the headers
// proxies and CDNs use; a trusted proxy is believed only through X-Forwarded-For.
func TestClientIPIgnoresEveryOtherForwardingHeader(t *testing.T) {
	headers := []string{
		"X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "X-Client-IP", "X-Cluster-Client-IP",
		"Fastly-Client-IP", "X-Original-Forwarded-For", "X-Forwarded", "Forwarded-For", "X-Appengine-Remote-Addr",
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	hs := newHarness(t, Config{TrustedProxies: trusted})
	ip := func(peer string, set func(http.Header)) string {
		req := httptest.NewRequest(http.MethodGet, "/test/ip", nil)
		req.RemoteAddr = peer
		set(req.Header)
		rec := hs.do(t, req)
		require.Equal(t, http.StatusOK, rec.Code)
		return rec.Body.String()
	}
	for _, peer := range []string{"192.0.2.1:4321", "10.0.0.5:4321"} {
		want, _, _ := strings.Cut(peer, ":")
		for _, h := range headers {
			assert.Equal(t, want, ip(peer, func(hd http.Header) { hd.Set(h, "203.0.113.7") }), "%s from %s", h, peer)
		}
		assert.Equal(t, want, ip(peer, func(hd http.Header) { hd.Set("Forwarded", "for=203.0.113.7;proto=https") }), "Forwarded from %s", peer)
	}
}

// X-Forwarded-For is read from the right: entries a trusted proxy appended are skipped
// and the first untrusted one is the client, so whatever the client wrote on the left
// is never taken, even when a proxy appends its own header line instead of extending
// the client's (as HAProxy does).
func TestClientIPTakesTheRightmostUntrustedForwardedAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
	hs := newHarness(t, Config{TrustedProxies: trusted})
	tests := []struct {
		name  string
		peer  string
		lines []string
		want  string
	}{
		{"client's spoof on the left, its real address appended", "10.0.0.5:1", []string{"198.51.100.66, 203.0.113.7"}, "203.0.113.7"},
		{"spoof in the client's own header line, proxy's line after it", "10.0.0.5:1", []string{"198.51.100.66", "203.0.113.7"}, "203.0.113.7"},
		{"two trusted proxies in a chain", "10.0.0.5:1", []string{"198.51.100.66, 203.0.113.7, 192.168.1.1"}, "203.0.113.7"},
		{"spoofed trusted-looking chain from an untrusted peer", "198.51.100.9:1", []string{"203.0.113.7, 10.0.0.1"}, "198.51.100.9"},
		{"a client forging a trusted hop gains nothing", "10.0.0.5:1", []string{"203.0.113.7, 10.9.9.9", "198.51.100.66"}, "198.51.100.66"},
		{"garbage to the right stops the walk: the peer is used", "10.0.0.5:1", []string{"203.0.113.7, not-an-ip"}, "10.0.0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/test/ip", nil)
			req.RemoteAddr = tt.peer
			for _, l := range tt.lines {
				req.Header.Add("X-Forwarded-For", l)
			}
			rec := hs.do(t, req)
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, tt.want, rec.Body.String())
		})
	}
}

// The per-IP submission limit holds against a client that invents a new
// X-Forwarded-For on every request: nobody trusts it, so it is one client.
func TestSubmitRateLimitIgnoresSpoofedForwardedFor(t *testing.T) {
	eh := newEventsHarness(t, Config{SubmitRate: 1, SubmitBurst: 2,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	var codes []int
	for i := range 4 {
		rec := eh.submit(t, "/event/submit", "198.51.100.4:5555", `{"name":"a"}`, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		codes = append(codes, rec.Code)
	}
	assert.Equal(t, []int{202, 202, 429, 429}, codes)
	for _, c := range eh.store.acceptCalls() {
		assert.Equal(t, "198.51.100.4", c.IP)
	}
}

// A declared body over the limit is refused on every route, before any handler reads
// it; the routes that read a body refuse an undeclared (chunked) one past the limit too.
// Without a key the body is never looked at: 401 comes first.
func TestBodyLimitOnEveryRoute(t *testing.T) {
	h := New(slog.New(slog.DiscardHandler), Config{APIKeys: []string{"k"}}, Deps{})
	routes := h.Routes()
	require.NotEmpty(t, routes)
	oversize := func(method, path string, declared bool, auth string) *httptest.ResponseRecorder {
		var body io.Reader = strings.NewReader(`{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`)
		req := httptest.NewRequest(method, path, body)
		if !declared {
			req.ContentLength = -1
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, r := range routes {
		path := strings.NewReplacer(":site_id", "kingfisher", ":event_id", "e1", ":task_id", "t1").Replace(r.Path)
		rec := oversize(r.Method, path, true, "Bearer k")
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "%s %s: %s", r.Method, r.Path, rec.Body)
		if r.Path != "/healthz" {
			assert.Equal(t, http.StatusUnauthorized, oversize(r.Method, path, true, "").Code, "%s %s without a key", r.Method, r.Path)
		}
	}
	for _, path := range []string{"/sites/kingfisher/outage-sync", "/event/submit", "/event/submit/"} {
		rec := oversize(http.MethodPost, path, false, "Bearer k")
		assertTooLarge(t, rec.Header(), rec.Code, rec.Body.Bytes())
	}
}
