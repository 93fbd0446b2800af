package activities

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"relay/internal/ratelimit"
)

// Only the API's verdict about the IP is final: its 400 and its 500 ("cannot place").
// Everything else the API or relay gets wrong is retryable, so that the IP's events wait
// for the cause to pass instead of being written as unlocatable.
func TestLocateKeepsOnlyTheAPIsVerdictsFinal(t *testing.T) {
	answer, client := newCannedAnswer()
	limiter, err := ratelimit.New(freeSlots{}, "geoip", 1e9)
	require.NoError(t, err)
	geo := &Geo{api: geoAPI("http://geoip.test", client, nil), limiter: limiter}
	for _, tt := range []struct {
		status    int
		body      string
		wantType  string
		wantFinal bool
	}{
		{http.StatusBadRequest, `{"message":"malformed ip"}`, ErrUpstreamBadRequest, true},
		{http.StatusInternalServerError, `{"message":"cannot place 10.0.0.1"}`, ErrGeoCannotPlace, true},
		{http.StatusUnauthorized, `{"message":"invalid key"}`, ErrUpstreamUnauthorized, false},
		{http.StatusForbidden, `{"message":"plan expired"}`, ErrUpstreamUnauthorized, false},
		{http.StatusNotFound, `{"message":"no such route"}`, ErrUpstreamNotFound, false},
		{http.StatusTeapot, `{}`, ErrUpstreamRejected, false},
		{http.StatusServiceUnavailable, `{"message":"down"}`, ErrUpstreamUnavailable, false},
		{http.StatusBadGateway, `<html>bad gateway</html>`, ErrUpstreamUnavailable, false},
		{http.StatusTooManyRequests, `{"period_remaining": 0.5}`, ErrUpstreamRateLimited, false},
		{http.StatusOK, `{"country": "GB"}`, ErrUpstreamBadResponse, false}, // an answer of a new shape
		{http.StatusOK, `{"country": {"iso_code": "GB"}}`, ErrUpstreamBadResponse, false},
		{http.StatusOK, `<html>`, ErrUpstreamGarbled, false},
	} {
		answer.status, answer.body = tt.status, []byte(tt.body)
		_, err := geo.ask(context.Background(), "81.2.69.160")
		var app *temporal.ApplicationError
		require.True(t, errors.As(err, &app), "%d %s: %v", tt.status, tt.body, err)
		assert.Equal(t, tt.wantType, app.Type(), "%d %s", tt.status, tt.body)
		assert.Equal(t, tt.wantFinal, app.NonRetryable(), "%d %s: final", tt.status, tt.body)
		assert.Contains(t, app.Error(), "geoip", "the failure says which API")
		assert.Equal(t, tt.wantFinal, slices.Contains(GeoVerdicts, app.Type()), "%d %s: GeoVerdicts", tt.status, tt.body)
	}
}
