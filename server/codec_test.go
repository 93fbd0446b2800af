package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"relay/internal/payloadcodec"
)

const uiOrigin = "http://127.0.0.1:8233"

func codecServer(t *testing.T, cfg Config) (http.Handler, *payloadcodec.Codec) {
	t.Helper()
	k, _, err := payloadcodec.NewKey("test")
	require.NoError(t, err)
	codec, err := payloadcodec.New([]payloadcodec.Key{k})
	require.NoError(t, err)
	return New(slog.New(slog.DiscardHandler), cfg, Deps{Registry: prometheus.NewRegistry(), Codec: codec}), codec
}

func postPayloads(t *testing.T, h http.Handler, path string, ps []*commonpb.Payload, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func payloadsOf(t *testing.T, w *httptest.ResponseRecorder) []*commonpb.Payload {
	t.Helper()
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var ps commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(w.Body.Bytes(), &ps))
	return ps.Payloads
}

// The codec endpoint speaks Temporal's codec server protocol: what relay's clients
// encrypted, it decrypts for the Web UI and the CLI, and what it encrypts, they read.
func TestCodecEndpointDecryptsWhatRelayEncrypted(t *testing.T) {
	h, codec := codecServer(t, Config{})
	plain, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"ip": "81.2.69.142"})
	require.NoError(t, err)
	sealed, err := codec.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)

	got := payloadsOf(t, postPayloads(t, h, "/codec/decode", sealed))
	require.Len(t, got, 1)
	assert.JSONEq(t, `{"ip":"81.2.69.142"}`, string(got[0].Data))

	enc := payloadsOf(t, postPayloads(t, h, "/codec/encode", []*commonpb.Payload{plain}))
	assert.NotContains(t, string(enc[0].Data), "81.2.69.142")
	back, err := codec.Decode(enc)
	require.NoError(t, err)
	assert.Equal(t, plain.Data, back[0].Data)

	w := postPayloads(t, h, "/codec/decode", []*commonpb.Payload{{Metadata: sealed[0].Metadata, Data: []byte("garbage")}})
	assert.Equal(t, http.StatusBadRequest, w.Code)
	req := httptest.NewRequest(http.MethodPost, "/codec/decode", strings.NewReader("{not json"))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	assert.Equal(t, http.StatusBadRequest, w.Code)
}

// The endpoint is behind the API keys; a browser at the Web UI's origin gets through CORS
// (its preflight carries no key), another origin gets no CORS headers.
func TestCodecEndpointKeysAndCORS(t *testing.T) {
	h, _ := codecServer(t, Config{APIKeys: []string{"s3cret"}, CodecCORSOrigins: []string{uiOrigin}})
	assert.Equal(t, http.StatusUnauthorized, postPayloads(t, h, "/codec/decode", nil).Code)
	w := postPayloads(t, h, "/codec/decode", nil, "Authorization", "Bearer s3cret", "Origin", uiOrigin)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, uiOrigin, w.Header().Get("Access-Control-Allow-Origin"))

	preflight := func(origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodOptions, "/codec/decode", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	w = preflight(uiOrigin)
	assert.Equal(t, http.StatusNoContent, w.Code)
	assert.Equal(t, uiOrigin, w.Header().Get("Access-Control-Allow-Origin"))
	assert.Contains(t, w.Header().Get("Access-Control-Allow-Headers"), "X-Namespace")
	w = preflight("http://evil.example")
	assert.Empty(t, w.Header().Get("Access-Control-Allow-Origin"))
	assert.NotEqual(t, http.StatusNoContent, w.Code)
}

func TestCodecEndpointWithoutKeysSaysPayloadsAreInTheClear(t *testing.T) {
	h := New(slog.New(slog.DiscardHandler), Config{}, Deps{Registry: prometheus.NewRegistry()})
	w := postPayloads(t, h, "/codec/decode", nil)
	assert.Equal(t, http.StatusNotFound, w.Code)
	var env struct {
		Error struct{ Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &env))
	assert.Contains(t, env.Error.Message, "RELAY_PAYLOAD_KEYS")
}
