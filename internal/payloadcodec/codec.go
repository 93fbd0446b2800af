// Package payloadcodec encrypts every payload relay writes to Temporal (workflow and
// activity inputs and results, signals, updates, memos, failure messages, summaries) with
// AES-256-GCM, so that Temporal, its database and its backups hold no customer data in
// the clear. Search attributes never pass through a codec: relay keeps them free of
// customer data (workflows/visibility.go).
//
// Each encrypted payload names the key that sealed it (metadata encryption-key-id), and
// the key id is authenticated with the data: a codec holds several keys, encrypts with the
// first and decrypts with any, so keys rotate by putting a new one first and dropping the
// old one once no history that needs it is kept. A payload that is not encrypted (a
// history written before relay encrypted) passes through as it is.
package payloadcodec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// The metadata of an encrypted payload.
const (
	MetadataEncoding = "binary/encrypted" // metadata "encoding"
	MetadataKeyID    = "encryption-key-id"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// Key is one named AES-256 key.
type Key struct {
	ID     string
	secret []byte
}

var validKeyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseKeys reads keys written "id:base64,id:base64" (standard base64 of 32 bytes); the
// first is the one that encrypts. Errors name the key by its id, never its bytes.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, b64, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("key %d: want id:base64-of-%d-bytes", i+1, KeySize)
		}
		if !validKeyID.MatchString(id) {
			return nil, fmt.Errorf("key %d: id %q: want 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'", i+1, id)
		}
		if seen[id] {
			return nil, fmt.Errorf("key %q is listed twice", id)
		}
		seen[id] = true
		secret, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(secret) != KeySize {
			return nil, fmt.Errorf("key %q: want the standard base64 of %d random bytes (openssl rand -base64 %d)", id, KeySize, KeySize)
		}
		keys = append(keys, Key{ID: id, secret: secret})
	}
	return keys, nil
}

// NewKey makes a random key named id, and returns it with its "id:base64" form.
func NewKey(id string) (Key, string, error) {
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, "", err
	}
	return Key{ID: id, secret: secret}, id + ":" + base64.StdEncoding.EncodeToString(secret), nil
}

// Codec is a converter.PayloadCodec that encrypts with its first key and decrypts with any.
type Codec struct {
	activeID string
	aeads    map[string]cipher.AEAD
}

// New makes a codec of keys, the first of which encrypts.
func New(keys []Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("payload codec: no key")
	}
	c := &Codec{activeID: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		block, err := aes.NewCipher(k.secret)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		if c.aeads[k.ID], err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
	}
	return c, nil
}

// ActiveKeyID is the id of the key that encrypts.
func (c *Codec) ActiveKeyID() string { return c.activeID }

// Encode encrypts each payload whole (its metadata included) under the active key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.activeID]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encrypt payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("encrypt payload: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncoding),
				MetadataKeyID:              []byte(c.activeID),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.activeID)),
		}
	}
	return out, nil
}

// ErrUnknownKey is the type of the error for a payload sealed with a key the codec lacks.
const ErrUnknownKey = "PayloadKeyUnknown"

// Decode decrypts each encrypted payload; others pass through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			// A worker fails the workflow task and Temporal retries it: once the worker
			// is restarted with the key, the run goes on.
			return nil, temporal.NewApplicationError(
				fmt.Sprintf("payload encrypted with key %q, which RELAY_PAYLOAD_KEYS does not hold", id), ErrUnknownKey)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize() {
			return nil, fmt.Errorf("decrypt payload (key %q): %d bytes, too short", id, len(data))
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("decrypt payload (key %q): %w", id, err)
		}
		var decoded commonpb.Payload
		if err := proto.Unmarshal(plain, &decoded); err != nil {
			return nil, fmt.Errorf("decrypt payload (key %q): %w", id, err)
		}
		out[i] = &decoded
	}
	return out, nil
}

// DataConverter is the SDK's default converter with payloads through codec c: what every
// relay client and worker uses, so that all of them read what any of them wrote.
func DataConverter(c converter.PayloadCodec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter carries a failure's message and stack trace in an encrypted payload
// (EncodeCommonAttributes): an upstream's error text may quote customer data.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: dc, EncodeCommonAttributes: true,
	})
}

// RecordingKeys is a key published in this repository, for the histories in
// workflows/testdata and for tests only: it protects nothing. relay history record
// encrypts with it, and the replay tests decrypt with it.
const RecordingKeys = "recorded:KgFq1rMsYiEIZBr7HY8+6KQELEhOt27IwxtOfx9yq0Y="

// Recording is the codec of RecordingKeys.
func Recording() *Codec {
	keys, err := ParseKeys(RecordingKeys)
	if err != nil {
		panic(err) // a constant: its test would fail first
	}
	c, err := New(keys)
	if err != nil {
		panic(err)
	}
	return c
}
