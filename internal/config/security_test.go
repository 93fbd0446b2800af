package config

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/tlstest"
)

// The Temporal client's TLS settings and API key (server and worker: Common | Store ...).
const serverGroups = Common | HTTP | Store

func TestTemporalSecurityFromEnv(t *testing.T) {
	certs := tlstest.New(t)
	keyFile := writeSecret(t, " key-from-file\n")
	env := map[string]string{
		"TEMPORAL_ADDRESS":         "ns.acct.tmprl.cloud:7233",
		"TEMPORAL_TLS_CERT":        certs.ClientCert,
		"TEMPORAL_TLS_KEY":         certs.ClientKey,
		"TEMPORAL_TLS_CA":          certs.CA,
		"TEMPORAL_TLS_SERVER_NAME": tlstest.ServerName,
		"TEMPORAL_API_KEY_FILE":    keyFile,
	}
	cfg, err := load(t, serverGroups, nil, env)
	require.NoError(t, err)
	assert.Equal(t, TemporalTLS{Cert: certs.ClientCert, Key: certs.ClientKey, CA: certs.CA, ServerName: tlstest.ServerName},
		cfg.TemporalTLS)
	assert.True(t, cfg.TemporalTLS.Enabled())
	assert.Equal(t, "key-from-file", cfg.TemporalAPIKey, "the API key is a secret: NAME_FILE, trimmed")

	lines := strings.Join(cfg.Redacted(serverGroups), "\n")
	assert.Contains(t, lines, "TEMPORAL_API_KEY=[redacted]")
	assert.NotContains(t, lines, "key-from-file")
	assert.Contains(t, lines, "TEMPORAL_TLS_KEY="+certs.ClientKey, "a path is not a secret: it shows what was read")

	// The same by flags.
	cfg, err = load(t, serverGroups, []string{
		"--temporal-tls-ca", certs.CA, "--temporal-tls-server-name", "other.example", "--temporal-api-key", "k",
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, TemporalTLS{CA: certs.CA, ServerName: "other.example"}, cfg.TemporalTLS)
	assert.Equal(t, "k", cfg.TemporalAPIKey)
}

func TestTemporalSecurityDefaultsArePlain(t *testing.T) {
	for _, groups := range []Group{serverGroups, Common | Store | Upstream, allGroups} {
		cfg, err := load(t, groups, nil, nil)
		require.NoError(t, err)
		assert.False(t, cfg.TemporalTLS.Enabled())
		assert.Empty(t, cfg.TemporalAPIKey)
	}
}

// An API key alone is accepted: the client then turns TLS on with the system's roots
// (Temporal Cloud's case), never sending the key in plain text.
func TestTemporalAPIKeyAlone(t *testing.T) {
	cfg, err := load(t, serverGroups, nil, map[string]string{"TEMPORAL_API_KEY": "secret"})
	require.NoError(t, err)
	assert.Equal(t, "secret", cfg.TemporalAPIKey)
	assert.False(t, cfg.TemporalTLS.Enabled(), "no TLS setting: the client picks the system's roots")
}

func TestTemporalTLSErrors(t *testing.T) {
	certs := tlstest.New(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	notPEM := write("not.pem", "hello, I am not PEM\n")
	badCert := write("bad-cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})))
	badKey := write("bad-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage-key-bytes")})))
	clientKey, err := os.ReadFile(certs.ClientKey)
	require.NoError(t, err)
	caWithKey := write("ca-with-key.pem", readFile(t, certs.CA)+string(clientKey))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		env     map[string]string
		errName string
		msg     string
	}{
		{"certificate without key", map[string]string{"TEMPORAL_TLS_CERT": certs.ClientCert},
			"TEMPORAL_TLS_KEY", "without its private key"},
		{"key without certificate", map[string]string{"TEMPORAL_TLS_KEY": certs.ClientKey},
			"TEMPORAL_TLS_CERT", "without its certificate"},
		{"key of another certificate", map[string]string{"TEMPORAL_TLS_CERT": certs.ClientCert, "TEMPORAL_TLS_KEY": certs.ServerKey},
			"TEMPORAL_TLS_KEY", "is not the key of the certificate"},
		{"unreadable CA", map[string]string{"TEMPORAL_TLS_CA": missing}, "TEMPORAL_TLS_CA", "cannot read PEM file"},
		{"unreadable certificate", map[string]string{"TEMPORAL_TLS_CERT": missing, "TEMPORAL_TLS_KEY": certs.ClientKey},
			"TEMPORAL_TLS_CERT", "cannot read PEM file"},
		{"CA not PEM", map[string]string{"TEMPORAL_TLS_CA": notPEM}, "TEMPORAL_TLS_CA", "no PEM certificate"},
		{"CA a malformed certificate", map[string]string{"TEMPORAL_TLS_CA": badCert}, "TEMPORAL_TLS_CA", "malformed certificate"},
		{"CA holding a private key", map[string]string{"TEMPORAL_TLS_CA": caWithKey}, "TEMPORAL_TLS_CA", "holds a private key"},
		{"certificate is a key", map[string]string{"TEMPORAL_TLS_CERT": certs.ClientKey, "TEMPORAL_TLS_KEY": certs.ClientKey},
			"TEMPORAL_TLS_CERT", "no PEM certificate"},
		{"key is a certificate", map[string]string{"TEMPORAL_TLS_CERT": certs.ClientCert, "TEMPORAL_TLS_KEY": certs.ClientCert},
			"TEMPORAL_TLS_KEY", "no PEM private key"},
		{"key malformed", map[string]string{"TEMPORAL_TLS_CERT": certs.ClientCert, "TEMPORAL_TLS_KEY": badKey},
			"TEMPORAL_TLS_KEY", "malformed PRIVATE KEY"},
		{"key not PEM", map[string]string{"TEMPORAL_TLS_CERT": certs.ClientCert, "TEMPORAL_TLS_KEY": notPEM},
			"TEMPORAL_TLS_KEY", "no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, serverGroups, nil, tt.env)
			cerr := requireConfigError(t, err, tt.errName)
			assert.Contains(t, cerr.Msg, tt.msg)
			for _, content := range []string{"MI", "hello", "garbage"} { // DER in base64 starts MI
				assert.NotContains(t, err.Error(), content, "a PEM file's contents are never quoted")
			}
		})
	}
}

