package temporalserver

import (
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/testenv"
)

// A frontend port that is taken is an error naming it, not a crash: the server logs Fatal
// when its gRPC listener cannot bind, and would go on with a nil listener if Fatal
// returned. (A free port taken between choosing and binding is retried with others.)
func TestStartOnATakenPortIsAnError(t *testing.T) {
	testenv.EndToEnd(t) // builds and starts a real server, up to its frontend's listener
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()

	srv, err := Start(Options{FrontendAddr: l.Addr().String(), Namespace: "default"})
	if srv != nil {
		_ = srv.Stop()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "address already in use")
}

func TestFatalPanicsWithTheMessageAndTags(t *testing.T) {
	var fe fatalError
	func() {
		defer func() { fe = recover().(fatalError) }()
		newLogger(slog.New(slog.DiscardHandler)).Fatal("Failed to start gRPC listener")
	}()
	assert.Equal(t, "Failed to start gRPC listener", fe.Error())
}

func TestStartWithoutANamespaceIsRefused(t *testing.T) {
	srv, err := Start(Options{FrontendAddr: "127.0.0.1:0"})
	require.Error(t, err)
	assert.Nil(t, srv)
	assert.Contains(t, err.Error(), "namespace")
}
