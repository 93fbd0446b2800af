package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Fleet is a set of simulators, each serving on its own port.
type Fleet struct {
	sims    map[string]*Sim
	urls    map[string]string
	servers []*http.Server
}

// KnobsError is a knob spec Start cannot apply: a mistake in the configuration (in relay,
// RELAY_SIM_KNOBS), not a failure to serve.
type KnobsError struct{ Err error }

func (e *KnobsError) Error() string { return e.Err.Error() }
func (e *KnobsError) Unwrap() error { return e.Err }

// Start serves the named simulators on host; ports maps a name to its port (0 or
// missing: a free one). spec sets knobs, see ParseSpec; a bad one is a *KnobsError. Any
// other error says which simulator failed to start where, e.g. a port already taken.
func Start(host string, names []string, ports map[string]int, spec string) (*Fleet, error) {
	all, each, err := ParseSpec(spec, Names)
	if err != nil {
		return nil, &KnobsError{err}
	}
	ups := Upstreams()
	f := &Fleet{sims: map[string]*Sim{}, urls: map[string]string{}}
	for _, name := range names {
		up, ok := ups[name]
		if !ok {
			f.Close(context.Background())
			return nil, fmt.Errorf("unknown simulator %q", name)
		}
		s, err := New(up, joinList(all, each[name]))
		if err != nil {
			f.Close(context.Background())
			return nil, &KnobsError{fmt.Errorf("%s: %w", name, err)}
		}
		addr := net.JoinHostPort(host, strconv.Itoa(ports[name]))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			f.Close(context.Background())
			return nil, fmt.Errorf("start simulator %s on %s: %w", name, addr, err)
		}
		srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
		f.sims[name] = s
		f.urls[name] = "http://" + l.Addr().String()
		f.servers = append(f.servers, srv)
	}
	return f, nil
}

// Sim returns the named simulator, or nil if it does not run.
func (f *Fleet) Sim(name string) *Sim { return f.sims[name] }

// URL returns the named simulator's base URL, or "" if it does not run.
func (f *Fleet) URL(name string) string { return f.urls[name] }

// Close stops every simulator, waiting for calls in flight until ctx ends.
func (f *Fleet) Close(ctx context.Context) error {
	var errs []error
	for _, srv := range f.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
	}
	return errors.Join(errs...)
}
