package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/workflows"
)

// shortTimeouts are DefaultTimeouts scaled down for tests, each far enough from the
// others that a test can tell which one cut a client off.
var shortTimeouts = Timeouts{
	ReadHeader: 200 * time.Millisecond,
	Read:       1500 * time.Millisecond,
	Write:      2500 * time.Millisecond,
	Idle:       4 * time.Second,
}

// serveWithTimeouts serves the API (New's handler, with the test routes and one that
// waits for its context) through NewHTTPServer on a real loopback listener. waited
// receives the context error of each /test/wait request once it ends.
func serveWithTimeouts(t *testing.T, to Timeouts) (addr string, waited <-chan error) {
	t.Helper()
	hs := newHarness(t, Config{})
	ends := make(chan error, 4)
	hs.h.GET("/test/wait", func(c *gin.Context) {
		ctx := c.Request.Context()
		select {
		case <-ctx.Done(): // as a Temporal call or a store query would
		case <-time.After(time.Minute):
		}
		ends <- ctx.Err()
		c.String(http.StatusOK, "too late")
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := NewHTTPServer(hs.h, to, slog.New(slog.DiscardHandler))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), ends
}

func dialAPI(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readUntilClosed reads what the server sends until it closes the connection, and
// fails the test if it has not closed it within limit.
func readUntilClosed(t *testing.T, conn net.Conn, limit time.Duration) []byte {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(limit)))
	got, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		require.Falsef(t, errors.Is(err, os.ErrDeadlineExceeded), "the server still holds the connection after %s", limit)
		require.NoError(t, err)
	}
	return got
}

// answerStatus is the status of the first answer in raw, or 0 if there is none.
func answerStatus(raw []byte) int {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A client that sends half its headers and stalls is dropped after ReadHeader, without
// an answer, long before the whole-request Read timeout.
func TestServerDropsAClientStalledInItsHeaders(t *testing.T) {
	t.Parallel()
	addr, _ := serveWithTimeouts(t, shortTimeouts)
	conn := dialAPI(t, addr)
	start := time.Now()
	_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Half: ")
	require.NoError(t, err)

	got := readUntilClosed(t, conn, 10*time.Second)
	took := time.Since(start)
	assert.Empty(t, got, "a client that never finished its request gets no answer")
	assert.GreaterOrEqual(t, took, shortTimeouts.ReadHeader*3/4)
	assert.Less(t, took, shortTimeouts.Read*4/5, "the header timeout, not the whole-request one, cut it off")
}

// A client that sends its headers and then its body a byte at a time is cut off at Read,
// with no 2xx: the handler's read of the body fails.
func TestServerCutsOffASlowBody(t *testing.T) {
	t.Parallel()
	addr, _ := serveWithTimeouts(t, shortTimeouts)
	conn := dialAPI(t, addr)
	body := `{"name":"slow"}` + strings.Repeat(" ", 185) // valid JSON: in time it would be a 200
	start := time.Now()
	_, err := io.WriteString(conn, "POST /test/decode HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
	require.NoError(t, err)
	go func() {
		// 200 bytes at one per 50 ms: 10 s, far past Read. Stops when the server hangs up.
		for i := range len(body) {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	got := readUntilClosed(t, conn, 15*time.Second)
	took := time.Since(start)
	status := answerStatus(got)
	assert.False(t, status >= 200 && status < 300, "a body cut off must not be taken: got %d: %q", status, got)
	assert.GreaterOrEqual(t, took, shortTimeouts.Read*4/5)
	assert.Less(t, took, 5*time.Second, "cut off at Read, not when the body was done (10 s)")
}

// A keep-alive connection with no next request is closed after Idle.
func TestServerClosesAnIdleKeepAliveConnection(t *testing.T) {
	t.Parallel()
	addr, _ := serveWithTimeouts(t, shortTimeouts)
	conn := dialAPI(t, addr)
	_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, resp.Close, "the answer keeps the connection open")
	answered := time.Now()

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(15*time.Second)))
	rest, err := io.ReadAll(br)
	took := time.Since(answered)
	require.Falsef(t, errors.Is(err, os.ErrDeadlineExceeded), "an idle connection still open after 15 s")
	assert.Empty(t, rest)
	assert.GreaterOrEqual(t, took, shortTimeouts.Idle*4/5, "the idle timeout, not Read or ReadHeader, closed it")
	assert.Less(t, took, shortTimeouts.Idle+5*time.Second)
}

// A handler slower than Write cannot hold the connection: its context ends at the write
// deadline, the client is hung up on without a 2xx, and the connection is free.
func TestServerReleasesAConnectionPastTheWriteTimeout(t *testing.T) {
	t.Parallel()
	addr, waited := serveWithTimeouts(t, shortTimeouts)
	conn := dialAPI(t, addr)
	start := time.Now()
	_, err := io.WriteString(conn, "GET /test/wait HTTP/1.1\r\nHost: relay\r\n\r\n")
	require.NoError(t, err)

	got := readUntilClosed(t, conn, 20*time.Second)
	took := time.Since(start)
	status := answerStatus(got)
	assert.False(t, status >= 200 && status < 300, "no answer after the write deadline: got %d: %q", status, got)
	assert.GreaterOrEqual(t, took, shortTimeouts.Write*4/5)
	assert.Less(t, took, shortTimeouts.Write+6*time.Second, "released at the write deadline, not when the handler's minute ran out")
	select {
	case err := <-waited:
		assert.ErrorIs(t, err, context.DeadlineExceeded, "the handler's context ended at the write deadline")
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context never ended")
	}
}

// Headers past MaxHeaderBytes are refused with 431; ordinary big ones pass.
func TestServerCapsHeaderBytes(t *testing.T) {
	t.Parallel()
	addr, _ := serveWithTimeouts(t, DefaultTimeouts)
	for size, want := range map[int]int{16 << 10: http.StatusOK, 2 * MaxHeaderBytes: http.StatusRequestHeaderFieldsTooLarge} {
		conn := dialAPI(t, addr)
		_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\nX-Big: "+strings.Repeat("a", size)+"\r\n\r\n")
		require.NoError(t, err)
		assert.Equal(t, want, answerStatus(readUntilClosed(t, conn, 10*time.Second)), "%d bytes of headers", size)
	}
}

func TestDefaultTimeouts(t *testing.T) {
	to := DefaultTimeouts
	assert.Equal(t, 10*time.Second, to.ReadHeader)
	assert.Equal(t, 30*time.Second, to.Read)
	assert.Equal(t, 2*time.Minute, to.Idle)
	// The slowest handler, GET /events-with-subscriptions, waits EventSubscriptionsRunTimeout+2s for its
	// merge; Write must leave the answer time after that.
	assert.GreaterOrEqual(t, to.Write, 4*(workflows.EventSubscriptionsRunTimeout+2*time.Second))

	srv := NewHTTPServer(http.NotFoundHandler(), to, slog.New(slog.DiscardHandler))
	assert.Equal(t, to.ReadHeader, srv.ReadHeaderTimeout)
	assert.Equal(t, to.Read, srv.ReadTimeout)
	assert.Equal(t, to.Write, srv.WriteTimeout)
	assert.Equal(t, to.Idle, srv.IdleTimeout)
	assert.Equal(t, MaxHeaderBytes, srv.MaxHeaderBytes)
	assert.NotNil(t, srv.ErrorLog)
}
