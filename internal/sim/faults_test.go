package sim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// send is one request whose failure to arrive whole is the point.
func send(t *testing.T, url string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	validAuth(KF)(req)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res, body, err
}

func TestResetRateClosesTheConnectionWithoutAnAnswer(t *testing.T) {
	s, url := serve(t, upstream(t, KF), "reset-rate=1,rate-limit=0")
	_, _, err := send(t, url+"/x")
	require.Error(t, err)
	// The call is recorded when the handler returns, which may be after the client saw
	// the connection close.
	require.Eventually(t, func() bool { return len(s.Calls()) == 1 }, 5*time.Second, 5*time.Millisecond, "the call recorded")
	assert.Equal(t, 0, s.Calls()[0].Status, "no status was ever sent")
}

func TestTruncateRateCutsTheAnswerShortAfterDoingTheWork(t *testing.T) {
	worked := 0
	up := upstream(t, KF)
	up.Routes = func(Knobs) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			worked++
			writeJSON(w, http.StatusOK, map[string]string{"answer": strings.Repeat("x", 1000)})
		})
	}
	s, url := serve(t, up, "truncate-rate=1,rate-limit=0")
	res, body, err := send(t, url+"/x")
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the client sees the answer end early")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Less(t, len(body), 1000)
	assert.Equal(t, 1, worked, "the upstream did the work before the answer was lost")
	// The call is recorded once its handler returns, which may be just after the client
	// saw the connection close.
	require.Eventually(t, func() bool { return len(s.Calls()) == 1 }, 5*time.Second, 5*time.Millisecond, "the call recorded")
	assert.Equal(t, 200, s.Calls()[0].Status)
}

func TestGarbleRateAnswersHTMLOrBrokenJSON(t *testing.T) {
	_, url := serve(t, upstream(t, KF), "garble-rate=1,rate-limit=0,seed=3")
	kinds := map[string]int{}
	for range 40 {
		res, body, err := send(t, url+"/x")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		var v any
		require.Error(t, json.Unmarshal(body, &v), "a garbled answer never decodes: %q", body)
		kinds[res.Header.Get("Content-Type")]++
	}
	assert.Positive(t, kinds["text/html; charset=utf-8"], "%v", kinds)
	assert.Positive(t, kinds["application/json"], "%v", kinds)
}

func TestAnswerFaultsLeaveErrorsAlone(t *testing.T) {
	// A 500 stays a 500 (with its envelope) however garbled the successes are.
	_, url := serve(t, upstream(t, KF), "failure-rate=1,garble-rate=1,truncate-rate=1,rate-limit=0")
	res, body, err := send(t, url+"/x")
	require.NoError(t, err)
	assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
	assert.JSONEq(t, `{"message":"simulated failure"}`, string(body))
}

func TestAnswerFaultsAtZeroChangeNothing(t *testing.T) {
	_, url := serve(t, upstream(t, KF), "reset-rate=0,garble-rate=0,truncate-rate=0,rate-limit=0")
	for range 20 {
		res, body, err := send(t, url+"/x")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.True(t, json.Valid(body))
	}
	_, _, err := send(t, "http://127.0.0.1:1/x")
	require.True(t, err != nil && !errors.Is(err, io.ErrUnexpectedEOF))
}
