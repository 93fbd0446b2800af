package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"relay/internal/outagesync"
	"relay/internal/payloadcodec"
	"relay/internal/timefmt"
)

// The flag.Value types of the settings: each parses one kind of value into one Config
// field, and its error says what it wants and what it got (never a secret's value).

// value is a flag.Value over one Config field.
type value interface {
	String() string
	Set(string) error
}

// flagValue hides a secret's value from --help.
type flagValue struct {
	value
	secret bool
}

func (f flagValue) String() string {
	if f.value == nil || f.secret {
		return ""
	}
	return f.value.String()
}

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

type addrValue struct{ p *string }

func (v addrValue) String() string { return stringValue(v).String() }
func (v addrValue) Set(s string) error {
	if _, port, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", s)
	}
	*v.p = s
	return nil
}

type optAddrValue struct{ p *string }

func (v optAddrValue) String() string { return stringValue(v).String() }
func (v optAddrValue) Set(s string) error {
	if s == "" {
		*v.p = ""
		return nil
	}
	return addrValue(v).Set(s)
}

type uiAddrValue struct{ p *string }

func (v uiAddrValue) String() string { return stringValue(v).String() }
func (v uiAddrValue) Set(s string) error {
	if s == "off" {
		*v.p = ""
		return nil
	}
	return addrValue(v).Set(s)
}

type oneOfValue struct {
	p      *string
	values []string
}

func (v oneOfValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v oneOfValue) Set(s string) error {
	for _, ok := range v.values {
		if s == ok {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s, got %q", strings.Join(v.values, ", "), s)
}

type urlValue struct{ p *string }

func (v urlValue) String() string { return stringValue(v).String() }
func (v urlValue) Set(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http(s) URL, got %q", s)
	}
	*v.p = strings.TrimRight(s, "/")
	return nil
}

type dbURLValue struct{ p *string }

func (v dbURLValue) String() string { return stringValue(v).String() }
func (v dbURLValue) Set(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL") // never echo it: it may hold a password
	}
	switch u.Scheme {
	case "postgres", "postgresql", "sqlite", "file":
	default:
		return fmt.Errorf("want postgres://… or sqlite:<path>, got scheme %q", u.Scheme)
	}
	*v.p = s
	return nil
}

type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v listValue) Set(s string) error {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*v.p = out
	return nil
}

// payloadKeysValue is RELAY_PAYLOAD_KEYS, kept as written once it parses.
type payloadKeysValue struct{ p *string }

func (v payloadKeysValue) String() string { return stringValue(v).String() }
func (v payloadKeysValue) Set(s string) error {
	if s = strings.TrimSpace(s); s != "" {
		if _, err := payloadcodec.ParseKeys(s); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}

// idKeyValue is RELAY_WORKFLOW_ID_KEY: long enough that the HMAC of an IP cannot be
// guessed by trying every IPv4 address.
type idKeyValue struct{ p *string }

// MinWorkflowIDKey is the shortest RELAY_WORKFLOW_ID_KEY accepted.
const MinWorkflowIDKey = 32

func (v idKeyValue) String() string { return stringValue(v).String() }
func (v idKeyValue) Set(s string) error {
	if s = strings.TrimSpace(s); s != "" && len(s) < MinWorkflowIDKey {
		return fmt.Errorf("%d characters: want at least %d random ones (openssl rand -base64 32)", len(s), MinWorkflowIDKey)
	}
	*v.p = s
	return nil
}

type cidrsValue struct{ p *[]netip.Prefix }

func (v cidrsValue) String() string {
	if v.p == nil {
		return ""
	}
	parts := make([]string, len(*v.p))
	for i, p := range *v.p {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}
func (v cidrsValue) Set(s string) error {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			// A bare address means that one host.
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return fmt.Errorf("want CIDRs like 10.0.0.0/8, got %q", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	*v.p = out
	return nil
}

type durationValue struct{ p *time.Duration }

func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}
func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration like 90s or 5m, got %q", s)
	}
	*v.p = d
	return nil
}

// intervalValue is a durationValue that may also be 0: off.
type intervalValue struct{ p *time.Duration }

