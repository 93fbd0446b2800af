package payloadcodec

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

func key(t *testing.T, id string) (Key, string) {
	t.Helper()
	k, s, err := NewKey(id)
	require.NoError(t, err)
	return k, s
}

func payloadOf(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

func TestEncryptedPayloadsHoldNothingInTheClearAndDecryptBack(t *testing.T) {
	k, _ := key(t, "k1")
	c, err := New([]Key{k})
	require.NoError(t, err)
	in := []*commonpb.Payload{payloadOf(t, map[string]string{"ip": "81.2.69.142", "title": "Team sync"}), payloadOf(t, nil)}
	enc, err := c.Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, 2)
	for _, p := range enc {
		assert.Equal(t, MetadataEncoding, string(p.Metadata[converter.MetadataEncoding]))
		assert.Equal(t, "k1", string(p.Metadata[MetadataKeyID]))
		assert.NotContains(t, string(p.Data), "81.2.69.142")
		assert.NotContains(t, string(p.Data), "json/plain", "the inner metadata is sealed too")
	}
	enc2, err := c.Encode(in[:1])
	require.NoError(t, err)
	assert.NotEqual(t, enc[0].Data, enc2[0].Data, "a fresh nonce each time")

	dec, err := c.Decode(enc)
	require.NoError(t, err)
	for i := range in {
		assert.True(t, proto.Equal(in[i], dec[i]), "payload %d", i)
	}
}

func TestRotationNewKeyEncryptsOldKeysStillDecrypt(t *testing.T) {
	old, _ := key(t, "2026-01")
	fresh, _ := key(t, "2026-12")
	before, err := New([]Key{old})
	require.NoError(t, err)
	sealedOld, err := before.Encode([]*commonpb.Payload{payloadOf(t, "Zoë")})
	require.NoError(t, err)

	after, err := New([]Key{fresh, old})
	require.NoError(t, err)
	assert.Equal(t, "2026-12", after.ActiveKeyID())
	dec, err := after.Decode(sealedOld)
	require.NoError(t, err)
	var name string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(dec[0], &name))
	assert.Equal(t, "Zoë", name)
	sealedNew, err := after.Encode([]*commonpb.Payload{payloadOf(t, "Zoë")})
	require.NoError(t, err)
	assert.Equal(t, "2026-12", string(sealedNew[0].Metadata[MetadataKeyID]))

	// A codec without the new key cannot read what it sealed, and says which key it needs.
	_, err = before.Decode(sealedNew)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `key "2026-12"`)
}

func TestPlaintextPayloadsPassThrough(t *testing.T) {
	k, _ := key(t, "k1")
	c, err := New([]Key{k})
	require.NoError(t, err)
	plain := payloadOf(t, "written before relay encrypted")
	dec, err := c.Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	assert.Same(t, plain, dec[0])
}

func TestTamperedOrRelabelledPayloadsAreRefused(t *testing.T) {
	a, _ := key(t, "a")
	b, _ := key(t, "b")
	c, err := New([]Key{a, b})
	require.NoError(t, err)
	enc, err := c.Encode([]*commonpb.Payload{payloadOf(t, "x")})
	require.NoError(t, err)

	tampered := &commonpb.Payload{Metadata: enc[0].Metadata, Data: append([]byte{}, enc[0].Data...)}
	tampered.Data[len(tampered.Data)-1] ^= 1
	_, err = c.Decode([]*commonpb.Payload{tampered})
	assert.Error(t, err)

	// The key id is authenticated: naming another key the codec holds does not decrypt.
	relabelled := &commonpb.Payload{Metadata: map[string][]byte{
		converter.MetadataEncoding: []byte(MetadataEncoding), MetadataKeyID: []byte("b")}, Data: enc[0].Data}
	_, err = c.Decode([]*commonpb.Payload{relabelled})
	assert.Error(t, err)

	short := &commonpb.Payload{Metadata: enc[0].Metadata, Data: []byte{1, 2}}
	_, err = c.Decode([]*commonpb.Payload{short})
	assert.ErrorContains(t, err, "too short")
}

func TestParseKeys(t *testing.T) {
	_, k1 := key(t, "k1")
	_, k2 := key(t, "k2")
	keys, err := ParseKeys(k1 + ", " + k2)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.Equal(t, "k1", keys[0].ID)

	short := "s:" + base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))
	for in, want := range map[string]string{
		"nocolon":       "want id:base64",
		"bad id!:AAAA":  "id \"bad id!\"",
		short:           "32 random bytes",
		"k:not base64!": "32 random bytes",
		k1 + "," + k1:   "listed twice",
	} {
		_, err := ParseKeys(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
		assert.NotContains(t, err.Error(), strings.TrimPrefix(k1, "k1:"), "an error never shows a key's bytes")
	}
	_, err = New(nil)
	assert.Error(t, err)
}
