// Package cluster runs relay's production shape as processes on loopback, the way
// docker-compose.yml describes it: the Temporal server built from go.temporal.io/server's
// own server command (the version relay embeds) on PostgreSQL, its schema made by the
// server's own SQL tool, visibility on PostgreSQL too, relay's store in a database of its
// own, any number of `relay server` and `relay worker` processes and one `relay sim`.
// The topology tests start it and kill its processes; scripts/cluster.sh runs it for people.
package cluster

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"relay/internal/payloadcodec"
	"relay/internal/sim"
)

// Namespace is the Temporal namespace the harness registers and relay uses.
const Namespace = "default"

// Options say what to run and where.
type Options struct {
	// Dir holds the processes' configuration and logs.
	Dir string
	// Name suffixes the three databases (temporal_<name>, temporal_visibility_<name>,
	// relay_<name>), so that harnesses side by side never share one: [a-z0-9_] only.
	Name             string
	Servers, Workers int
	// Postgres is host:port of a PostgreSQL that lets User in without a password.
	Postgres, User string
	// SimKnobs are relay sim's fault knobs (RELAY_SIM_KNOBS).
	SimKnobs string
	// Env is added to every relay server's and worker's environment, e.g. C42_CACHE_TTL=10s.
	Env []string
	Bin Binaries
	// Detach lets the processes outlive this one (scripts/cluster.sh up).
	Detach bool
	// Logf, if set, reports progress.
	Logf func(format string, args ...any)
}

// Cluster is a running topology.
type Cluster struct {
	opts Options

	Temporal *Proc
	Sim      *Proc
	Servers  []*Proc
	Workers  []*Proc

	// FrontendAddr is the Temporal frontend's gRPC host:port; FrontendHTTP its HTTP API.
	FrontendAddr, FrontendHTTP string
	// TemporalMetrics is the Temporal server's Prometheus endpoint.
	TemporalMetrics string
	// ServerURLs are the relay servers' HTTP APIs, WorkerMetrics the workers' /metrics.
	ServerURLs, WorkerMetrics []string
	// SimURLs maps each simulator's name to its base URL.
	SimURLs map[string]string
	// DatabaseURL is relay's store.
	DatabaseURL string
	// Databases are the three databases the harness created.
	Databases []string
}

var validName = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)

