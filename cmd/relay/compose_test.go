package main

import (
	"flag"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/headers"

	"relay/internal/cluster"
	"relay/internal/config"
	"relay/internal/sim"
	"relay/internal/temporalclient"
	"relay/workflows"
)

// No Docker engine runs here, so the compose file is checked as data: every relay
// service runs a real command with configuration that command accepts, and the wiring
// between services (names, ports, credentials) lines up.
type composeFile struct {
	Services map[string]struct {
		Image       string         `yaml:"image"`
		Build       any            `yaml:"build"`
		Command     []string       `yaml:"command"`
		Environment map[string]any `yaml:"environment"`
		DependsOn   any            `yaml:"depends_on"`
		Ports       []string       `yaml:"ports"`
		Container   string         `yaml:"container_name"`
		Volumes     []string       `yaml:"volumes"`
		StopGrace   string         `yaml:"stop_grace_period"`
	} `yaml:"services"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var f composeFile
	require.NoError(t, yaml.Unmarshal(b, &f))
	return f
}

func TestComposeRunsEveryPartOnTemporalAndPostgres(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"postgresql", "temporal", "temporal-ui", "temporal-admin-tools", "relay-server", "relay-worker", "relay-sim"} {
		require.Contains(t, f.Services, name)
	}
	assert.Equal(t, "postgres12", f.Services["temporal"].Environment["DB"], "Temporal persists to PostgreSQL")

	for name, svc := range f.Services {
		for _, dep := range dependsOn(svc.DependsOn) {
			assert.Contains(t, f.Services, dep, "%s depends on a service that does not exist", name)
		}
	}
	// --scale relay-worker=3 needs a worker without a fixed name or host port.
	assert.Empty(t, f.Services["relay-worker"].Container)
	assert.Empty(t, f.Services["relay-worker"].Ports)
}

// The compose file and the topology harness (internal/cluster) run the same Temporal: the
// server relay embeds (go.mod's version, as the running server reports it), with the same
// dynamic config file, which the server's own loader accepts, and the same persistence sizes.
func TestComposeAndTheHarnessRunTheSameTemporal(t *testing.T) {
	f := loadCompose(t)
	gomod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*go\.temporal\.io/server v(\S+)$`).FindSubmatch(gomod)
	require.NotNil(t, m, "go.mod requires go.temporal.io/server")
	version := string(m[1])
	assert.Equal(t, headers.ServerVersion, version, "the server relay links reports go.mod's version")
	assert.Equal(t, "temporalio/server:"+version, f.Services["temporal"].Image)
	for _, name := range []string{"temporal-schema", "temporal-namespace", "temporal-admin-tools"} {
		assert.Equal(t, "temporalio/admin-tools:"+version, f.Services[name].Image, name)
	}

	assert.Contains(t, f.Services["temporal"].Volumes, "./"+cluster.DynamicConfigFile+":"+stringify(f.Services["temporal"].Environment["DYNAMIC_CONFIG_FILE_PATH"])+":ro",
		"compose mounts the harness's dynamic config where DYNAMIC_CONFIG_FILE_PATH points")
	dyn, err := os.ReadFile("../../" + cluster.DynamicConfigFile)
	require.NoError(t, err)
	require.NoError(t, dynamicconfig.LoadYamlFile(dyn).Err(), "the server's loader accepts the dynamic config")

	harness, err := os.ReadFile("../../" + cluster.ServerConfigFile)
	require.NoError(t, err)
	var hc struct {
		Persistence struct {
			NumHistoryShards int `yaml:"numHistoryShards"`
			DataStores       map[string]struct {
				SQL struct {
					PluginName string `yaml:"pluginName"`
					MaxConns   int    `yaml:"maxConns"`
				} `yaml:"sql"`
			} `yaml:"datastores"`
		} `yaml:"persistence"`
	}
	// The template's {{ }} lines are not YAML values: read the file with them blanked.
	plain := regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAll(harness, []byte("0"))
	require.NoError(t, yaml.Unmarshal(plain, &hc))
	env := f.Services["temporal"].Environment
	assert.Equal(t, stringify(env["NUM_HISTORY_SHARDS"]), strconv.Itoa(hc.Persistence.NumHistoryShards), "history shards")
	assert.Equal(t, stringify(env["DB"]), hc.Persistence.DataStores["default"].SQL.PluginName)
	assert.Equal(t, stringify(env["SQL_MAX_CONNS"]), strconv.Itoa(hc.Persistence.DataStores["default"].SQL.MaxConns))
	assert.Equal(t, stringify(env["SQL_VIS_MAX_CONNS"]), strconv.Itoa(hc.Persistence.DataStores["visibility"].SQL.MaxConns))
}

