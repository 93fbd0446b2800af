package eventsubscriptions

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRestOffsets(t *testing.T) {
	cases := []struct {
		count, size int
		want        []int
	}{
		{0, 10, nil},
		{1, 10, nil},
		{10, 10, nil},
		{11, 10, []int{10}},
		{25, 10, []int{10, 20}},
		{30, 10, []int{10, 20}},
		{250, 100, []int{100, 200}},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, RestOffsets(tc.count, tc.size), "%d by %d", tc.count, tc.size)
	}
}

func TestMerge(t *testing.T) {
	cases := []struct {
		name    string
		pages   []Page
		want    []string
		wantErr string
	}{
		{"no subscribers", []Page{{0, nil, 0}}, []string{}, ""},
		{"one page, kept as the API has it",
			[]Page{{0, []string{"Bob", "Ella", "", "Bob", "Zoë"}, 5}}, []string{"Bob", "Ella", "", "Bob", "Zoë"}, ""},
		{"pages in any order come out in upstream order",
			[]Page{{4, []string{"e"}, 5}, {0, []string{"a", "b"}, 5}, {2, []string{"c", "d"}, 5}},
			[]string{"a", "b", "c", "d", "e"}, ""},
		{"count changed between pages", []Page{{0, []string{"a", "b"}, 3}, {2, []string{"c"}, 4}}, nil, "changed while read"},
		{"a page came back short", []Page{{0, []string{"a"}, 3}, {2, []string{"c"}, 3}}, nil, "page at offset 2, want 1"},
		{"fewer than counted", []Page{{0, []string{"a"}, 2}}, nil, "read 1 subscriptions, the API counts 2"},
		{"no pages", nil, nil, "no subscription pages"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Merge("ev1", "Team sync", tc.pages)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Contains(t, err.Error(), "ev1")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, Merged{ID: "ev1", Title: "Team sync", Names: tc.want}, m)
		})
	}
}

func TestMergedJSONHasNamesEvenWhenEmpty(t *testing.T) {
	m, err := Merge("ev1", "Empty room", []Page{{0, nil, 0}})
	require.NoError(t, err)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"ev1","title":"Empty room","names":[]}`, string(b))
}
