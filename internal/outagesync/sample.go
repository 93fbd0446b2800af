package outagesync

import (
	"fmt"
	"math/rand/v2"
	"time"

	"relay/internal/timefmt"
)

// Sample builds, deterministically, siteDevices devices of the site, outages spread over
// them and over otherDevices devices that are not the site's (about one outage in six), with
// about 30% beginning before since and begin written in a mix of RFC 3339 forms: data of the
// kind Filter meets, for its benchmarks (`relay bench outage-filter`) and tests.
func Sample(siteDevices, otherDevices, n int, since time.Time) ([]Device, []Outage) {
	r := rand.New(rand.NewPCG(1, 2))
	uuid := func() string {
		return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
			r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, 0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
	}
	devices := make([]Device, siteDevices)
	for i := range devices {
		devices[i] = Device{ID: uuid(), Name: fmt.Sprintf("Battery %d", i+1)}
	}
	others := make([]string, otherDevices)
	for i := range others {
		others[i] = uuid()
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -5*3600-1800), time.FixedZone("", 9*3600)}
	layouts := []string{
		timefmt.RFC3339Millis,       // 2022-05-23T12:21:27.377Z or +01:00
		"2006-01-02T15:04:05Z07:00", // no milliseconds
		timefmt.RFC3339Millis,
		"2006-01-02T15:04:05.999999999Z07:00",
	}
	list := make([]Outage, n)
	for i := range list {
		var id string
		if r.IntN(6) == 0 {
			id = others[r.IntN(len(others))]
		} else {
			id = devices[r.IntN(len(devices))].ID
		}
		// begin within two years around since, 30% of them before it
		offset := time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))
		if r.IntN(10) < 3 {
			offset = -offset - time.Millisecond
		}
		begin := since.Add(offset).Truncate(time.Millisecond)
		end := begin.Add(time.Duration(r.Int64N(int64(60 * 24 * time.Hour))))
		zone := zones[r.IntN(len(zones))]
		layout := layouts[r.IntN(len(layouts))]
		list[i] = Outage{DeviceID: id, Begin: begin.In(zone).Format(layout), End: end.In(zone).Format(layout)}
	}
	return devices, list
}
