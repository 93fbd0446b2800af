// Package outages decides which of a site's outages are posted back, and names them.
//
// The rules are those of spec/upstreams.md §4: an outage is kept when its begin instant is
// at or after the cutoff and its device belongs to the site; a kept outage gets its device's
// name, every outage of a device is kept, input order is kept, and begin and end are echoed
// exactly as received.
package outagesync

import (
	"fmt"
	"time"
)

// Outage is one record of the outage API's GET /outages.
type Outage struct {
	DeviceID string `json:"id"`
	Begin    string `json:"begin"`
	End      string `json:"end"`
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

// Counts says what happened to the fetched outages.
type Counts struct {
	Fetched              int `json:"fetched"`
	Kept                 int `json:"kept"`
	DroppedBeforeSince   int `json:"dropped_before_since"`
	DroppedUnknownDevice int `json:"dropped_unknown_device"`
}

// Filter keeps the outages whose begin instant is at or after since and whose device is one
// of devices, adds the device's name, keeps input order, and echoes begin and end exactly.
//
// Begin is compared as an instant, never as a string: it is read by time.Parse with
// time.RFC3339Nano (milliseconds or not, Z or any offset). End is neither parsed nor
// checked. time.Parse reads about 5 million begins a second on one core, well past what
// relay needs, so there is no hand-written parser here.
//
// An outage that is both before since and of an unknown device is counted once, under
// DroppedBeforeSince, so that Fetched == Kept + DroppedBeforeSince + DroppedUnknownDevice.
// Every outage of a site device is kept, repeats included. When a device id appears more
// than once in devices, its first name wins; ids match exactly (case counts).
//
// A begin that is not such a time, whichever device it belongs to, makes Filter fail with
// an error naming the outage's index, device id and begin; Filter then returns a nil slice
// and zero Counts. Otherwise the slice is never nil, even when empty, so that it encodes
// as [] in the POST body.
func Filter(since time.Time, devices []Device, list []Outage) ([]SiteOutage, Counts, error) {
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
		begin, err := time.Parse(time.RFC3339Nano, o.Begin)
		if err != nil {
			// Quoted cut short: the values are the upstream's, of any length.
			return nil, Counts{}, fmt.Errorf("outage %d (device %.64q): begin %.64q is not an RFC 3339 time", i, o.DeviceID, o.Begin)
		}
		if begin.Before(since) {
			c.DroppedBeforeSince++
			continue
		}
		if _, ok := names[o.DeviceID]; !ok {
			c.DroppedUnknownDevice++
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
	return out, c, nil
}
