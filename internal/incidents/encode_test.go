package incidents

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGzipRoundTripsAndETagNamesTheBody(t *testing.T) {
	body := bytes.Repeat([]byte(`{"4506":{"low":{"count":0,"incidents":[]}}}`), 500)
	gz, err := Gzip(body)
	require.NoError(t, err)
	assert.Less(t, len(gz), len(body)/10)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	require.NoError(t, err)
	got, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, body, got)

	assert.Equal(t, ETag(body), ETag(append([]byte(nil), body...)))
	assert.NotEqual(t, ETag(body), ETag(body[1:]))
	assert.Regexp(t, `^"[0-9a-f]{32}"$`, ETag(body))
}
