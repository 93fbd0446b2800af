package incidents

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkBuild builds a snapshot of 100,000 incidents of 1,000 employees; the target is
// well under 1 s per build, with memory in proportion to the input:
//
//	go test ./internal/incidents -run '^$' -bench Build -benchtime 5x
func BenchmarkBuild(b *testing.B) {
	const employees, incidents = 1_000, 100_000
	identities, results := benchData(employees, incidents)
	in := len(identities)
	for _, body := range results {
		in += len(body)
	}
	b.SetBytes(int64(in))
	b.ReportAllocs()
	var out []byte
	var sum Summary
	for b.Loop() {
		var err error
		out, sum, err = Build(identities, results)
		if err != nil {
			b.Fatal(err)
		}
	}
	if sum.Incidents+sum.Unattributed != incidents || sum.Employees == 0 {
		b.Fatalf("summary %+v", sum)
	}
	b.ReportMetric(float64(incidents)*float64(b.N)/b.Elapsed().Seconds(), "incidents/s")
	b.ReportMetric(float64(len(out)), "out-bytes")
}

// benchData builds, deterministically, identities for employees employees (each owning one
// to three IPs, ids spread from 1000 to about 9,000,000) and n incidents spread evenly over
// the seven types, each list sorted by timestamp with some ties. About 5% of the IPs that
// incidents name are not in identities; ids are numbers or numeric strings; source_ip is
// sometimes an IP that identities knows.
func benchData(employees, n int) ([]byte, map[string][]byte) {
	r := rand.New(rand.NewPCG(3, 4))
	ids := make([]int, employees)
	var ips []string
	identities := []byte{'{'}
	for i := range ids {
		ids[i] = 1000 + i*9000 + r.IntN(9000)
		for range 1 + r.IntN(3) {
			ip := fmt.Sprintf("10.%d.%d.%d", len(ips)>>16&255, len(ips)>>8&255, len(ips)&255)
			ips = append(ips, ip)
			if len(identities) > 1 {
				identities = append(identities, ", "...)
			}
			identities = fmt.Appendf(identities, "%q: %d", ip, ids[i])
		}
	}
	identities = append(identities, '}')

	ip := func() string {
		if r.IntN(20) == 0 {
			return fmt.Sprintf("172.16.%d.%d", r.IntN(256), r.IntN(256)) // not in identities
		}
		return ips[r.IntN(len(ips))]
	}
	id := func() string {
		v := strconv.Itoa(ids[r.IntN(len(ids))])
		if r.IntN(2) == 0 {
			return `"` + v + `"`
		}
		return v
	}
	external := func() string {
		if r.IntN(10) == 0 {
			return ips[r.IntN(len(ips))] // known to identities, and never resolved
		}
		return fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(200), r.IntN(256), r.IntN(256), r.IntN(256))
	}

	results := make(map[string][]byte, len(Types))
	for ti, typ := range Types {
		count := n / len(Types)
		if ti < n%len(Types) {
			count++
		}
		body := make([]byte, 0, count*130)
		body = append(body, `{"results": [`...)
		tick := int64(15000000000000) // timestamps in 1e-4 s
		for i := range count {
			if i > 0 {
				body = append(body, ", "...)
			}
			tick += r.Int64N(4) * int64(1+r.IntN(40000)) // a quarter are ties
			body = append(body, '{')
			switch typ {
			case "denial":
				body = fmt.Appendf(body, `"reported_by": %s, "source_ip": %q`, id(), external())
			case "intrusion":
				body = fmt.Appendf(body, `"internal_ip": %q, "source_ip": %q`, ip(), external())
			case "executable":
				body = fmt.Appendf(body, `"machine_ip": %q`, ip())
			case "misuse", "unauthorized":
				body = fmt.Appendf(body, `"employee_id": %s`, id())
			case "probing":
				body = fmt.Appendf(body, `"ip": %q`, ip())
			case "other":
				if r.IntN(2) == 0 {
					body = fmt.Appendf(body, `"identifier": %s`, id())
				} else {
					body = fmt.Appendf(body, `"identifier": %q`, ip())
				}
			}
			body = fmt.Appendf(body, `, "priority": %q, "timestamp": %d.%04d}`, Priorities[r.IntN(len(Priorities))], tick/10000, tick%10000)
		}
		results[typ] = append(body, "]}"...)
	}
	return identities, results
}
