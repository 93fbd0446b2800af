// Package outagesync decides which of a site's outages are posted back, and names them.
//
// The rules are those of spec/upstreams.md §4: an outage is kept when its begin instant is
// at or after the cutoff and its device belongs to the site; a kept outage gets its device's
// name, every outage of a device is kept, input order is kept, and begin and end are echoed
// exactly as received. An item of the outage list that is not such an outage is dropped and
// counted as invalid: one bad record never fails the sync of a whole site.
package outagesync

import (
	"encoding/json"
	"errors"
	"regexp"
	"time"
)

// validSiteID is what a site id may look like: it becomes part of a workflow id, a
// schedule id and a URL.
var validSiteID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidSiteID reports whether id can name a site.
func ValidSiteID(id string) bool { return validSiteID.MatchString(id) }

// Outage is one item of the outage API's GET /outages, as received.
type Outage struct {
	DeviceID string `json:"id"`
	Begin    string `json:"begin"`
	End      string `json:"end"`

	// malformed says the item is not an object, or one of its id, begin and end is neither
	// a string nor null: Filter counts it as invalid whatever the fields hold (encoding/json
	// fills what it can around a member of the wrong kind).
	malformed bool
}

// UnmarshalJSON reads one item of the outage list. It fails only on text that is not JSON:
// any other item (null, a number, an object whose begin is a number...) decodes to an
// Outage that Filter counts as invalid, so that a list decodes whole and one bad item
// costs only itself. Member names match as encoding/json matches them (exactly, else
// ignoring case).
func (o *Outage) UnmarshalJSON(data []byte) error {
	var f struct {
		DeviceID string `json:"id"`
		Begin    string `json:"begin"`
		End      string `json:"end"`
	}
	err := json.Unmarshal(data, &f)
	if _, wrongKind := errors.AsType[*json.UnmarshalTypeError](err); err != nil && !wrongKind {
		return err
	}
	// null, like a missing member, leaves the fields empty, which Filter counts as invalid.
	*o = Outage{DeviceID: f.DeviceID, Begin: f.Begin, End: f.End, malformed: err != nil}
	return nil
}

// Device is one of a site's devices (GET /site-info/{siteId}).
type Device struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// SiteOutage is one record of the POST /site-outages/{siteId} body, fields in this order.
type SiteOutage struct {
	DeviceID string `json:"id"`
	Name     string `json:"name"`
	Begin    string `json:"begin"`
	End      string `json:"end"`
}

// Counts says what happened to the fetched outages. Each is counted once, so
// Fetched == Kept + DroppedBeforeSince + DroppedUnknownDevice + DroppedInvalid.
type Counts struct {
	Fetched              int `json:"fetched"`
	Kept                 int `json:"kept"`
	DroppedBeforeSince   int `json:"dropped_before_since"`
	DroppedUnknownDevice int `json:"dropped_unknown_device"`
	DroppedInvalid       int `json:"dropped_invalid"`
}

// Filter keeps the outages whose begin instant is at or after since and whose device is one
// of devices, adds the device's name, keeps input order, and echoes begin and end exactly.
//
// Begin is compared as an instant, never as a string: it is read by time.Parse with
// time.RFC3339Nano (milliseconds or not, Z or any offset). time.Parse reads about 5 million
// begins a second on one core, well past what relay needs, so there is no hand-written
// parser here.
//
// Each outage is counted once, under the first of these that applies, in this order:
//
//   - DroppedInvalid: the item is not an object whose id, begin and end are non-empty
//     strings (missing, null, a number, "" are all invalid: an outage with no device id
//     cannot be matched to a device, and an outage with no begin cannot be compared with
//     the cutoff), or its begin is not an RFC 3339 time;
//   - DroppedBeforeSince: it begins before since (also when its device is unknown);
//   - DroppedUnknownDevice: its device is not one of devices;
//   - DroppedInvalid: its end is not an RFC 3339 time. relay would post the end exactly as
//     received, and the outage API refuses (400) a body it cannot read, which would fail
//     the whole site's sync: such an outage is dropped instead. The end is read only for
//     an outage relay would otherwise post, as nothing else needs it, which keeps the
//     filter at one time.Parse for most outages; the end is never compared with the begin.
//
// Every other outage of a site device is kept, repeats included. When a device id appears
// more than once in devices, its first name wins; ids match exactly (case counts). The
// slice is never nil, even when empty, so that it encodes as [] in the POST body.
func Filter(since time.Time, devices []Device, list []Outage) ([]SiteOutage, Counts) {
	names := make(map[string]string, len(devices))
	for _, d := range devices {
		if _, dup := names[d.ID]; !dup {
			names[d.ID] = d.Name
		}
	}

	// Decide first, then copy into an exactly sized slice: the result may be held (and
	// encoded) for a while, so it should not carry unused capacity.
	keep := make([]bool, len(list))
	var c Counts
	c.Fetched = len(list)
	for i := range list {
		o := &list[i]
		if o.malformed || o.DeviceID == "" || o.Begin == "" || o.End == "" {
			c.DroppedInvalid++
			continue
		}
		begin, err := time.Parse(time.RFC3339Nano, o.Begin)
		if err != nil {
			c.DroppedInvalid++
			continue
		}
		if begin.Before(since) {
			c.DroppedBeforeSince++
			continue
		}
		if _, ok := names[o.DeviceID]; !ok {
			c.DroppedUnknownDevice++
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, o.End); err != nil {
			c.DroppedInvalid++
			continue
		}
		keep[i] = true
		c.Kept++
	}

	out := make([]SiteOutage, 0, c.Kept)
	for i, k := range keep {
		if k {
			o := &list[i]
			out = append(out, SiteOutage{DeviceID: o.DeviceID, Name: names[o.DeviceID], Begin: o.Begin, End: o.End})
		}
	}
	return out, c
}
