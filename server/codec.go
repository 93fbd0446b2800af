package server

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"relay/internal/payloadcodec"
)

// CodecPath is the root of the codec endpoint: Temporal's codec server protocol
// (POST /codec/encode and /codec/decode, {"payloads":[...]} in protojson), through which
// the Web UI and `temporal ... --codec-endpoint` show the payloads relay encrypted.
const CodecPath = "/codec"

// addCodecRoutes serves the codec endpoint with codec (the SDK's handler speaks the
// protocol), behind the API keys like every route. Without a codec (no RELAY_PAYLOAD_KEYS)
// it says that payloads are not encrypted.
func addCodecRoutes(r *gin.Engine, logger *slog.Logger, codec converter.PayloadCodec) {
	h := func(c *gin.Context) {
		respondError(c, logger, Errorf(CodeNotFound, "payloads are not encrypted here (no RELAY_PAYLOAD_KEYS): there is nothing to decode"))
	}
	if codec != nil {
		h = gin.WrapH(converter.NewPayloadCodecHTTPHandler(codec))
	}
	r.POST(CodecPath+"/encode", h)
	r.POST(CodecPath+"/decode", h)
}

// withCodecCORS lets the Web UI, from the browser at one of origins, call the codec
// endpoint: it answers the preflight (which carries no API key) and names the origin on
// the answer. Other routes and origins get no CORS headers.
func withCodecCORS(origins []string) gin.HandlerFunc {
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if !strings.HasPrefix(c.Request.URL.Path, CodecPath+"/") || origin == "" || !slices.Contains(origins, origin) {
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if c.Request.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}

// memoReader decodes workflows' memos and failures with relay's converters: they are
// payloads, encrypted like the rest. The zero reader reads them in the clear.
type memoReader struct {
	dc converter.DataConverter
	fc converter.FailureConverter
}

func newMemoReader(codec converter.PayloadCodec) memoReader {
	if codec == nil {
		return memoReader{}
	}
	dc := payloadcodec.DataConverter(codec) // relay's own converters, as its clients use them
	return memoReader{dc, payloadcodec.FailureConverter(dc)}
}

// failureMessage is a failure's own message (an activity attempt's last failure, say),
// decrypted when relay's failure converter encrypted it.
func (m memoReader) failureMessage(f *failurepb.Failure) string {
	fc := m.fc
	if fc == nil {
		fc = temporal.GetDefaultFailureConverter()
	}
	err := fc.FailureToError(f)
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	if err != nil {
		return err.Error()
	}
	return f.GetMessage()
}

// errNoMemo says a memo lacks a field.
var errNoMemo = errors.New("not in the memo")

// value decodes field of a workflow's memo into v: errNoMemo when it has no such field.
func (m memoReader) value(memo *commonpb.Memo, field string, v any) error {
	p, ok := memo.GetFields()[field]
	if !ok {
		return errNoMemo
	}
	if m.dc == nil { // the zero reader: memos in the clear
		return converter.GetDefaultDataConverter().FromPayload(p, v)
	}
	return m.dc.FromPayload(p, v)
}

// str reads a string field of a workflow's memo.
func (m memoReader) str(memo *commonpb.Memo, field string) (string, bool) {
	var s string
	ok := m.value(memo, field, &s) == nil
	return s, ok
}
