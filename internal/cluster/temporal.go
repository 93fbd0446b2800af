package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"relay/internal/temporalclient"
	"relay/workflows"
)

// Binaries are the three programs the topology runs.
type Binaries struct {
	Relay, TemporalServer, SQLTool string
	// Repo is relay's checkout: deploy/temporal/ holds the server's configuration.
	Repo string
}

// Build builds relay into dir and the Temporal server and its SQL tool as the module's
// tools (go.mod's tool lines: the server relay embeds, at its version), which the go
// command caches between runs.
func Build(ctx context.Context, dir string) (Binaries, error) {
	gomod, err := goOutput(ctx, "", "env", "GOMOD")
	if err != nil {
		return Binaries{}, err
	}
	repo := filepath.Dir(gomod)
	b := Binaries{Repo: repo, Relay: filepath.Join(dir, "relay")}
	if _, err := goOutput(ctx, repo, "build", "-o", b.Relay, "./cmd/relay"); err != nil {
		return Binaries{}, err
	}
	// `go tool -n` builds the tool into the go command's cache and prints its path.
	if b.TemporalServer, err = goOutput(ctx, repo, "tool", "-n", "go.temporal.io/server/cmd/server"); err != nil {
		return Binaries{}, err
	}
	if b.SQLTool, err = goOutput(ctx, repo, "tool", "-n", "go.temporal.io/server/cmd/tools/sql"); err != nil {
		return Binaries{}, err
	}
	return b, nil
}

func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func (c *Cluster) pgURL(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", c.opts.User, c.opts.Postgres, db)
}

// createDatabases makes Temporal's two databases and their schemas with the server's SQL
// tool, as the auto-setup image did, and an empty one for relay's store (relay migrates
// it itself at start).
func (c *Cluster) createDatabases(ctx context.Context) error {
	host, port, ok := strings.Cut(c.opts.Postgres, ":")
	if !ok {
		return fmt.Errorf("postgres %q: want host:port", c.opts.Postgres)
	}
	temporalDB, visibilityDB, relayDB := "temporal_"+c.opts.Name, "temporal_visibility_"+c.opts.Name, "relay_"+c.opts.Name
	c.Databases = []string{temporalDB, visibilityDB, relayDB}
	c.DatabaseURL = c.pgURL(relayDB)
	for _, s := range []struct{ db, schema string }{
		{temporalDB, "postgresql/v12/temporal"}, {visibilityDB, "postgresql/v12/visibility"},
	} {
		// Flags before the command (urfave/cli); the schema is the one embedded in the tool.
		base := []string{"--plugin", "postgres12", "--ep", host, "-p", port, "-u", c.opts.User, "--db", s.db}
		for _, step := range [][]string{
			{"create-database"},
			{"setup-schema", "-v", "0.0"},
			{"update-schema", "-s", s.schema},
		} {
			cmd := exec.CommandContext(ctx, c.opts.Bin.SQLTool, append(base, step...)...)
			cmd.Env = baseEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("temporal-sql-tool %s on %s: %w\n%s", step[0], s.db, err, out)
			}
		}
	}
	conn, err := pgx.Connect(ctx, c.pgURL("postgres"))
	if err != nil {
		return fmt.Errorf("cluster: PostgreSQL at %s: %w", c.opts.Postgres, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+relayDB+" WITH (FORCE)"); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+relayDB)
	c.opts.Logf("databases %s ready", strings.Join(c.Databases, ", "))
	return err
}

