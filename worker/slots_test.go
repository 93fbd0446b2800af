package worker

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSlotSizesFollowTheStorePool(t *testing.T) {
	tests := []struct {
		conns                  int
		activities, local, geo int
	}{
		{0, 0, 0, 16}, // no pool given: the SDK's defaults, and relay-geoip's former 16
		{1, 1, 1, 1},  // never below one slot
		{3, 1, 1, 1},
		{4, 2, 2, 2},
		{16, 14, 14, 14}, // PostgreSQL's default pool
		{40, 38, 38, 16},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.conns), func(t *testing.T) {
			a, l, g := slotSizes(tt.conns)
			assert.Equal(t, []int{tt.activities, tt.local, tt.geo}, []int{a, l, g})
			if tt.conns > storeReserve {
				// The rule: no kind of slot outnumbers the connections left after the reserve.
				for _, n := range []int{a, l, g} {
					assert.LessOrEqual(t, n, tt.conns-storeReserve)
				}
			}
		})
	}
}
