// Package eventsubs joins a calendar event with its subscribers' first names, read in
// pages: which pages to ask for, and how they add up.
package eventsubscriptions

import (
	"fmt"
	"slices"
)

// PageSize is how many subscriptions relay asks for per call: most events fit in one page,
// so that a cold request costs one call to each endpoint.
const PageSize = 100

// Page is one page of an event's subscriptions, as the API answered it.
type Page struct {
	Offset int
	Names  []string
	Count  int // the event's total, as this page reported it
}

// Merged is the answer relay serves.
type Merged struct {
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Names []string `json:"names"`
}

// RestOffsets returns the offsets of the pages after the first, for an event with count
// subscriptions read pageSize at a time.
func RestOffsets(count, pageSize int) []int {
	var offsets []int
	for off := pageSize; off < count; off += pageSize {
		offsets = append(offsets, off)
	}
	return offsets
}

// Merge joins the pages' names in upstream order, keeping empty and repeated names as the
// API has them. The pages must tile the first page's count exactly: if the subscriptions
// changed between calls (a page reports another count, or comes back short), the names
// would be wrong, and Merge says so instead.
func Merge(id, title string, pages []Page) (Merged, error) {
	m := Merged{ID: id, Title: title, Names: []string{}}
	if len(pages) == 0 {
		return m, fmt.Errorf("event %s: no subscription pages", id)
	}
	pages = slices.Clone(pages)
	slices.SortFunc(pages, func(a, b Page) int { return a.Offset - b.Offset })
	count := pages[0].Count
	for _, p := range pages {
		if p.Count != count {
			return m, fmt.Errorf("event %s: subscriptions changed while read (count %d, then %d)", id, count, p.Count)
		}
		if p.Offset != len(m.Names) {
			return m, fmt.Errorf("event %s: page at offset %d, want %d", id, p.Offset, len(m.Names))
		}
		m.Names = append(m.Names, p.Names...)
	}
	if len(m.Names) != count {
		return m, fmt.Errorf("event %s: read %d subscriptions, the API counts %d", id, len(m.Names), count)
	}
	return m, nil
}