// Start creates the databases, starts the Temporal server and registers the namespace,
// then starts relay sim, the workers and the servers, and returns once every server is
// ready. On failure it stops what it started and says which process failed, with the end
// of its log.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if !validName.MatchString(opts.Name) {
		return nil, fmt.Errorf("cluster name %q: want 1 to 40 of a-z, 0-9 and _", opts.Name)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	c = &Cluster{opts: opts, SimURLs: map[string]string{}}
	defer func() {
		if err != nil {
			_ = c.Stop(context.Background())
		}
	}()
	if err := c.createDatabases(ctx); err != nil {
		return nil, err
	}
	if err := c.startTemporal(ctx); err != nil {
		return nil, err
	}
	if err := c.startSim(ctx); err != nil {
		return nil, err
	}
	for i := range opts.Workers {
		if err := c.startRelay(ctx, "worker", i); err != nil {
			return nil, err
		}
	}
	for i := range opts.Servers {
		if err := c.startRelay(ctx, "server", i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Procs is every process, relay's first: the order Stop stops them in.
func (c *Cluster) Procs() []*Proc {
	var all []*Proc
	all = append(all, c.Servers...)
	all = append(all, c.Workers...)
	for _, p := range []*Proc{c.Sim, c.Temporal} {
		if p != nil {
			all = append(all, p)
		}
	}
	return all
}

// Stop stops relay's processes (each drains, as on a deploy), then the simulators and
// the Temporal server, and drops the databases.
func (c *Cluster) Stop(ctx context.Context) error {
	var errs []error
	for _, p := range c.Procs() {
		if err := p.Stop(20 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.dropDatabases(ctx))
	return errors.Join(errs...)
}

// StartWorker adds one more relay worker.
func (c *Cluster) StartWorker(ctx context.Context) (*Proc, error) {
	if err := c.startRelay(ctx, "worker", len(c.Workers)); err != nil {
		return nil, err
	}
	return c.Workers[len(c.Workers)-1], nil
}

// RestartTemporal starts the Temporal server again on its ports after Kill or Stop, and
// returns once its frontend answers.
func (c *Cluster) RestartTemporal(ctx context.Context) error {
	if err := c.Temporal.start(c.opts.Detach); err != nil {
		return err
	}
	return c.waitTemporal(ctx)
}

// Restart starts p (a relay process) again after Kill or Stop, and waits until it is ready.
func (c *Cluster) Restart(ctx context.Context, p *Proc) error {
	if err := p.start(c.opts.Detach); err != nil {
		return err
	}
	for i, s := range c.Servers {
		if s == p {
			return c.waitReady(ctx, p, c.ServerURLs[i]+"/readyz")
		}
	}
	for i, w := range c.Workers {
		if w == p {
			return c.waitReady(ctx, p, c.WorkerMetrics[i]+"/metrics")
		}
	}
	return nil
}

func (c *Cluster) startSim(ctx context.Context) error {
	ports := make([]string, len(sim.Names))
	for i, name := range sim.Names {
		port, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = strconv.Itoa(port)
		c.SimURLs[name] = "http://127.0.0.1:" + ports[i]
	}
	env := append(baseEnv(), "RELAY_SIM_LISTEN=127.0.0.1", "RELAY_SIM_PORTS="+strings.Join(ports, ","),
		"RELAY_SIM_KNOBS="+c.opts.SimKnobs, "RELAY_LOG_FORMAT=json")
	c.Sim = newProc(c.opts.Dir, "sim", c.opts.Bin.Relay, env, "sim")
	if err := c.Sim.start(c.opts.Detach); err != nil {
		return err
	}
	for _, name := range sim.Names {
		if err := c.waitReady(ctx, c.Sim, c.SimURLs[name]+"/"); err != nil {
			return err
		}
	}
	c.opts.Logf("relay sim on ports %s", strings.Join(ports, ","))
	return nil
}

// startRelay starts `relay <cmd>` number i and waits until it is ready.
func (c *Cluster) startRelay(ctx context.Context, cmd string, i int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	name := fmt.Sprintf("%s-%d", cmd, i+1)
	secrets, err := c.secretsEnv()
	if err != nil {
		return err
	}
	env := append(append(baseEnv(), secrets...),
		"TEMPORAL_ADDRESS="+c.FrontendAddr,
		"TEMPORAL_NAMESPACE="+Namespace,
		"DATABASE_URL="+c.DatabaseURL,
		"RELAY_DATA_DIR="+filepath.Join(c.opts.Dir, name),
		"RELAY_LOG_FORMAT=json",
	)
	var ready string
	switch cmd {
	case "server":
		// The PostgreSQL budget (README): 2 x 8 + 3 x 12 for relay, 28 for Temporal, of 100.
		env = append(env, "RELAY_HTTP_ADDR="+addr, "RELAY_DB_MAX_CONNS=8")
		c.ServerURLs = append(c.ServerURLs, "http://"+addr)
		ready = "http://" + addr + "/readyz"
	case "worker":
		env = append(env, "RELAY_METRICS_ADDR="+addr, "RELAY_DB_MAX_CONNS=12",
			"INCIDENTS_API_URL="+c.SimURLs[sim.Incidents],
			"INCIDENTS_API_USER="+sim.DefaultIncidentsUser,
			"INCIDENTS_API_PASSWORD="+sim.DefaultIncidentsPassword,
			"C42_API_URL="+c.SimURLs[sim.C42], "C42_API_TOKEN="+sim.DefaultC42Token,
			"GEOIP_API_URL="+c.SimURLs[sim.GeoIP],
			"KF_API_URL="+c.SimURLs[sim.KF], "KF_API_KEY="+sim.DefaultKFKey,
		)
		c.WorkerMetrics = append(c.WorkerMetrics, "http://"+addr)
		ready = "http://" + addr + "/metrics"
	}
	env = append(env, c.opts.Env...)
	p := newProc(c.opts.Dir, name, c.opts.Bin.Relay, env, cmd)
	if cmd == "server" {
		c.Servers = append(c.Servers, p)
	} else {
		c.Workers = append(c.Workers, p)
	}
	if err := p.start(c.opts.Detach); err != nil {
		return err
	}
	if err := c.waitReady(ctx, p, ready); err != nil {
		return err
	}
	c.opts.Logf("%s ready on %s", name, addr)
	return nil
}

// secretsEnv gives every relay process the cluster's payload keys and workflow id key, as
// files (RELAY_*_FILE, as a deployment mounts secrets): made once in the cluster's dir,
// so that restarted processes read what the others wrote.
func (c *Cluster) secretsEnv() ([]string, error) {
	keysFile, idFile := filepath.Join(c.opts.Dir, "payload-keys"), filepath.Join(c.opts.Dir, "workflow-id-key")
	if _, err := os.Stat(keysFile); errors.Is(err, fs.ErrNotExist) {
		_, keys, err := payloadcodec.NewKey("cluster")
		if err != nil {
			return nil, err
		}
		id := make([]byte, 32)
		if _, err := crand.Read(id); err != nil {
			return nil, err
		}
		if err := os.WriteFile(idFile, []byte(base64.StdEncoding.EncodeToString(id)), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
			return nil, err
		}
	}
	return []string{"RELAY_PAYLOAD_KEYS_FILE=" + keysFile, "RELAY_WORKFLOW_ID_KEY_FILE=" + idFile}, nil
}

// baseEnv is what every process inherits: nothing of this one's relay or Temporal settings.
func baseEnv() []string {
	env := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// freePort is a loopback port that was free a moment ago, below the kernel's ephemeral
// range (outgoing connections never take it) and below 32768, which the Temporal schema
// stores membership ports in (a smallint), and apart from testenv.FreeAddr's range.
func freePort() (int, error) {
	for range 100 {
		port := 12000 + rand.IntN(8000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("cluster: no free port in [12000, 20000) after 100 tries")
}
