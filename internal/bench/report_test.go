package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNumbersAreWrittenForPeople(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 3: "3", 20: "20", 2e6: "2,000,000", 57264.4: "57,264", -1234: "-1,234",
		372.4: "372", 48.25: "48.2", 1.234: "1.23", 0.0512: "0.0512",
	} {
		assert.Equal(t, want, Num(v), "%v", v)
	}
	assert.Equal(t, "1k", SizeLabel(1000))
	assert.Equal(t, "100k", SizeLabel(100_000))
	assert.Equal(t, "1M", SizeLabel(1_000_000))
	assert.Equal(t, "1500", SizeLabel(1500))
}

func TestTargetsJudgeRelayOrTheRatio(t *testing.T) {
	judge := func(r *Row) (string, bool) {
		r.judge()
		require.NotNil(t, r.Pass)
		return r.Target, *r.Pass
	}
	row := func(v float64) *Row { return &Row{Relay: v, Unit: "ms"} }

	text, pass := judge(row(20).Want(AtMost(20)))
	assert.Equal(t, "≤ 20 ms", text)
	assert.True(t, pass)
	_, pass = judge(row(20.1).Want(AtMost(20)))
	assert.False(t, pass)
	_, pass = judge(row(4.63).Want(AtLeast(4.5)))
	assert.True(t, pass)

	text, pass = judge(row(80).Vs(100).Want(RatioAtLeast(0.8)))
	assert.Equal(t, "≥ 0.80× baseline", text)
	assert.True(t, pass)
	_, pass = judge(row(79).Vs(100).Want(RatioAtLeast(0.8)))
	assert.False(t, pass)
	_, pass = judge(row(150).Vs(100).Want(RatioAtMost(1.5)))
	assert.True(t, pass)
	_, pass = judge(row(1).Vs(0).Want(RatioAtMost(1.5)))
	assert.False(t, pass, "no ratio against a zero baseline: not met")

	free := row(1)
	free.judge()
	assert.Nil(t, free.Pass)
}

func TestSelectScenariosAndSizes(t *testing.T) {
	all := []Scenario{{Name: "a"}, {Name: "b", Sizes: []int{1000, 10000}}}
	jobs, err := Select(all, nil, false)
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	assert.Equal(t, []int{0}, jobs[0].Sizes)
	assert.Equal(t, []int{1000, 10000}, jobs[1].Sizes)

	jobs, err = Select(all, []string{"b"}, true)
	require.NoError(t, err)
	assert.Equal(t, []int{1000}, jobs[0].Sizes, "a smoke run takes the smallest")

	jobs, err = Select(all, []string{"b:100k,2000"}, true)
	require.NoError(t, err)
	assert.Equal(t, []int{100_000, 2000}, jobs[0].Sizes, "named sizes win")

	_, err = Select(all, []string{"c"}, false)
	assert.ErrorContains(t, err, `unknown scenario "c" (scenarios: a, b)`)
	_, err = Select(all, []string{"a:10"}, false)
	assert.ErrorContains(t, err, "has no sizes")
	_, err = Select(all, []string{"b:ten"}, false)
	assert.ErrorContains(t, err, "not a positive whole number")
}

