package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"relay/internal/outagesync"
	"relay/internal/store"
	"relay/internal/store/storetest"
)

// newFuzzActivityEnv is a test activity environment that logs nothing, for activities
// that need an activity context (they stage under the run's id).
func newFuzzActivityEnv(activities any) *testsuite.TestActivityEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(activities)
	return env
}

// requireStaged checks what a fetch staged under key: exactly want.
func requireStaged(t *testing.T, st *store.Store, key string, want []byte) {
	t.Helper()
	got, err := st.GetBlob(context.Background(), key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("staged %q under %q (%v), want %q", got, key, err, want)
	}
}

// FuzzKFAnswer serves an arbitrary body as both outage API answers (GET /outages and
// GET /site-info/{id}): each activity stages exactly what the reference reads from the
// body and counts it, or refuses it with a decoding error.
func FuzzKFAnswer(f *testing.F) {
	for _, body := range []string{
		`[{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2021-07-26T17:09:31.036Z", "end": "2021-08-29T00:37:42.253Z"}, {"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"}]`,
		`[]`,
		`[null]`,
		`[{}]`,
		`[{"id": null, "begin": null, "end": null}]`,
		`[{"id": 5, "begin": true, "end": null}]`,
		`[{"ID": "a", "Begin": "2022-01-01T00:00:00Z"}]`,
		`[{"id": "a", "begin": "2022-01-01T00:00:00Z", "begin": "2021-01-01T00:00:00Z"}]`,
		`[{"id": "a", "begin": "2022-01-01T00:00:00Z"`,
		`{"outages": []}`,
		`{"id": "kingfisher", "name": "KingFisher", "devices": [{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1"}, {"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "name": "Battery 2"}]}`,
		`{"id": "kingfisher", "name": "KingFisher", "devices": []}`,
		`{"id": "kingfisher", "name": "KingFisher", "devices": null}`,
		`{"id": "kingfisher", "name": "KingFisher"}`,
		`{"devices": [null, {}, {"id": null, "name": null}]}`,
		`{"devices": [{"id": 1, "name": "x"}]}`,
		`{"devices": {"id": "a"}}`,
		`{"id": 5, "devices": []}`,
		`{"DEVICES": [{"Id": "a", "NAME": "b"}]}`,
		`{"name": "\u00e9\u0000", "devices": [{"id": "\ud800", "name": "<&>"}]}`,
		`{"message": "Forbidden"}`,
		`""`, ``, `<html></html>`, "\ufeff[]",
	} {
		f.Add([]byte(body))
	}
	answer, client := newCannedAnswer()
	st := storetest.Open(f)
	kf := NewKF(KFOptions{BaseURL: "http://kf.test", APIKey: "key", HTTP: client, Store: st, DefaultSince: time.Now()})
	env := newFuzzActivityEnv(kf)
	f.Fuzz(func(t *testing.T, body []byte) {
		answer.body = body
		sure := !hasFoldedDuplicates(body)

		v, err := env.ExecuteActivity(kf.FetchOutages, "kingfisher")
		wantCount, ok := refKFOutages(body)
		if err != nil {
			requireDecodeError(t, err, body)
			if sure && ok {
				t.Fatalf("outages %q: refused (%v), want %d outages", body, err, wantCount)
			}
		} else {
			var staged StagedOutages
			if err := v.Get(&staged); err != nil {
				t.Fatal(err)
			}
			if sure && !ok {
				t.Fatalf("outages %q: accepted as %d outages, want a decoding error", body, staged.Count)
			}
			if sure && staged.Count != wantCount {
				t.Fatalf("outages %q: %d outages, want %d", body, staged.Count, wantCount)
			}
			requireStaged(t, st, staged.Key, body)
		}

		v, err = env.ExecuteActivity(kf.FetchSiteInfo, "kingfisher")
		wantSite, wantDevices, ok := refKFSiteInfo(body)
		if err != nil {
			requireDecodeError(t, err, body)
			if sure && ok {
				t.Fatalf("site %q: refused (%v), want %+v", body, err, wantSite)
			}
			return
		}
		var site SiteInfo
		if err := v.Get(&site); err != nil {
			t.Fatal(err)
		}
		if sure && !ok {
			t.Fatalf("site %q: accepted as %+v, want a decoding error", body, site)
		}
		if !sure {
			return
		}
		wantSite.DevicesKey = site.DevicesKey
		if site != wantSite {
			t.Fatalf("site %q: %+v, want %+v", body, site, wantSite)
		}
		requireStaged(t, st, site.DevicesKey, wantDevices)
	})
}

// kfText reads an optional string member: missing and null are "".
func kfText(obj map[string]any, name string) (string, bool) {
	switch v, _ := jsonMember(obj, name); v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	default:
		return "", false
	}
}

// refKFOutages reads GET /outages as spec/upstreams.md describes it: a JSON array of
// outages (objects, or null), whose "id", "begin" and "end" are strings if present. Their
// values are the filter's business; here only the count is known.
func refKFOutages(body []byte) (int, bool) {
	v, ok := decodeGeneric(body)
	list, isList := v.([]any)
	if !ok || !isList {
		return 0, false
	}
	for _, o := range list {
		if o == nil {
			continue
		}
		obj, isObj := o.(map[string]any)
		if !isObj {
			return 0, false
		}
		for _, name := range []string{"id", "begin", "end"} {
			if _, ok := kfText(obj, name); !ok {
				return 0, false
			}
		}
	}
	return len(list), true
}

// refKFSiteInfo reads GET /site-info/{id}: an object with a "devices" array (of objects or
// nulls, whose "id" and "name" are strings if present) and optional "id" and "name"
// strings. It returns the site and the devices as they are staged.
func refKFSiteInfo(body []byte) (SiteInfo, []byte, bool) {
	v, ok := decodeGeneric(body)
	obj, isObj := v.(map[string]any)
	if !ok || !isObj {
		return SiteInfo{}, nil, false
	}
	id, ok1 := kfText(obj, "id")
	name, ok2 := kfText(obj, "name")
	devices, _ := jsonMember(obj, "devices")
	list, isList := devices.([]any)
	if !ok1 || !ok2 || !isList {
		return SiteInfo{}, nil, false
	}
	staged := make([]outagesync.Device, len(list))
	for i, d := range list {
		if d == nil {
			continue
		}
		dev, isObj := d.(map[string]any)
		if !isObj {
			return SiteInfo{}, nil, false
		}
		var ok1, ok2 bool
		staged[i].ID, ok1 = kfText(dev, "id")
		staged[i].Name, ok2 = kfText(dev, "name")
		if !ok1 || !ok2 {
			return SiteInfo{}, nil, false
		}
	}
	data, err := json.Marshal(staged)
	if err != nil {
		return SiteInfo{}, nil, false
	}
	return SiteInfo{ID: id, Name: name, Devices: len(list)}, data, true
}