func (c *Cluster) dropDatabases(ctx context.Context) error {
	if len(c.Databases) == 0 {
		return nil
	}
	conn, err := pgx.Connect(ctx, c.pgURL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var errs []error
	for _, db := range c.Databases {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startTemporal starts the server with deploy/temporal/cluster.yaml and the dynamic config
// docker-compose.yml mounts, on ports it keeps across restarts (a restarted member on new
// ports would wait for the old one to be evicted from the ring), and registers the namespace.
func (c *Cluster) startTemporal(ctx context.Context) error {
	ports := map[string]int{}
	for _, k := range []string{"FRONTEND_GRPC", "FRONTEND_MEMBERSHIP", "FRONTEND_HTTP", "HISTORY_GRPC",
		"HISTORY_MEMBERSHIP", "MATCHING_GRPC", "MATCHING_MEMBERSHIP", "WORKER_GRPC", "WORKER_MEMBERSHIP", "METRICS"} {
		port, err := freePort()
		if err != nil {
			return err
		}
		ports[k] = port
	}
	c.FrontendAddr = "127.0.0.1:" + strconv.Itoa(ports["FRONTEND_GRPC"])
	c.FrontendHTTP = "http://127.0.0.1:" + strconv.Itoa(ports["FRONTEND_HTTP"])
	c.TemporalMetrics = "http://127.0.0.1:" + strconv.Itoa(ports["METRICS"]) + "/metrics"
	env := append(baseEnv(),
		"DBNAME=temporal_"+c.opts.Name, "VISIBILITY_DBNAME=temporal_visibility_"+c.opts.Name,
		"POSTGRES_ADDR="+c.opts.Postgres, "POSTGRES_USER="+c.opts.User, "POSTGRES_PWD=",
		"DYNAMIC_CONFIG_FILE_PATH="+filepath.Join(c.opts.Bin.Repo, DynamicConfigFile),
	)
	for k, port := range ports {
		env = append(env, k+"_PORT="+strconv.Itoa(port))
	}
	c.Temporal = newProc(c.opts.Dir, "temporal", c.opts.Bin.TemporalServer, env,
		"--config-file", filepath.Join(c.opts.Bin.Repo, ServerConfigFile), "--allow-no-auth", "start")
	if err := c.Temporal.start(c.opts.Detach); err != nil {
		return err
	}
	if err := c.waitTemporal(ctx); err != nil {
		return err
	}
	if err := c.registerNamespace(ctx); err != nil {
		return err
	}
	if err := c.createSearchAttributes(ctx); err != nil {
		return err
	}
	c.opts.Logf("Temporal server on %s (HTTP %s)", c.FrontendAddr, c.FrontendHTTP)
	return nil
}

// The files the harness's Temporal server reads, relative to the repository.
const (
	ServerConfigFile  = "deploy/temporal/cluster.yaml"
	DynamicConfigFile = "deploy/temporal/dynamicconfig.yaml"
)

// waitTemporal waits until the frontend serves: its HTTP API answers only once the
// server's membership has formed.
func (c *Cluster) waitTemporal(ctx context.Context) error {
	return c.waitReady(ctx, c.Temporal, c.FrontendHTTP+"/api/v1/system-info")
}

// registerNamespace registers relay's namespace through the frontend's HTTP API (no CLI
// needed) and waits until the server knows it. An existing namespace is fine.
func (c *Cluster) registerNamespace(ctx context.Context) error {
	body := fmt.Sprintf(`{"namespace":%q,"workflowExecutionRetentionPeriod":"86400s"}`, Namespace)
	resp, err := http.Post(c.FrontendHTTP+"/api/v1/namespaces", "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("register namespace: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("register namespace: %s: %s", resp.Status, b)
	}
	return c.waitReady(ctx, c.Temporal, c.FrontendHTTP+"/api/v1/namespaces/"+Namespace)
}

// createSearchAttributes creates relay's search attributes in its namespace, as an operator
// does once per cluster (README "Finding a job"); the workers would too, but only once
// they run, and the servers may start workflows before.
func (c *Cluster) createSearchAttributes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: c.FrontendAddr, Namespace: Namespace})
	if err != nil {
		return fmt.Errorf("dial Temporal to create search attributes: %w", err)
	}
	defer tc.Close()
	return temporalclient.EnsureSearchAttributes(ctx, tc, Namespace, workflows.SearchAttributes())
}

// waitReady polls url until it answers 200 (any answer, for the simulators' roots), and
// fails at once if p ends, with the end of p's log.
func (c *Cluster) waitReady(ctx context.Context, p *Proc, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	anyAnswer := p == c.Sim
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || anyAnswer {
				return nil
			}
			last = resp.Status + ": " + string(b)
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited():
			return fmt.Errorf("%s exited before %s answered (%v); its log ends:\n%s", p.Name, url, p.err, Tail(p.Log(), 40))
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer 200 within 2 min (last: %s); its log ends:\n%s", p.Name, url, last, Tail(p.Log(), 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tail is the last lines of s.
func Tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// state is what scripts/cluster.sh up leaves for down: the processes and databases.
type state struct {
	Postgres, User string
	Databases      []string
	Pids           map[string]int
	URLs           map[string]string
}

// WriteState records the running cluster in Dir/state.json.
func (c *Cluster) WriteState() error {
	s := state{Postgres: c.opts.Postgres, User: c.opts.User, Databases: c.Databases, Pids: map[string]int{},
		URLs: map[string]string{"temporal": c.FrontendAddr, "temporal-http": c.FrontendHTTP, "temporal-metrics": c.TemporalMetrics}}
	for _, p := range c.Procs() {
		s.Pids[p.Name] = p.Pid()
	}
	for i, u := range c.ServerURLs {
		s.URLs[fmt.Sprintf("server-%d", i+1)] = u
	}
	for name, u := range c.SimURLs {
		s.URLs["sim-"+name] = u
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.opts.Dir, "state.json"), b, 0o644)
}

// Down stops what `Start` with Detach left running in dir (relay's processes first, each
// given grace to drain, then the simulators and Temporal) and drops its databases.
func Down(ctx context.Context, dir string, grace time.Duration) error {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return fmt.Errorf("no cluster in %s: %w", dir, err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s/state.json: %w", dir, err)
	}
	var order []string
	for name := range s.Pids {
		if name != "sim" && name != "temporal" {
			order = append(order, name)
		}
	}
	for _, group := range [][]string{order, {"sim"}, {"temporal"}} {
		for _, name := range group {
			if pid := s.Pids[name]; pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		deadline := time.Now().Add(grace)
		for _, name := range group {
			pid := s.Pids[name]
			for pid > 0 && syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if pid > 0 && syscall.Kill(pid, 0) == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	c := &Cluster{opts: Options{Postgres: s.Postgres, User: s.User}, Databases: s.Databases}
	if err := c.dropDatabases(ctx); err != nil {
		return err
	}
	return os.Remove(filepath.Join(dir, "state.json"))
}
