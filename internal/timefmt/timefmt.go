// Package timefmt holds the one time layout relay writes: RFC 3339 with milliseconds, the
// form the outage API uses and the API answers with.
package timefmt

import "time"

// RFC3339Millis writes 2022-01-01T00:00:00.000Z (UTC) or 2022-01-01T01:00:00.000+01:00.
const RFC3339Millis = "2006-01-02T15:04:05.000Z07:00"

// Millis formats t in UTC as RFC3339Millis.
func Millis(t time.Time) string { return t.UTC().Format(RFC3339Millis) }
