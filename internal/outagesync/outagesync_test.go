package outagesync

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cutoff is the default of spec/upstreams.md §4.
var cutoff = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	battery1 = "002b28fc-283c-47ec-9af2-ea287336dc1b"
	battery2 = "086b0d53-b311-4441-aaf3-935646f03d4d"
	stranger = "04ccad00-eb8d-4045-8994-b569cb4b64c1"
	outsider = "27820d4a-1bc4-4fc1-a5f0-bcb3627e94a1"
)

var kingfisher = []Device{{ID: battery1, Name: "Battery 1"}, {ID: battery2, Name: "Battery 2"}}

// TestFilterWorkedExample is the table of spec/upstreams.md §4, site kingfisher.
func TestFilterWorkedExample(t *testing.T) {
	list := []Outage{
		{battery1, "2021-07-26T17:09:31.036Z", "2021-08-29T00:37:42.253Z"}, // before cutoff
		{battery1, "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"}, // Battery 1
		{battery1, "2022-12-04T09:59:33.628Z", "2022-12-12T22:35:13.815Z"}, // Battery 1
		{stranger, "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"}, // not a site device
		{battery2, "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"}, // Battery 2
		{outsider, "2021-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"}, // both
	}
	got, counts, err := Filter(cutoff, kingfisher, list)
	require.NoError(t, err)
	assert.Equal(t, []SiteOutage{
		{battery1, "Battery 1", "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
		{battery1, "Battery 1", "2022-12-04T09:59:33.628Z", "2022-12-12T22:35:13.815Z"},
		{battery2, "Battery 2", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"},
	}, got)
	assert.Equal(t, Counts{Fetched: 6, Kept: 3, DroppedBeforeSince: 2, DroppedUnknownDevice: 1}, counts)

	body, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, `[
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1", "begin": "2022-05-23T12:21:27.377Z", "end": "2022-11-13T02:16:38.905Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1", "begin": "2022-12-04T09:59:33.628Z", "end": "2022-12-12T22:35:13.815Z"},
		{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "name": "Battery 2", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"}
	]`, string(body))

	body, err = json.Marshal(counts)
	require.NoError(t, err)
	assert.Equal(t, `{"fetched":6,"kept":3,"dropped_before_since":2,"dropped_unknown_device":1}`, string(body))
}

func TestFilter(t *testing.T) {
	b1 := func(begin string) Outage {
		return Outage{DeviceID: battery1, Begin: begin, End: "2023-01-01T00:00:00.000Z"}
	}
	kept1 := func(begin string) SiteOutage {
		return SiteOutage{DeviceID: battery1, Name: "Battery 1", Begin: begin, End: "2023-01-01T00:00:00.000Z"}
	}
	plus2 := time.FixedZone("+02:00", 2*3600)

	tests := []struct {
		name    string
		since   time.Time
		devices []Device
		list    []Outage
		want    []SiteOutage
		counts  Counts
	}{
		{
			name:   "millisecond boundary",
			list:   []Outage{b1("2021-12-31T23:59:59.999Z"), b1("2022-01-01T00:00:00.000Z"), b1("2022-01-01T00:00:00.001Z")},
			want:   []SiteOutage{kept1("2022-01-01T00:00:00.000Z"), kept1("2022-01-01T00:00:00.001Z")},
			counts: Counts{DroppedBeforeSince: 1},
		},
		{
			name:   "nanosecond before the cutoff",
			list:   []Outage{b1("2021-12-31T23:59:59.999999999Z"), b1("2021-12-31T23:59:59.9999999999Z")},
			counts: Counts{DroppedBeforeSince: 2},
		},
		{
			name:   "missing milliseconds",
			list:   []Outage{b1("2021-12-31T23:59:59Z"), b1("2022-01-01T00:00:00Z"), b1("2022-06-01T08:00:00+02:00")},
			want:   []SiteOutage{kept1("2022-01-01T00:00:00Z"), kept1("2022-06-01T08:00:00+02:00")},
			counts: Counts{DroppedBeforeSince: 1},
		},
		{
			name: "offsets on both sides of the cutoff",
			list: []Outage{
				b1("2022-01-01T01:00:00+01:00"),     // the cutoff itself: kept
				b1("2022-01-01T00:59:59.999+01:00"), // a millisecond before
				b1("2021-12-31T19:00:00.000-05:00"), // the cutoff itself: kept
				b1("2021-12-31T18:59:59.999-05:00"), // a millisecond before
				b1("2021-12-31T23:30:00-01:00"),     // sorts before the cutoff as a string, is after it
				b1("2022-01-01T00:30:00+01:00"),     // sorts after the cutoff as a string, is before it
				b1("2022-01-01T00:00:00.000+00:00"),
				b1("2022-01-01T00:00:00.000-00:00"),
				b1("2022-01-01T23:58:59.999+23:59"), // 2021-12-31T23:59:59.999Z
			},
			want: []SiteOutage{
				kept1("2022-01-01T01:00:00+01:00"),
				kept1("2021-12-31T19:00:00.000-05:00"),
				kept1("2021-12-31T23:30:00-01:00"),
				kept1("2022-01-01T00:00:00.000+00:00"),
				kept1("2022-01-01T00:00:00.000-00:00"),
			},
			counts: Counts{DroppedBeforeSince: 4},
		},
		{
			name:   "cutoff given in another zone, below the millisecond",
			since:  time.Date(2022, 1, 1, 2, 0, 0, 500_000, plus2), // 2022-01-01T00:00:00.0005Z
			list:   []Outage{b1("2022-01-01T00:00:00.000Z"), b1("2022-01-01T00:00:00.0005Z"), b1("2022-01-01T00:00:00.001Z")},
			want:   []SiteOutage{kept1("2022-01-01T00:00:00.0005Z"), kept1("2022-01-01T00:00:00.001Z")},
			counts: Counts{DroppedBeforeSince: 1},
		},
		{
			name: "several outages per device, input order kept",
			list: []Outage{
				{battery2, "2022-03-01T00:00:00.000Z", "2022-03-02T00:00:00.000Z"},
				{battery1, "2022-02-01T00:00:00.000Z", "2022-02-02T00:00:00.000Z"},
				{battery2, "2022-01-01T00:00:00.000Z", "2022-01-02T00:00:00.000Z"},
				{battery1, "2022-02-01T00:00:00.000Z", "2022-02-02T00:00:00.000Z"}, // a repeat is kept too
				{battery2, "2023-01-01T00:00:00.000Z", "2023-01-02T00:00:00.000Z"},
			},
			want: []SiteOutage{
				{battery2, "Battery 2", "2022-03-01T00:00:00.000Z", "2022-03-02T00:00:00.000Z"},
				{battery1, "Battery 1", "2022-02-01T00:00:00.000Z", "2022-02-02T00:00:00.000Z"},
				{battery2, "Battery 2", "2022-01-01T00:00:00.000Z", "2022-01-02T00:00:00.000Z"},
				{battery1, "Battery 1", "2022-02-01T00:00:00.000Z", "2022-02-02T00:00:00.000Z"},
				{battery2, "Battery 2", "2023-01-01T00:00:00.000Z", "2023-01-02T00:00:00.000Z"},
			},
		},
		{
			name: "unknown devices, and both reasons counted once as before the cutoff",
			list: []Outage{
				{stranger, "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"},
				{outsider, "2021-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"},
				{"", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"},
				{battery1[:8], "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"},
				{"002B28FC-283C-47EC-9AF2-EA287336DC1B", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"}, // ids match exactly
			},
			counts: Counts{DroppedBeforeSince: 1, DroppedUnknownDevice: 4},
		},
		{
			name:    "empty site",
			devices: []Device{},
			list:    []Outage{b1("2022-05-23T12:21:27.377Z"), b1("2021-05-23T12:21:27.377Z")},
			counts:  Counts{DroppedBeforeSince: 1, DroppedUnknownDevice: 1},
		},
		{
			name: "no outages",
			list: []Outage{},
		},
		{
			name: "no outages, nil list",
		},
		{
			name:    "duplicate device ids: the first name wins",
			devices: []Device{{battery1, "Battery 1"}, {battery2, "Battery 2"}, {battery1, "Battery One"}, {battery2, ""}},
			list:    []Outage{{battery1, "2022-05-23T12:21:27.377Z", "x"}, {battery2, "2022-05-23T12:21:27.377Z", "y"}},
			want:    []SiteOutage{{battery1, "Battery 1", "2022-05-23T12:21:27.377Z", "x"}, {battery2, "Battery 2", "2022-05-23T12:21:27.377Z", "y"}},
		},
		{
			name: "begin and end echoed byte for byte, end never checked",
			list: []Outage{
				{battery1, "2022-05-23T12:21:27.377+00:00", "2022-11-13T04:16:38.905+02:00"},
				{battery1, "2022-05-23T12:21:27Z", ""},
				{battery1, "2022-05-23T12:21:27.3770000Z", "not a time at all"},
				{battery1, "2022-05-23T12:21:27.123456789123-07:30", "2021-01-01T00:00:00Z"}, // ends before it begins
			},
			want: []SiteOutage{
				{battery1, "Battery 1", "2022-05-23T12:21:27.377+00:00", "2022-11-13T04:16:38.905+02:00"},
				{battery1, "Battery 1", "2022-05-23T12:21:27Z", ""},
				{battery1, "Battery 1", "2022-05-23T12:21:27.3770000Z", "not a time at all"},
				{battery1, "Battery 1", "2022-05-23T12:21:27.123456789123-07:30", "2021-01-01T00:00:00Z"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			since, devices := tt.since, tt.devices
			if since.IsZero() {
				since = cutoff
			}
			if devices == nil && tt.name != "empty site" {
				devices = kingfisher
			}
			want, counts := tt.want, tt.counts
			if want == nil {
				want = []SiteOutage{}
			}
			counts.Fetched = len(tt.list)
			counts.Kept = len(want)

			got, c, err := Filter(since, devices, tt.list)
			require.NoError(t, err)
			require.NotNil(t, got, "the result is a POST body: [] never null")
			assert.Equal(t, want, got)
			assert.Equal(t, counts, c)
			assert.Equal(t, c.Fetched, c.Kept+c.DroppedBeforeSince+c.DroppedUnknownDevice)
		})
	}
}

func TestFilterEmptyIsJSONArray(t *testing.T) {
	for _, list := range [][]Outage{nil, {}, {{outsider, "2022-05-23T12:21:27.377Z", ""}}} {
		for _, devices := range [][]Device{nil, {}, kingfisher} {
			got, c, err := Filter(cutoff, devices, list)
			require.NoError(t, err)
			body, err := json.Marshal(got)
			require.NoError(t, err)
			assert.Equal(t, "[]", string(body))
			assert.Equal(t, len(list), c.Fetched)
			assert.Zero(t, c.Kept)
		}
	}
}

func TestSiteOutageJSONKeyOrder(t *testing.T) {
	body, err := json.Marshal([]SiteOutage{{DeviceID: "d", Name: "n", Begin: "b", End: "e"}})
	require.NoError(t, err)
	assert.Equal(t, `[{"id":"d","name":"n","begin":"b","end":"e"}]`, string(body))

	var o Outage
	require.NoError(t, json.Unmarshal([]byte(`{"id":"d","begin":"b","end":"e"}`), &o))
	assert.Equal(t, Outage{DeviceID: "d", Begin: "b", End: "e"}, o)
	var d Device
	require.NoError(t, json.Unmarshal([]byte(`{"id":"d","name":"n"}`), &d))
	assert.Equal(t, Device{ID: "d", Name: "n"}, d)
}

func TestFilterMalformedBegin(t *testing.T) {
	for _, bad := range []string{
		"",
		"yesterday",
		"2022-01-01",
		"2022-01-01 00:00:00Z",
		"2022-01-01T00:00:00",
		"2022-01-01T00:00:00.000",
		"2022-01-01t00:00:00Z",
		"2022-01-01T00:00:00z",
		"2022-01-01T00:00:00+0100",
		"2022-01-01T00:00:00+01",
		"2022-13-01T00:00:00Z",
		"2022-02-29T00:00:00Z",
		"2022-01-01T24:00:00Z",
		"2022-01-01T00:60:00Z",
		"2022-01-01T00:00:60Z",
		"2021-12-31T23:59:60Z", // a leap second: Go cannot represent it
		"1640995200",
		" 2022-01-01T00:00:00Z",
		"2022-01-01T00:00:00Z ",
	} {
		t.Run(bad, func(t *testing.T) {
			// Garbage is an error whichever device it belongs to and wherever it is.
			for _, id := range []string{battery1, stranger} {
				list := []Outage{
					{battery1, "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
					{battery2, "2021-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
					{id, bad, "2022-11-13T02:16:38.905Z"},
					{battery2, "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
				}
				got, c, err := Filter(cutoff, kingfisher, list)
				require.Error(t, err)
				assert.Nil(t, got)
				assert.Zero(t, c)
				assert.Contains(t, err.Error(), "outage 2 ")
				assert.Contains(t, err.Error(), `"`+id+`"`)
				assert.Contains(t, err.Error(), `begin "`+bad+`"`)
			}
		})
	}
}

// An upstream value of any size is quoted cut short: an error must stay small enough to
// be recorded and read.
func TestFilterErrorQuotesCutShort(t *testing.T) {
	huge := strings.Repeat("9", 1<<20)
	_, _, err := Filter(cutoff, kingfisher, []Outage{{huge, huge, huge}})
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 300)
	assert.Contains(t, err.Error(), "is not an RFC 3339 time")
}

// TestFilterCountsAddUp runs the benchmark's kind of data, small, through Filter and
// checks it against a plain reading of the rules.
func TestFilterCountsAddUp(t *testing.T) {
	devices, list := Sample(100, 20, 5_000, cutoff)
	got, c, err := Filter(cutoff, devices, list)
	require.NoError(t, err)

	names := map[string]string{}
	for _, d := range devices {
		names[d.ID] = d.Name
	}
	want := []SiteOutage{}
	var before, unknown int
	for _, o := range list {
		begin, err := time.Parse(time.RFC3339Nano, o.Begin)
		require.NoError(t, err)
		name, ok := names[o.DeviceID]
		switch {
		case begin.Before(cutoff):
			before++
		case !ok:
			unknown++
		default:
			want = append(want, SiteOutage{o.DeviceID, name, o.Begin, o.End})
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, Counts{Fetched: len(list), Kept: len(want), DroppedBeforeSince: before, DroppedUnknownDevice: unknown}, c)
	assert.InDelta(t, 0.3, float64(before)/float64(len(list)), 0.03, "about 30% before the cutoff")
	assert.Positive(t, unknown)
}
