package incidents

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
)

// ETag is the entity tag of a snapshot's body: the same bytes give the same tag on every
// server, whoever computed it.
func ETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// Gzip compresses a snapshot's body, once, at the best level: it is served many times.
func Gzip(body []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(body) / 8)
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
