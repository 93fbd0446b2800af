package temporalclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
)

// TLS names the PEM files that secure the connection. Any field set turns TLS on; the
// zero value dials in plain text (unless Options.APIKey is set: see Options).
type TLS struct {
	// CertFile and KeyFile are the client certificate and its key for mutual TLS: both or
	// neither. They are read again at every TLS handshake, so that a certificate renewed
	// in place is used from the next connection on.
	CertFile, KeyFile string
	// CAFile holds the authorities that may sign the server's certificate; empty trusts the
	// system's roots (Temporal Cloud's certificates chain to a public root).
	CAFile string
	// ServerName is the name the server's certificate must hold; empty is the host of
	// the address dialled.
	ServerName string
}

// Enabled reports whether any setting is given.
func (t TLS) Enabled() bool { return t != TLS{} }

// tlsConfig builds the client's TLS configuration from the files, or nil when t is the
// zero value. Every file is read and checked now, so that a mistake shows at start.
func tlsConfig(t TLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("temporal TLS CA %s: no PEM certificate in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		return nil, errors.New("temporal TLS: a client certificate needs both its certificate and its key file")
	default:
		kp := &keyPair{certFile: t.CertFile, keyFile: t.KeyFile}
		if _, err := kp.load(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = kp.get
	}
	return cfg, nil
}

// keyPair reads a client certificate and key from their files at each handshake. A pair
// that cannot be read (the files being replaced at that moment, say) leaves the last good
// one in use.
type keyPair struct {
	certFile, keyFile string
	mu                sync.Mutex
	last              *tls.Certificate
}

func (k *keyPair) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, fmt.Errorf("temporal TLS client certificate %s with key %s: %w", k.certFile, k.keyFile, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.last = &c
	return &c, nil
}

func (k *keyPair) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c, err := k.load()
	if err == nil {
		return c, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last != nil {
		return k.last, nil
	}
	return nil, err
}
