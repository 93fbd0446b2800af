// Package htmltest reads what tests need out of a rendered HTML page (the status page's)
// without a parser: the page is relay's own, with stable ids and data-value attributes.
package htmltest

import (
	"regexp"
	"strings"
	"testing"
)

// DataValue is the data-value of the element with id in page; the test fails without one.
func DataValue(tb testing.TB, page, id string) string {
	tb.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*data-value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		tb.Fatalf("no element %s with a data-value", id)
	}
	return m[1]
}

// Element is the element of tag with attr="value": from its opening tag up to the next
// closing tag of its name. The test fails without one.
func Element(tb testing.TB, page, tag, attr, value string) string {
	tb.Helper()
	at := strings.Index(page, attr+`="`+value+`"`)
	if at < 0 {
		tb.Fatalf("no element with %s=%q", attr, value)
	}
	open := strings.LastIndex(page[:at], "<"+tag)
	end := strings.Index(page[at:], "</"+tag+">")
	if open < 0 || end < 0 {
		tb.Fatalf("element with %s=%q is not a whole <%s>", attr, value, tag)
	}
	return page[open : at+end]
}
