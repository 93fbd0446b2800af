package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"relay/internal/outagesync"
	"relay/internal/store"
	"relay/internal/store/storetest"
)

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
// body and counts it, or refuses it with a decoding error; the filter then keeps, drops
// and counts the staged outages exactly as the reference reads the rules.
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
		`[{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2022-05-23T12:21:27.377Z", "end": "2022-11-13T02:16:38.905Z"}, {"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "last tuesday", "end": "2022-11-13T02:16:38.905Z"}, {"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "begin": 1653308487, "end": "x"}, {"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "begin": "2022-05-23T12:21:27.377Z", "end": "soon"}, {"begin": "2022-05-23T12:21:27.377Z", "end": "2022-11-13T02:16:38.905Z"}, 5, "x", [], null]`,
		`[{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "Begin": "2022-05-23T12:21:27.377Z", "END": "2022-11-13T02:16:38.905Z", "name": 7}]`,
		`[{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2022-05-23T12:21:27.377Z", "end": {"at": "2022-11-13T02:16:38.905Z"}}]`,
		`{"outages": []}`,
		`null`, `5`, `"[]"`,
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
	kf := NewKF(KFOptions{BaseURL: "http://kf.test", APIKey: "key", HTTP: client, Store: st, DefaultSince: cutoff})
	env := newActivityEnv(slog.New(slog.DiscardHandler), kf)
	// The filter runs against the worked example's site (spec/upstreams.md §4).
	const devicesKey = "fuzz/kingfisher-devices"
	devices := map[string]string{"002b28fc-283c-47ec-9af2-ea287336dc1b": "Battery 1", "086b0d53-b311-4441-aaf3-935646f03d4d": "Battery 2"}
	if err := st.PutBlob(context.Background(), devicesKey, []byte(`[
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1"},
		{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "name": "Battery 2"}]`)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		answer.body = body
		sure := !hasFoldedDuplicates(body)

		v, err := env.ExecuteActivity(kf.FetchOutages, "kingfisher")
		wantKept, wantCounts, ok := refKFFilter(body, cutoff, devices)
		if err != nil {
			requireDecodeError(t, err, body)
			if sure && ok {
				t.Fatalf("outages %q: refused (%v), want %d outages", body, err, wantCounts.Fetched)
			}
		} else {
			var staged StagedOutages
			if err := v.Get(&staged); err != nil {
				t.Fatal(err)
			}
			if sure && !ok {
				t.Fatalf("outages %q: accepted as %d outages, want a decoding error", body, staged.Count)
			}
			if sure && staged.Count != wantCounts.Fetched {
				t.Fatalf("outages %q: %d outages, want %d", body, staged.Count, wantCounts.Fetched)
			}
			requireStaged(t, st, staged.Key, body)

			// Whatever the items hold, the filter keeps or counts each; it fails only when
			// not one of them can be read, rather than post [] over the site's list.
			v, err := env.ExecuteActivity(kf.FilterSiteOutages, FilterInput{SiteID: "kingfisher", OutagesKey: staged.Key, DevicesKey: devicesKey})
			allInvalid := sure && wantCounts.Fetched > 0 && wantCounts.DroppedInvalid == wantCounts.Fetched
			if err != nil {
				var app *temporal.ApplicationError
				if (sure && !allInvalid) || !errors.As(err, &app) || app.Type() != ErrInvalidUpstreamData {
					t.Fatalf("outages %q: the filter failed: %v", body, err)
				}
			} else {
				if allInvalid {
					t.Fatalf("outages %q: not one outage can be read, yet the filter passed", body)
				}
				var filtered FilterResult
				if err := v.Get(&filtered); err != nil {
					t.Fatal(err)
				}
				c := filtered.Counts
				if c.Fetched != staged.Count || c.Fetched != c.Kept+c.DroppedBeforeSince+c.DroppedUnknownDevice+c.DroppedInvalid {
					t.Fatalf("outages %q: counts %+v do not add up to %d", body, c, staged.Count)
				}
				if sure {
					if c != wantCounts {
						t.Fatalf("outages %q: counts %+v, want %+v", body, c, wantCounts)
					}
					want, err := json.Marshal(wantKept)
					if err != nil {
						t.Fatal(err)
					}
					requireStaged(t, st, filtered.PostKey, want)
				}
			}
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

// refKFFilter reads GET /outages as spec/upstreams.md §4 and outagesync.Filter's rule
// describe it, for the site whose devices maps ids to names. The answer must be a JSON
// array; an item is invalid unless it is an object whose "id", "begin" and "end" are
// non-empty strings and whose begin is an RFC 3339 time. A valid outage is dropped if it
// begins before since, else if its device is not the site's, else (as invalid) if its end
// is not an RFC 3339 time; the rest are kept, named, in order.
func refKFFilter(body []byte, since time.Time, devices map[string]string) ([]outagesync.SiteOutage, outagesync.Counts, bool) {
	v, ok := decodeGeneric(body)
	list, isList := v.([]any)
	if !ok || !isList {
		return nil, outagesync.Counts{}, false
	}
	kept := []outagesync.SiteOutage{}
	c := outagesync.Counts{Fetched: len(list)}
	for _, item := range list {
		obj, _ := item.(map[string]any)
		id, idOK := kfText(obj, "id")
		beginText, beginOK := kfText(obj, "begin")
		endText, endOK := kfText(obj, "end")
		begin, beginErr := time.Parse(time.RFC3339Nano, beginText)
		_, endErr := time.Parse(time.RFC3339Nano, endText)
		name, known := devices[id]
		switch {
		case obj == nil || !idOK || !beginOK || !endOK || id == "" || endText == "" || beginErr != nil:
			c.DroppedInvalid++
		case begin.Before(since):
			c.DroppedBeforeSince++
		case !known:
			c.DroppedUnknownDevice++
		case endErr != nil:
			c.DroppedInvalid++
		default:
			c.Kept++
			kept = append(kept, outagesync.SiteOutage{DeviceID: id, Name: name, Begin: beginText, End: endText})
		}
	}
	return kept, c, true
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