// A run reports every case, goes on after one fails, and writes a table, JSON and charts.
func TestRunReportsTableJSONAndCharts(t *testing.T) {
	rec := NewRecorder()
	for i := 1; i <= 100; i++ {
		rec.Observe("relay", time.Duration(i)*time.Millisecond, nil)
		rec.Observe("bare", time.Duration(i)*time.Millisecond/2, nil)
	}
	scenarios := []Scenario{
		{Name: "fast", Baseline: "a bare handler", Sizes: []int{1000}, Run: func(_ context.Context, c *Case) error {
			c.Add("p50", "ms", 50).Vs(25).Want(RatioAtMost(1.5))
			c.Add("throughput", "req/s", 900).Want(AtLeast(800))
			c.Latency("relay", rec, "relay")
			c.Latency("bare", rec, "bare")
			c.Chart("calls", Chart{Title: "calls", Series: []Series{{Label: "calls", Step: true, Points: []Point{{0, 3}, {1, 5}}}},
				Lines: []Line{{Y: 5, Label: "limit"}}})
			return nil
		}},
		{Name: "broken", Run: func(context.Context, *Case) error { return errors.New("simulator did not start") }},
	}
	jobs, err := Select(scenarios, nil, false)
	require.NoError(t, err)
	var progress bytes.Buffer
	r := Run(context.Background(), jobs, Options{Command: "relay bench", Progress: &progress})
	assert.Contains(t, progress.String(), "fast 1k:")
	assert.Contains(t, progress.String(), "failed: simulator did not start")

	var table bytes.Buffer
	r.WriteTable(&table)
	out := table.String()
	assert.Contains(t, out, "scenario  metric      relay      baseline  ratio  target            pass")
	assert.Regexp(t, `fast 1k\s+p50\s+50 ms\s+25 ms\s+2.00×\s+≤ 1.50× baseline\s+NO`, out)
	assert.Regexp(t, `fast 1k\s+throughput\s+900 req/s\s+—\s+—\s+≥ 800 req/s\s+yes`, out)
	assert.Contains(t, out, "fast: a bare handler")
	assert.Contains(t, out, "FAILED broken: simulator did not start")
	assert.Contains(t, out, "2 cases, 1 failed; 1 of 2 targets met.")
	assert.Len(t, r.Failed(), 1)
	assert.Equal(t, 1, r.Missed())

	dir := t.TempDir()
	require.NoError(t, r.WriteCharts(dir))
	require.NoError(t, r.WriteJSON(filepath.Join(dir, "bench.json")))
	assert.Equal(t, []string{"fast-1000-latency.svg", "fast-1000-calls.svg"}, r.Charts)

	var got Report
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &got))
	require.Len(t, got.Rows, 2)
	assert.Equal(t, "fast", got.Rows[0].Scenario)
	assert.Equal(t, 1000, got.Rows[0].Size)
	assert.Equal(t, 2.0, *got.Rows[0].Ratio)
	assert.False(t, *got.Rows[0].Pass)
	assert.Nil(t, got.Rows[1].Baseline)
	require.Len(t, got.Cases, 2)
	assert.Equal(t, "simulator did not start", got.Cases[1].Error)
	require.Len(t, got.Cases[0].Latencies, 2)
	assert.Equal(t, "relay", got.Cases[0].Latencies[0].Series)
	assert.Equal(t, 50.0, got.Cases[0].Latencies[0].P50MS)
	assert.Equal(t, []string{"fast-1000-latency.svg", "fast-1000-calls.svg"}, got.Charts)
	assert.Positive(t, got.Machine.Cores)

	for _, f := range got.Charts {
		svg, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		assertWellFormed(t, svg)
	}
}

func TestChartsHaveAxesLabelsAndLines(t *testing.T) {
	var lat Latencies
	for i := 1; i <= 10_000; i++ {
		lat = append(lat, time.Duration(i)*time.Microsecond)
	}
	svg := string(Chart{Title: "latency <of> x", XLabel: "percentile", YLabel: "latency (ms)", XScale: Nines, YScale: Log,
		Series: []Series{{Label: "relay", Points: PercentilePoints(lat)}}}.SVG())
	assertWellFormed(t, []byte(svg))
	for _, want := range []string{"latency &lt;of&gt; x", ">percentile<", ">latency (ms)<", ">relay<", ">50%<", ">99.9%<", ">99.99%<", ">0.01<", ">10<"} {
		assert.Contains(t, svg, want)
	}
	assert.NotContains(t, svg, "99.999%", "no tick beyond what 10,000 latencies can tell")
	assert.NotContains(t, svg, "NaN")

	svg = string(Chart{Title: "calls", Series: []Series{{Label: "relay", Step: true, Points: []Point{{0, 9}, {1, 5}, {2, 4}}}},
		Lines: []Line{{Y: 5, Label: "limit: 5 calls/s"}}}.SVG())
	assertWellFormed(t, []byte(svg))
	assert.Contains(t, svg, "limit: 5 calls/s")
	assert.Contains(t, svg, `stroke-dasharray`)
	assert.Contains(t, svg, ">10<", "the Y axis reaches past the data")
}

func assertWellFormed(t *testing.T, svg []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if s, ok := tok.(xml.StartElement); ok && root == "" {
			root = s.Name.Local
		}
	}
	assert.Equal(t, "svg", root)
	assert.True(t, strings.HasPrefix(string(svg), "<svg xmlns="))
}