func TestTemporalTLSFlagErrors(t *testing.T) {
	_, err := load(t, serverGroups, []string{"--temporal-tls-ca", filepath.Join(t.TempDir(), "none.pem")}, nil)
	cerr := requireConfigError(t, err, "")
	assert.Contains(t, cerr.Msg, "-temporal-tls-ca")
	assert.Contains(t, cerr.Msg, "cannot read PEM file")
}

// relay dev's embedded Temporal server is plain: TLS settings or a key there need
// TEMPORAL_ADDRESS (dev then dials that server, secured).
func TestTemporalSecurityInDev(t *testing.T) {
	certs := tlstest.New(t)
	_, err := load(t, allGroups, nil, map[string]string{"TEMPORAL_TLS_CA": certs.CA})
	cerr := requireConfigError(t, err, "TEMPORAL_TLS_*")
	assert.Contains(t, cerr.Msg, "set TEMPORAL_ADDRESS")

	_, err = load(t, allGroups, nil, map[string]string{"TEMPORAL_API_KEY": "k"})
	requireConfigError(t, err, "TEMPORAL_API_KEY")

	cfg, err := load(t, allGroups, nil, map[string]string{"TEMPORAL_TLS_CA": certs.CA, "TEMPORAL_ADDRESS": "temporal:7233"})
	require.NoError(t, err)
	assert.Equal(t, certs.CA, cfg.TemporalTLS.CA)

	// server and worker have no embedded server: the default address is dialled secured.
	_, err = load(t, serverGroups, nil, map[string]string{"TEMPORAL_TLS_CA": certs.CA})
	require.NoError(t, err)
}

func TestDBMaxConns(t *testing.T) {
	cfg, err := load(t, Store, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, cfg.DBMaxConns, "0: the store's default for its dialect")

	cfg, err = load(t, Store, nil, map[string]string{"RELAY_DB_MAX_CONNS": "40"})
	require.NoError(t, err)
	assert.Equal(t, 40, cfg.DBMaxConns)

	cfg, err = load(t, Store, []string{"--db-max-conns", "8"}, map[string]string{"RELAY_DB_MAX_CONNS": "40"})
	require.NoError(t, err)
	assert.Equal(t, 8, cfg.DBMaxConns, "the flag wins")

	for _, bad := range []string{"0", "-1", "many", "1.5"} {
		_, err = load(t, Store, nil, map[string]string{"RELAY_DB_MAX_CONNS": bad})
		cerr := requireConfigError(t, err, "RELAY_DB_MAX_CONNS")
		assert.Contains(t, cerr.Msg, "positive whole number")
	}

	cfg, err = load(t, Common|HTTP, nil, map[string]string{"RELAY_DB_MAX_CONNS": "40"})
	require.NoError(t, err)
	assert.Equal(t, 0, cfg.DBMaxConns, "only commands with a store read it")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