// The namespace one-shot creates the search attributes relay's workflows set, with the
// command an operator would run (temporalclient.CreateSearchAttributesCommand).
func TestComposeCreatesRelaysSearchAttributes(t *testing.T) {
	f := loadCompose(t)
	cmd := f.Services["temporal-namespace"].Command
	require.Len(t, cmd, 1)
	assert.Contains(t, cmd[0], temporalclient.CreateSearchAttributesCommand("default", workflows.SearchAttributes()))
}

// relay's store has a database and user of its own, and relay's processes are given longer
// than their drain to stop.
func TestComposeGivesRelayItsOwnDatabaseAndTimeToDrain(t *testing.T) {
	f := loadCompose(t)
	initSQL, err := os.ReadFile("../../deploy/postgres/init.sql")
	require.NoError(t, err)
	for _, name := range []string{"relay-server", "relay-worker"} {
		svc := f.Services[name]
		u, err := url.Parse(stringify(svc.Environment["DATABASE_URL"]))
		require.NoError(t, err, name)
		assert.NotEqual(t, "temporal", u.User.Username(), "%s: relay's own user", name)
		assert.Contains(t, string(initSQL), "CREATE USER "+u.User.Username())
		assert.Contains(t, string(initSQL), "CREATE DATABASE "+strings.TrimPrefix(u.Path, "/")+" OWNER "+u.User.Username())
		grace, err := time.ParseDuration(svc.StopGrace)
		require.NoError(t, err, "%s: stop_grace_period", name)
		assert.Greater(t, grace, shutdownTimeout, "%s: stop_grace_period longer than relay's drain", name)
	}
}

func TestComposeRelayServicesHaveValidConfiguration(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"relay-server", "relay-worker", "relay-sim"} {
		svc := f.Services[name]
		require.NotNil(t, svc.Build, "%s builds the Dockerfile", name)
		require.Len(t, svc.Command, 1, name)
		cmd := findCommand(t, svc.Command[0])

		env := map[string]string{}
		for k, v := range svc.Environment {
			env[k] = stringify(v)
		}
		// Every variable must be one the command reads: a typo would be silently ignored.
		require.NotNil(t, cmd.config, "relay %s runs relay", cmd.name)
		cfg := cmd.config.defaults()
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		loader := config.Bind(fs, &cfg, cmd.config.groups)
		for k := range env {
			flagName := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "RELAY_")), "_", "-")
			assert.NotNil(t, fs.Lookup(flagName), "%s sets %s, which relay %s does not read", name, k, cmd.name)
		}
		require.NoError(t, loader.Load(nil, func(k string) string { return env[k] }), name)

		if cmd.name == "worker" {
			// The worker reaches each simulator by service name and port, with its credentials.
			// relay sim's ports are in the order of sim.Names.
			ports := config.Default().SimPorts
			for i, u := range []string{cfg.Incidents.URL, cfg.C42.URL, cfg.GeoIP.URL, cfg.KF.URL} {
				parsed, err := url.Parse(u)
				require.NoError(t, err)
				assert.Equal(t, "relay-sim:"+strconv.Itoa(ports[i]), parsed.Host, sim.Names[i])
			}
			assert.Equal(t, sim.DefaultIncidentsUser, cfg.Incidents.User)
			assert.Equal(t, sim.DefaultIncidentsPassword, cfg.Incidents.Password)
			assert.Equal(t, sim.DefaultC42Token, cfg.C42.Token)
			assert.Equal(t, sim.DefaultKFKey, cfg.KF.APIKey)
		}
		if cmd.name != "sim" {
			assert.Equal(t, "temporal:7233", cfg.TemporalAddress, name)
			assert.True(t, strings.HasPrefix(cfg.DatabaseURL, "postgres://"), "%s uses PostgreSQL", name)
		}
	}
}

func TestDockerfileBuildsRelayInTwoStages(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	df := string(b)
	assert.Contains(t, df, "FROM golang:1.26.8")
	assert.Contains(t, df, "AS build")
	assert.Contains(t, df, "go build")
	assert.Contains(t, df, "./cmd/relay")
	assert.Contains(t, df, "COPY --from=build")
	assert.Equal(t, 2, strings.Count(df, "\nFROM ")+boolInt(strings.HasPrefix(df, "FROM ")), "two stages")
}

func findCommand(t *testing.T, name string) command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("compose runs relay %q, which is not a command", name)
	return command{}
}

func dependsOn(v any) []string {
	switch d := v.(type) {
	case []any:
		out := make([]string, len(d))
		for i, s := range d {
			out[i] = stringify(s)
		}
		return out
	case map[string]any:
		var out []string
		for k := range d {
			out = append(out, k)
		}
		return out
	}
	return nil
}

func stringify(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, _ := yaml.Marshal(x)
		return strings.TrimSpace(string(b))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
