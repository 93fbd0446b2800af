package temporalclient

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/tlstest"
)

// The dialling itself, against a frontend with TLS and mutual TLS, is tested in
// internal/temporalserver (tls_test.go), which links the server.

func TestPlainByDefault(t *testing.T) {
	co, err := clientOptions(Options{HostPort: "127.0.0.1:7233", Namespace: "default"})
	require.NoError(t, err)
	assert.Nil(t, co.ConnectionOptions.TLS)
	assert.Nil(t, co.Credentials)
}

func TestTLSWithCA(t *testing.T) {
	certs := tlstest.New(t)
	co, err := clientOptions(Options{TLS: TLS{CAFile: certs.CA, ServerName: tlstest.ServerName}})
	require.NoError(t, err)
	cfg := co.ConnectionOptions.TLS
	require.NotNil(t, cfg)
	assert.Equal(t, tlstest.ServerName, cfg.ServerName)
	require.NotNil(t, cfg.RootCAs, "the CA file, not the system's roots")
	assert.Nil(t, cfg.GetClientCertificate, "no client certificate without mutual TLS")

	caPEM, err := os.ReadFile(certs.CA)
	require.NoError(t, err)
	want := x509.NewCertPool()
	want.AppendCertsFromPEM(caPEM)
	assert.True(t, want.Equal(cfg.RootCAs))
}

// Temporal Cloud: an API key alone turns TLS on with the system's roots; the key is never
// sent in plain text.
func TestAPIKeyTurnsTLSOn(t *testing.T) {
	co, err := clientOptions(Options{APIKey: "k"})
	require.NoError(t, err)
	require.NotNil(t, co.Credentials)
	require.NotNil(t, co.ConnectionOptions.TLS)
	assert.Nil(t, co.ConnectionOptions.TLS.RootCAs, "the system's roots")

	certs := tlstest.New(t)
	co, err = clientOptions(Options{APIKey: "k", TLS: TLS{CAFile: certs.CA}})
	require.NoError(t, err)
	assert.NotNil(t, co.ConnectionOptions.TLS.RootCAs, "with a CA, that CA")
}

func TestTLSErrors(t *testing.T) {
	certs := tlstest.New(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not PEM"), 0o600))
	tests := []struct {
		name string
		tls  TLS
		msg  string
	}{
		{"certificate without key", TLS{CertFile: certs.ClientCert}, "needs both"},
		{"key without certificate", TLS{KeyFile: certs.ClientKey}, "needs both"},
		{"key of another certificate", TLS{CertFile: certs.ClientCert, KeyFile: certs.ServerKey}, "private key does not match"},
		{"CA missing", TLS{CAFile: filepath.Join(t.TempDir(), "none.pem")}, "no such file"},
		{"CA not PEM", TLS{CAFile: notPEM}, "no PEM certificate"},
		{"certificate not PEM", TLS{CertFile: notPEM, KeyFile: certs.ClientKey}, "client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := clientOptions(Options{TLS: tt.tls})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

// A client certificate renewed in place is used from the next handshake on; files caught
// half-written leave the last good pair in use.
func TestClientCertificateIsReadAtEachHandshake(t *testing.T) {
	first, second := tlstest.New(t), tlstest.New(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, first.ClientCert, cert)
	copyFile(t, first.ClientKey, key)

	cfg, err := tlsConfig(TLS{CertFile: cert, KeyFile: key})
	require.NoError(t, err)
	require.NotNil(t, cfg.GetClientCertificate)
	got, err := cfg.GetClientCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, certDER(t, first.ClientCert), got.Certificate[0])

	copyFile(t, second.ClientCert, cert)
	copyFile(t, second.ClientKey, key)
	got, err = cfg.GetClientCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, certDER(t, second.ClientCert), got.Certificate[0], "the renewed certificate")

	require.NoError(t, os.WriteFile(key, []byte("half written"), 0o600))
	got, err = cfg.GetClientCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, certDER(t, second.ClientCert), got.Certificate[0], "the last good pair")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o600))
}

func certDER(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block)
	return block.Bytes
}

// Refusals over the certificates end Dial at once; others (a server still starting) are
// retried. The messages are those seen from the embedded server in temporalserver's tests.
func TestTLSRefusalsAreNotRetried(t *testing.T) {
	for msg, refused := range map[string]bool{
		`failed reaching server: connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for temporal.relay.test, localhost, not wrong.relay.test"`: true,
		`failed reaching server: connection error: desc = "error reading server preface: remote error: tls: certificate required"`:                                                                                              true,
		`failed reaching server: connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`:                                                                   true,
		`failed reaching server: connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`:                                       true,
		`failed reaching server: connection error: desc = "error reading server preface: EOF"`:                                                                                                                                  false,
		`failed reaching server: connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:7233: connect: connection refused"`:                                                                               false,
	} {
		assert.Equal(t, refused, tlsRefused(errors.New(msg)), msg)
	}
}
