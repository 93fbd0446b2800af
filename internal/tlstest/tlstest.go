// Package tlstest makes a certificate authority, a server certificate and a client
// certificate for tests of TLS and mutual TLS, written as PEM files into a test's
// temporary directory.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ServerName is the DNS name in the server certificate (besides localhost and 127.0.0.1).
const ServerName = "temporal.relay.test"

// Files are the paths of the PEM files New wrote.
type Files struct {
	Dir string
	// CA is the authority's certificate, which signed both others.
	CA string
	// ServerCert and ServerKey are valid for ServerName, localhost and 127.0.0.1.
	ServerCert, ServerKey string
	// ClientCert and ClientKey identify a client (for mutual TLS).
	ClientCert, ClientKey string
}

// New writes a fresh CA, server and client certificate into a temporary directory.
func New(tb testing.TB) Files {
	tb.Helper()
	dir := tb.TempDir()
	f := Files{
		Dir:        dir,
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	caKey := newKey(tb)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER := create(tb, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	WriteCert(tb, f.CA, caDER)

	serverKey := newKey(tb)
	serverDER := create(tb, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: ServerName},
		DNSNames:     []string{ServerName, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// The embedded server's own system worker presents it as its client certificate too.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, caCert, &serverKey.PublicKey, caKey)
	WriteCert(tb, f.ServerCert, serverDER)
	WriteKey(tb, f.ServerKey, serverKey)

	clientKey := newKey(tb)
	clientDER := create(tb, &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "relay test client"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, &clientKey.PublicKey, caKey)
	WriteCert(tb, f.ClientCert, clientDER)
	WriteKey(tb, f.ClientKey, clientKey)
	return f
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func create(tb testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) []byte {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// WriteCert writes a DER certificate as a PEM file.
func WriteCert(tb testing.TB, path string, der []byte) {
	tb.Helper()
	writePEM(tb, path, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// WriteKey writes a private key as a PKCS #8 PEM file.
func WriteKey(tb testing.TB, path string, key *ecdsa.PrivateKey) {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	writePEM(tb, path, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writePEM(tb testing.TB, path string, b *pem.Block) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
		tb.Fatal(err)
	}
}