func (v intervalValue) String() string { return durationValue(v).String() }
func (v intervalValue) Set(s string) error {
	if d, err := time.ParseDuration(s); err == nil && d == 0 {
		*v.p = 0
		return nil
	}
	if err := (durationValue(v)).Set(s); err != nil {
		return fmt.Errorf("want a positive duration like 30m or 1h, or 0 for off, got %q", s)
	}
	return nil
}

// siteValue is a site id: it names a workflow, a schedule and a URL path.
type siteValue struct{ p *string }

func (v siteValue) String() string { return stringValue(v).String() }
func (v siteValue) Set(s string) error {
	if !outagesync.ValidSiteID(s) {
		return fmt.Errorf("want 1 to 128 of A-Z, a-z, 0-9, _ and -, got %q", s)
	}
	*v.p = s
	return nil
}

type rateValue struct{ p *float64 }

func (v rateValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}
func (v rateValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) { // !(f > 0) also refuses NaN
		return fmt.Errorf("want a positive number of requests per second, got %q", s)
	}
	*v.p = f
	return nil
}

type timeValue struct{ p *time.Time }

func (v timeValue) String() string {
	if v.p == nil || v.p.IsZero() {
		return ""
	}
	return timefmt.Millis(*v.p)
}
func (v timeValue) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time like 2022-01-01T00:00:00.000Z, got %q", s)
	}
	*v.p = t
	return nil
}

type positiveIntValue struct{ p *int }

func (v positiveIntValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}
func (v positiveIntValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive whole number, got %q", s)
	}
	*v.p = n
	return nil
}

// portsValue is a comma list of exactly n TCP ports, 0 meaning "a free one".
type portsValue struct {
	p *[]int
	n int
}

func (v portsValue) String() string {
	if v.p == nil {
		return ""
	}
	s := make([]string, len(*v.p))
	for i, port := range *v.p {
		s[i] = strconv.Itoa(port)
	}
	return strings.Join(s, ",")
}
func (v portsValue) Set(s string) error {
	items := strings.Split(s, ",")
	if len(items) != v.n {
		return fmt.Errorf("want %d comma-separated ports, got %q", v.n, s)
	}
	out := make([]int, len(items))
	for i, item := range items {
		port, err := strconv.Atoi(strings.TrimSpace(item))
		if err != nil || port < 0 || port > 65535 {
			return fmt.Errorf("want ports from 0 to 65535, got %q", item)
		}
		out[i] = port
	}
	*v.p = out
	return nil
}

// pemKind is what a PEM file must hold.
type pemKind uint8

const (
	pemCert pemKind = iota // one or more certificates (a chain)
	pemKey                 // a private key
	pemCA                  // one or more CA certificates
)

// pemFileValue is the path of a PEM file, checked when set: it must be readable and hold
// what kind asks for. The value kept is the path; the file is read again when dialling.
type pemFileValue struct {
	p    *string
	kind pemKind
}

func (v pemFileValue) String() string { return stringValue{v.p}.String() }
func (v pemFileValue) Set(path string) error {
	if path == "" {
		*v.p = ""
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read PEM file: %v", err)
	}
	if err := checkPEM(b, v.kind); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	*v.p = path
	return nil
}

// checkPEM says what is wrong with a PEM file's contents, never quoting them.
func checkPEM(b []byte, kind pemKind) error {
	var certs, keys int
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return fmt.Errorf("malformed certificate: %v", err)
			}
			certs++
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			if !validKey(block.Bytes) {
				return fmt.Errorf("malformed %s", block.Type)
			}
			keys++
		}
	}
	switch {
	case kind == pemKey && keys == 0:
		return errors.New("no PEM private key in it (want a '-----BEGIN PRIVATE KEY-----' or EC/RSA PRIVATE KEY block)")
	case kind != pemKey && certs == 0:
		return errors.New("no PEM certificate in it (want a '-----BEGIN CERTIFICATE-----' block)")
	case kind == pemCA && keys > 0:
		return errors.New("holds a private key: a CA file needs only the certificate")
	}
	return nil
}

func validKey(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PrivateKey(der)
	return err == nil
}
