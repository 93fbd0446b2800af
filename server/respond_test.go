package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ctxKey struct{}

// testReq is a small request type for decode: one required field, one checked number,
// and a few shapes to get wrong.
type testReq struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
	Inner struct {
		Flag bool `json:"flag"`
	} `json:"inner"`
}

func (r testReq) Valid(ctx context.Context) map[string]string {
	problems := map[string]string{}
	if r.Name == "" {
		problems["name"] = "required"
	}
	if r.Count < 0 {
		problems["count"] = "must not be negative"
	}
	if r.Name == "needs-ctx" && ctx.Value(ctxKey{}) == nil {
		problems["ctx"] = "Valid did not get the request context"
	}
	return problems
}

func postDecode(t *testing.T, hs *harness, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/test/decode", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return hs.do(t, req)
}

func TestDecodeAccepts(t *testing.T) {
	hs := newHarness(t, Config{})
	tests := []struct {
		name, body string
		want       string
	}{
		{"all fields", `{"name":"a","count":2,"tags":["x"],"inner":{"flag":true}}`, `{"name":"a","count":2,"tags":["x"],"inner":{"flag":true}}`},
		{"partial", `{"name":"a"}`, `{"name":"a","count":0,"inner":{"flag":false}}`},
		{"surrounding whitespace", " \n\t{\"name\":\"a\"}\r\n  ", `{"name":"a","count":0,"inner":{"flag":false}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := postDecode(t, hs, tt.body)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.JSONEq(t, tt.want, rec.Body.String())
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	hs := newHarness(t, Config{})
	tests := []struct {
		name    string
		body    string
		message string            // exact, unless prefix is set
		prefix  bool              // message only has to start with message
		fields  map[string]string // nil: no fields expected
	}{
		{name: "empty body", body: ``, message: "body is empty: want a JSON object"},
		{name: "whitespace body", body: " \n\t ", message: "body is empty: want a JSON object"},
		{name: "malformed", body: `{"name":}`, message: "malformed JSON at byte 9: ", prefix: true},
		{name: "not JSON at all", body: `x=1`, message: "malformed JSON at byte 1: ", prefix: true},
		{name: "single quotes", body: `{'name':'a'}`, message: "malformed JSON at byte 2: ", prefix: true},
		{name: "trailing comma", body: `{"name":"a",}`, message: "malformed JSON at byte 13: ", prefix: true},
		{name: "truncated after value", body: `{"name":"a"`, message: "malformed JSON: body ends early"},
		{name: "truncated in string", body: `{"name":"a`, message: "malformed JSON: body ends early"},
		{name: "truncated after colon", body: `{"name":`, message: "malformed JSON: body ends early"},
		{name: "only an opening brace", body: `{`, message: "malformed JSON: body ends early"},
		{
			name: "number for string", body: `{"name":1}`,
			message: "invalid fields: name: want a string, got number",
			fields:  map[string]string{"name": "want a string, got number"},
		},
		{
			name: "string for number", body: `{"name":"a","count":"7"}`,
			message: "invalid fields: count: want a number, got string",
			fields:  map[string]string{"count": "want a number, got string"},
		},
		{
			name: "fraction for integer", body: `{"name":"a","count":1.5}`,
			message: "invalid fields: count: want a number, got number 1.5",
			fields:  map[string]string{"count": "want a number, got number 1.5"},
		},
		{
			name: "string for array", body: `{"name":"a","tags":"x"}`,
			message: "invalid fields: tags: want an array, got string",
			fields:  map[string]string{"tags": "want an array, got string"},
		},
		{
			name: "array for object", body: `{"name":"a","inner":[]}`,
			message: "invalid fields: inner: want an object, got array",
			fields:  map[string]string{"inner": "want an object, got array"},
		},
		{
			name: "nested wrong type is named by path", body: `{"name":"a","inner":{"flag":"yes"}}`,
			message: "invalid fields: inner.flag: want true or false, got string",
			fields:  map[string]string{"inner.flag": "want true or false, got string"},
		},
		{
			name: "unknown field", body: `{"name":"a","colour":"red"}`,
			message: "invalid fields: colour: unknown field",
			fields:  map[string]string{"colour": "unknown field"},
		},
		{
			name: "a field name in another case", body: `{"NAME":"a"}`,
			message: "invalid fields: NAME: unknown field (names are case-sensitive)",
			fields:  map[string]string{"NAME": "unknown field (names are case-sensitive)"},
		},
		{
			name: "a nested field name in another case", body: `{"name":"a","inner":{"Flag":true}}`,
			message: "invalid fields: Flag: unknown field (names are case-sensitive)",
			fields:  map[string]string{"Flag": "unknown field (names are case-sensitive)"},
		},
		{
			name: "unknown nested field", body: `{"name":"a","inner":{"flag":true,"extra":1}}`,
			message: "invalid fields: extra: unknown field", prefix: false,
			fields: map[string]string{"extra": "unknown field"},
		},
		{
			name: "a member given twice", body: `{"name":"a","name":"b"}`,
			message: "invalid fields: name: given more than once: give each member once",
			fields:  map[string]string{"name": "given more than once: give each member once"},
		},
		{
			name: "a nested member given twice, named by path", body: `{"name":"a","inner":{"flag":true,"flag":false}}`,
			message: "invalid fields: inner.flag: given more than once: give each member once",
			fields:  map[string]string{"inner.flag": "given more than once: give each member once"},
		},
		{
			name: "the same name in another case is not the same member", body: `{"name":"a","NAME":"b"}`,
			message: "invalid fields: NAME: unknown field (names are case-sensitive)",
			fields:  map[string]string{"NAME": "unknown field (names are case-sensitive)"},
		},
		{name: "second object", body: `{"name":"a"} {"name":"b"}`, message: "unexpected data after the JSON object"},
		{name: "trailing garbage", body: `{"name":"a"}x`, message: "unexpected data after the JSON object"},
		{name: "trailing number", body: `{"name":"a"} 1`, message: "unexpected data after the JSON object"},
		{name: "trailing closing brace", body: `{"name":"a"}}`, message: "unexpected data after the JSON object"},
		{name: "trailing non-JSON whitespace", body: "{\"name\":\"a\"}\u00a0", message: "unexpected data after the JSON object"},
		{name: "trailing closing bracket", body: `{"name":"a"}]`, message: "unexpected data after the JSON object"},
		{name: "array body", body: `[{"name":"a"}]`, message: "body must be a JSON object, not array"},
		{name: "string body", body: `"a"`, message: "body must be a JSON object, not string"},
		{name: "number body", body: `42`, message: "body must be a JSON object, not number"},
		{name: "boolean body", body: `true`, message: "body must be a JSON object, not bool"},
		{name: "null body", body: ` null `, message: "body must be a JSON object, not null"},
		{
			name: "one Valid problem", body: `{"count":3}`,
			message: "invalid fields: name: required",
			fields:  map[string]string{"name": "required"},
		},
		{
			name: "every Valid problem, sorted", body: `{"count":-1}`,
			message: "invalid fields: count: must not be negative; name: required",
			fields:  map[string]string{"name": "required", "count": "must not be negative"},
		},
		{
			name: "empty object", body: `{}`,
			message: "invalid fields: name: required",
			fields:  map[string]string{"name": "required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := postDecode(t, hs, tt.body)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			e := errorOf(t, rec)
			assert.Equal(t, CodeInvalid, e.Error.Code)
			if tt.prefix {
				assert.True(t, strings.HasPrefix(e.Error.Message, tt.message), "message %q does not start with %q", e.Error.Message, tt.message)
			} else {
				assert.Equal(t, tt.message, e.Error.Message)
			}
			assert.Equal(t, tt.fields, e.Error.Fields)
			assert.NotContains(t, hs.log.String(), `"msg":"internal error"`, "client mistakes are not internal errors")
		})
	}
}

func TestDecodePassesTheRequestContextToValid(t *testing.T) {
	hs := newHarness(t, Config{})
	hs.h.POST("/test/decode-ctx", func(c *gin.Context) {
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ctxKey{}, true))
		if _, err := decode[testReq](c); err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		c.String(http.StatusOK, "ok")
	})
	req := httptest.NewRequest(http.MethodPost, "/test/decode-ctx", strings.NewReader(`{"name":"needs-ctx"}`))
	rec := hs.do(t, req)
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// bigJSON is a valid request body of exactly n bytes.
func bigJSON(n int) string {
	const head, tail = `{"name":"`, `"}`
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

func TestBodyAtTheLimitIsAccepted(t *testing.T) {
	hs := newHarness(t, Config{})
	body := bigJSON(MaxBodyBytes)
	require.Len(t, body, 1<<20)
	rec := postDecode(t, hs, body)
	assert.Equal(t, http.StatusOK, rec.Code, "a body of exactly 1 MiB is allowed")
}

func assertTooLarge(t *testing.T, h http.Header, status int, body []byte) {
	t.Helper()
	require.Equal(t, http.StatusRequestEntityTooLarge, status, "%.300s", body)
	e := parseError(t, h, body)
	assert.Equal(t, CodeTooLarge, e.Error.Code)
	assert.Equal(t, "body is larger than 1048576 bytes", e.Error.Message)
}

func TestBodyOverTheLimitWithContentLength(t *testing.T) {
	hs := newHarness(t, Config{})
	req := httptest.NewRequest(http.MethodPost, "/test/decode", strings.NewReader(bigJSON(MaxBodyBytes+1)))
	require.EqualValues(t, MaxBodyBytes+1, req.ContentLength)
	rec := hs.do(t, req)
	assertTooLarge(t, rec.Header(), rec.Code, rec.Body.Bytes())

	// The declared length is refused before routing, on any route.
	req = httptest.NewRequest(http.MethodGet, "/healthz", strings.NewReader(strings.Repeat(" ", MaxBodyBytes+1)))
	rec = hs.do(t, req)
	assertTooLarge(t, rec.Header(), rec.Code, rec.Body.Bytes())
}

func TestBodyOverTheLimitWithoutContentLength(t *testing.T) {
	hs := newHarness(t, Config{})
	for _, size := range []int{MaxBodyBytes + 1, 3 * MaxBodyBytes} {
		req := httptest.NewRequest(http.MethodPost, "/test/decode", io.MultiReader(strings.NewReader(bigJSON(size))))
		req.ContentLength = -1 // unknown, as with chunked transfer
		rec := hs.do(t, req)
		assertTooLarge(t, rec.Header(), rec.Code, rec.Body.Bytes())
	}
}

func TestBodyOverTheLimitOverRealServer(t *testing.T) {
	hs := newHarness(t, Config{})
	srv := httptest.NewServer(hs.h)
	defer srv.Close()
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second},
	}

	t.Run("declared length", func(t *testing.T) {
		// With Expect: 100-continue the server refuses before the body is sent, as curl
		// and most clients do for big uploads.
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/test/decode", strings.NewReader(bigJSON(MaxBodyBytes+1)))
		require.NoError(t, err)
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assertTooLarge(t, resp.Header, resp.StatusCode, body)
	})

	t.Run("chunked", func(t *testing.T) {
		// A reader of unknown length makes the client send Transfer-Encoding: chunked.
		body := bigJSON(MaxBodyBytes + 64<<10)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/test/decode", io.MultiReader(strings.NewReader(body)))
		require.NoError(t, err)
		require.EqualValues(t, 0, req.ContentLength)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assertTooLarge(t, resp.Header, resp.StatusCode, got)
	})

	t.Run("chunked within the limit", func(t *testing.T) {
		for path, want := range map[string]string{
			"/test/decode": `{"name":"small","count":0,"inner":{"flag":false}}`,
			// proves the client really sent it chunked, with no length
			"/test/length": `{"content_length":-1,"transfer_encoding":["chunked"]}`,
		} {
			req, err := http.NewRequest(http.MethodPost, srv.URL+path, io.MultiReader(strings.NewReader(`{"name":"small"}`)))
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(got))
			assert.JSONEq(t, want, string(got), path)
		}
	})
}

func TestRespondErrorWritesTheEnvelope(t *testing.T) {
	hs := newHarness(t, Config{})
	rec := postDecode(t, hs, `{"count":-1}`)
	var raw map[string]map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	assert.Len(t, raw, 1, "the envelope has one key")
	assert.ElementsMatch(t, []string{"code", "message", "fields"}, keys(raw["error"]))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestDuplicateKey(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1,"b":2}`:                         "",
		`{"a":1,"a":2}`:                         "a",
		`{"a":{"b":1},"c":{"b":2}}`:             "",
		`{"a":{"b":1,"b":2}}`:                   "a.b",
		`{"a":[{"b":1},{"b":2}]}`:               "",
		`{"a":[{"b":1,"b":2}]}`:                 "b",
		`{"a":[1,{"x":[]}],"b":{},"a":null}`:    "a",
		`[{"a":1},{"a":1}]`:                     "",
		`{"s":"a","t":"s"}`:                     "",
		`{"a":{"a":{"a":1}},"b":{"a":1,"c":1}}`: "",
	} {
		got, found := duplicateKey([]byte(body))
		assert.Equal(t, want, got, body)
		assert.Equal(t, want != "", found, body)
	}
}
