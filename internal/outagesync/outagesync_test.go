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

// out is an outage as the outage API sends it: an object of three strings.
func out(id, begin, end string) Outage { return Outage{DeviceID: id, Begin: begin, End: end} }

// workedExample is the table of spec/upstreams.md §4, site kingfisher.
var workedExample = []Outage{
	out(battery1, "2021-07-26T17:09:31.036Z", "2021-08-29T00:37:42.253Z"), // before cutoff
	out(battery1, "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"), // Battery 1
	out(battery1, "2022-12-04T09:59:33.628Z", "2022-12-12T22:35:13.815Z"), // Battery 1
	out(stranger, "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"), // not a site device
	out(battery2, "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"), // Battery 2
	out(outsider, "2021-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"), // both
}

var workedExampleKept = []SiteOutage{
	{battery1, "Battery 1", "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
	{battery1, "Battery 1", "2022-12-04T09:59:33.628Z", "2022-12-12T22:35:13.815Z"},
	{battery2, "Battery 2", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"},
}

// TestFilterWorkedExample is the table of spec/upstreams.md §4, site kingfisher.
func TestFilterWorkedExample(t *testing.T) {
	got, counts := Filter(cutoff, kingfisher, workedExample)
	assert.Equal(t, workedExampleKept, got)
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
	assert.Equal(t, `{"fetched":6,"kept":3,"dropped_before_since":2,"dropped_unknown_device":1,"dropped_invalid":0}`, string(body))
}

// TestFilterWorkedExampleWithInvalidItems is the worked example as the outage API sent it
// one day, with records it cannot have meant among the good ones, read from JSON as the
// activity reads it: the six outages fare as in the spec's table, every bad record is
// dropped and counted, and nothing else changes.
func TestFilterWorkedExampleWithInvalidItems(t *testing.T) {
	const body = `[
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2021-07-26T17:09:31.036Z", "end": "2021-08-29T00:37:42.253Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "end": "2022-01-01T00:00:00.000Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2022-05-23T12:21:27.377Z", "end": "2022-11-13T02:16:38.905Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": null, "end": "2022-01-01T00:00:00.000Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": 1653308487, "end": "2022-01-01T00:00:00.000Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2022-12-04T09:59:33.628Z", "end": "2022-12-12T22:35:13.815Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "last tuesday", "end": "2022-01-01T00:00:00.000Z"},
		null,
		{"id": "04ccad00-eb8d-4045-8994-b569cb4b64c1", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"},
		{"begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"},
		{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"},
		{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "begin": "2022-07-12T16:31:47.254Z", "end": null},
		"2022-07-12T16:31:47.254Z",
		{"id": "27820d4a-1bc4-4fc1-a5f0-bcb3627e94a1", "begin": "2021-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"}
	]`
	var list []Outage
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	got, counts := Filter(cutoff, kingfisher, list)
	assert.Equal(t, workedExampleKept, got)
	assert.Equal(t, Counts{Fetched: 14, Kept: 3, DroppedBeforeSince: 2, DroppedUnknownDevice: 1, DroppedInvalid: 8}, counts)
}

// TestFilterInvalid: what is dropped as invalid, and what is not.
func TestFilterInvalid(t *testing.T) {
	const good = `"2022-05-23T12:21:27.377Z"`
	item := func(id, begin, end string) string {
		var fields []string
		for _, f := range []struct{ name, value string }{{"id", id}, {"begin", begin}, {"end", end}} {
			if f.value != "" { // "" leaves the member out
				fields = append(fields, `"`+f.name+`": `+f.value)
			}
		}
		return "{" + strings.Join(fields, ", ") + "}"
	}
	b1, b2, str := `"`+battery1+`"`, `"`+battery2+`"`, `"`+stranger+`"`

	tests := []struct {
		name   string
		item   string
		counts Counts // besides Fetched: 1
	}{
		// begin: read for every outage
		{"begin missing", item(b1, "", good), Counts{DroppedInvalid: 1}},
		{"begin null", item(b1, "null", good), Counts{DroppedInvalid: 1}},
		{"begin empty", item(b1, `""`, good), Counts{DroppedInvalid: 1}},
		{"begin a number", item(b1, "1653308487", good), Counts{DroppedInvalid: 1}},
		{"begin true", item(b1, "true", good), Counts{DroppedInvalid: 1}},
		{"begin an object", item(b1, `{"at": "2022-05-23T12:21:27.377Z"}`, good), Counts{DroppedInvalid: 1}},
		{"begin an array", item(b1, `["2022-05-23T12:21:27.377Z"]`, good), Counts{DroppedInvalid: 1}},
		{"begin not a time", item(b1, `"last tuesday"`, good), Counts{DroppedInvalid: 1}},
		{"begin not a time, unknown device", item(str, `"last tuesday"`, good), Counts{DroppedInvalid: 1}},
		{"begin a date only", item(b1, `"2022-05-23"`, good), Counts{DroppedInvalid: 1}},

		// id: an outage with no device id belongs to no device, but it is not a record
		// of a device relay does not know either: it is invalid.
		{"id missing", item("", good, good), Counts{DroppedInvalid: 1}},
		{"id null", item("null", good, good), Counts{DroppedInvalid: 1}},
		{"id empty", item(`""`, good, good), Counts{DroppedInvalid: 1}},
		{"id a number", item("5", good, good), Counts{DroppedInvalid: 1}},
		{"id missing, before the cutoff", item("", `"2021-05-23T12:21:27.377Z"`, good), Counts{DroppedInvalid: 1}},
		{"id of another site", item(str, good, good), Counts{DroppedUnknownDevice: 1}},

		// end: missing or of the wrong kind is invalid at once; a string is read (and
		// must be an RFC 3339 time) only for an outage relay would post.
		{"end missing", item(b1, good, ""), Counts{DroppedInvalid: 1}},
		{"end null", item(b1, good, "null"), Counts{DroppedInvalid: 1}},
		{"end empty", item(b1, good, `""`), Counts{DroppedInvalid: 1}},
		{"end a number", item(b1, good, "1668305798"), Counts{DroppedInvalid: 1}},
		{"end a number, before the cutoff", item(b1, `"2021-05-23T12:21:27.377Z"`, "1668305798"), Counts{DroppedInvalid: 1}},
		{"end not a time", item(b2, good, `"soon"`), Counts{DroppedInvalid: 1}},
		{"end not a time, before the cutoff", item(b2, `"2021-05-23T12:21:27.377Z"`, `"soon"`), Counts{DroppedBeforeSince: 1}},
		{"end not a time, unknown device", item(str, good, `"soon"`), Counts{DroppedUnknownDevice: 1}},
		{"end before begin: not judged", item(b1, good, `"2021-01-01T00:00:00Z"`), Counts{Kept: 1}},

		// the item itself
		{"null", "null", Counts{DroppedInvalid: 1}},
		{"a number", "5", Counts{DroppedInvalid: 1}},
		{"a string", `"` + battery1 + `"`, Counts{DroppedInvalid: 1}},
		{"an array", `[` + b1 + `, ` + good + `, ` + good + `]`, Counts{DroppedInvalid: 1}},
		{"an empty object", "{}", Counts{DroppedInvalid: 1}},
		{"extra members are ignored", `{"id": ` + b1 + `, "begin": ` + good + `, "end": ` + good + `, "kind": 7}`, Counts{Kept: 1}},
		{"names match ignoring case, as encoding/json does", `{"ID": ` + b1 + `, "Begin": ` + good + `, "END": ` + good + `}`, Counts{Kept: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The bad item sits between two good ones, which it must not disturb.
			body := `[` + item(b1, good, good) + `, ` + tt.item + `, ` + item(b2, good, good) + `]`
			var list []Outage
			require.NoError(t, json.Unmarshal([]byte(body), &list), body)
			require.Len(t, list, 3)
			got, c := Filter(cutoff, kingfisher, list)

			want := tt.counts
			want.Fetched, want.Kept = 3, want.Kept+2
			assert.Equal(t, want, c, body)
			assert.Len(t, got, want.Kept)
			assert.Equal(t, SiteOutage{battery1, "Battery 1", "2022-05-23T12:21:27.377Z", "2022-05-23T12:21:27.377Z"}, got[0])
			assert.Equal(t, SiteOutage{battery2, "Battery 2", "2022-05-23T12:21:27.377Z", "2022-05-23T12:21:27.377Z"}, got[len(got)-1])
		})
	}
}

// A list that is not JSON fails to decode; anything else that is an array decodes whole.
func TestOutageDecoding(t *testing.T) {
	var list []Outage
	require.NoError(t, json.Unmarshal([]byte(`[{"id": "a", "begin": "b", "end": "c"}, {"id": 5}, null, [], "x"]`), &list))
	require.Len(t, list, 5)
	assert.Equal(t, out("a", "b", "c"), list[0])
	_, c := Filter(cutoff, kingfisher, list)
	assert.Equal(t, Counts{Fetched: 5, DroppedInvalid: 5}, c)

	var typeErr *json.UnmarshalTypeError
	assert.ErrorAs(t, json.Unmarshal([]byte(`{"outages": []}`), &list), &typeErr, "an object is not a list")
	assert.ErrorAs(t, json.Unmarshal([]byte(`"[]"`), &list), &typeErr, "a string is not a list")
	var syntaxErr *json.SyntaxError
	assert.ErrorAs(t, json.Unmarshal([]byte(`[{"id": "a", "begin": }]`), &list), &syntaxErr)
	assert.ErrorAs(t, json.Unmarshal([]byte(`[{"id": "a"`), &list), &syntaxErr)

	list = []Outage{out("stale", "stale", "stale")}
	require.NoError(t, json.Unmarshal([]byte(`null`), &list))
	assert.Nil(t, list, "null decodes as no list: the activity refuses it (it is not the upstream's empty list)")
}

func TestFilter(t *testing.T) {
	b1 := func(begin string) Outage {
		return out(battery1, begin, "2023-01-01T00:00:00.000Z")
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
				out(battery2, "2022-03-01T00:00:00.000Z", "2022-03-02T00:00:00.000Z"),
				out(battery1, "2022-02-01T00:00:00.000Z", "2022-02-02T00:00:00.000Z"),
				out(battery2, "2022-01-01T00:00:00.000Z", "2022-01-02T00:00:00.000Z"),
				out(battery1, "2022-02-01T00:00:00.000Z", "2022-02-02T00:00:00.000Z"), // a repeat is kept too
				out(battery2, "2023-01-01T00:00:00.000Z", "2023-01-02T00:00:00.000Z"),
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
				out(stranger, "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"),
				out(outsider, "2021-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"),
				out(battery1[:8], "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"),
				out("002B28FC-283C-47EC-9AF2-EA287336DC1B", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"), // ids match exactly
			},
			counts: Counts{DroppedBeforeSince: 1, DroppedUnknownDevice: 3},
		},
		{
			name: "no device id is invalid, not an unknown device",
			list: []Outage{
				out("", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"),
				out("", "2021-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"),
			},
			counts: Counts{DroppedInvalid: 2},
		},
		{
			name:    "a site device with an empty id matches no outage",
			devices: []Device{{ID: "", Name: "nameless"}, {ID: battery1, Name: "Battery 1"}},
			list: []Outage{
				out("", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"),
				b1("2022-07-12T16:31:47.254Z"),
			},
			want:   []SiteOutage{kept1("2022-07-12T16:31:47.254Z")},
			counts: Counts{DroppedInvalid: 1},
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
			list:    []Outage{out(battery1, "2022-05-23T12:21:27.377Z", "2022-05-24T00:00:00Z"), out(battery2, "2022-05-23T12:21:27.377Z", "2022-05-25T00:00:00Z")},
			want: []SiteOutage{
				{battery1, "Battery 1", "2022-05-23T12:21:27.377Z", "2022-05-24T00:00:00Z"},
				{battery2, "Battery 2", "2022-05-23T12:21:27.377Z", "2022-05-25T00:00:00Z"},
			},
		},
		{
			name: "begin and end echoed byte for byte",
			list: []Outage{
				out(battery1, "2022-05-23T12:21:27.377+00:00", "2022-11-13T04:16:38.905+02:00"),
				out(battery1, "2022-05-23T12:21:27Z", "2022-11-13T02:16:38Z"),
				out(battery1, "2022-05-23T12:21:27.3770000Z", "2022-11-13T02:16:38.9050000Z"),
				out(battery1, "2022-05-23T12:21:27.123456789123-07:30", "2021-01-01T00:00:00Z"), // ends before it begins
			},
			want: []SiteOutage{
				{battery1, "Battery 1", "2022-05-23T12:21:27.377+00:00", "2022-11-13T04:16:38.905+02:00"},
				{battery1, "Battery 1", "2022-05-23T12:21:27Z", "2022-11-13T02:16:38Z"},
				{battery1, "Battery 1", "2022-05-23T12:21:27.3770000Z", "2022-11-13T02:16:38.9050000Z"},
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
			if devices == nil {
				devices = kingfisher
			}
			want, counts := tt.want, tt.counts
			if want == nil {
				want = []SiteOutage{}
			}
			counts.Fetched = len(tt.list)
			counts.Kept = len(want)

			got, c := Filter(since, devices, tt.list)
			require.NotNil(t, got, "the result is a POST body: [] never null")
			assert.Equal(t, want, got)
			assert.Equal(t, counts, c)
			assert.Equal(t, c.Fetched, c.Kept+c.DroppedBeforeSince+c.DroppedUnknownDevice+c.DroppedInvalid)
		})
	}
}

func TestFilterEmptyIsJSONArray(t *testing.T) {
	for _, list := range [][]Outage{nil, {}, {out(outsider, "2022-05-23T12:21:27.377Z", "2022-05-24T00:00:00Z")}, {{malformed: true}}} {
		for _, devices := range [][]Device{nil, {}, kingfisher} {
			got, c := Filter(cutoff, devices, list)
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
	assert.Equal(t, out("d", "b", "e"), o)
	var d Device
	require.NoError(t, json.Unmarshal([]byte(`{"id":"d","name":"n"}`), &d))
	assert.Equal(t, Device{ID: "d", Name: "n"}, d)
}

// Whatever the begin string, of any device and anywhere in the list: dropped as invalid,
// and the rest of the list fares as without it.
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
		strings.Repeat("9", 1<<20),
	} {
		t.Run(bad[:min(len(bad), 30)], func(t *testing.T) {
			for _, id := range []string{battery1, stranger} {
				list := []Outage{
					out(battery1, "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"),
					out(battery2, "2021-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"),
					out(id, bad, "2022-11-13T02:16:38.905Z"),
					out(battery2, "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"),
				}
				got, c := Filter(cutoff, kingfisher, list)
				assert.Equal(t, []SiteOutage{
					{battery1, "Battery 1", "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
					{battery2, "Battery 2", "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
				}, got)
				assert.Equal(t, Counts{Fetched: 4, Kept: 2, DroppedBeforeSince: 1, DroppedInvalid: 1}, c)
			}
		})
	}
}

// TestFilterCountsAddUp runs the benchmark's kind of data, small and with some records
// spoilt, through Filter and checks it against a plain reading of the rules.
func TestFilterCountsAddUp(t *testing.T) {
	devices, list := Sample(100, 20, 5_000, cutoff)
	for i := range list {
		switch o := &list[i]; {
		case i%53 == 0:
			o.Begin = "soon"
		case i%59 == 0:
			o.End = "later"
		case i%61 == 0:
			o.DeviceID = ""
		case i%67 == 0:
			o.End = ""
		case i%71 == 0:
			*o = Outage{malformed: true}
		}
	}
	got, c := Filter(cutoff, devices, list)

	names := map[string]string{}
	for _, d := range devices {
		names[d.ID] = d.Name
	}
	want := []SiteOutage{}
	var before, unknown, invalid int
	for _, o := range list {
		begin, beginErr := time.Parse(time.RFC3339Nano, o.Begin)
		_, endErr := time.Parse(time.RFC3339Nano, o.End)
		name, ok := names[o.DeviceID]
		switch {
		case o.malformed || o.DeviceID == "" || o.End == "" || beginErr != nil:
			invalid++
		case begin.Before(cutoff):
			before++
		case !ok:
			unknown++
		case endErr != nil:
			invalid++
		default:
			want = append(want, SiteOutage{o.DeviceID, name, o.Begin, o.End})
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, Counts{Fetched: len(list), Kept: len(want), DroppedBeforeSince: before, DroppedUnknownDevice: unknown, DroppedInvalid: invalid}, c)
	assert.InDelta(t, 0.3, float64(before)/float64(len(list)), 0.03, "about 30% before the cutoff")
	assert.Positive(t, unknown)
	assert.Positive(t, invalid)
}
