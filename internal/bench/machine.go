package bench

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Machine says where numbers were measured.
type Machine struct {
	Cores  int    `json:"cores"`
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
	OS     string `json:"os,omitempty"`
	Go     string `json:"go"`
}

// DescribeMachine reads the machine's description from /proc and /etc where there is one.
func DescribeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	m.CPU = procField("/proc/cpuinfo", "model name", ":")
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal", ":"), " kB"), 64); err == nil {
		m.Memory = strconv.FormatFloat(kb/(1<<20), 'f', 0, 64) + " GiB"
	}
	m.OS = strings.Trim(procField("/etc/os-release", "PRETTY_NAME", "="), `"`)
	return m
}

// String is the machine on one line, as BENCHMARKS.md names it.
func (m Machine) String() string {
	parts := []string{strconv.Itoa(m.Cores) + " cores"}
	for _, s := range []string{m.CPU, m.Memory, m.OS, m.Go} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

// procField returns the value of the first "key<sep>value" line of file, or "".
func procField(file, key, sep string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage is the first three fields of /proc/loadavg, or "" where there is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// Memory is the process's memory at a moment, or the peaks over a stretch, in bytes.
type Memory struct {
	Heap uint64 `json:"heap_bytes"` // live Go heap (runtime.MemStats.HeapAlloc)
	RSS  uint64 `json:"rss_bytes"`  // resident set, 0 where /proc is missing
}

// ReadMemory reads the process's memory now.
func ReadMemory() Memory {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := Memory{Heap: ms.HeapAlloc}
	if kb, err := strconv.ParseUint(strings.TrimSuffix(procField("/proc/self/status", "VmRSS", ":"), " kB"), 10, 64); err == nil {
		m.RSS = kb * 1024
	}
	return m
}

// SampleMemory reads the memory every 20 ms until the returned stop is called, which
// returns the peaks.
func SampleMemory() (stop func() Memory) {
	done := make(chan struct{})
	var peak Memory
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			m := ReadMemory()
			peak.Heap, peak.RSS = max(peak.Heap, m.Heap), max(peak.RSS, m.RSS)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() Memory { close(done); wg.Wait(); return peak }
}
