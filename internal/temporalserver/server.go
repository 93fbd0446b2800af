// Package temporalserver runs a whole Temporal server inside relay's process: frontend,
// history, matching and worker services on SQLite (a file, or memory for tests), with
// static membership, one history shard, and optionally the Web UI.
//
// It is what `relay dev` and the end-to-end tests stand on. Only packages that start a
// server import it, so that everything else links without the Temporal server.
package temporalserver

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/grpc"
)

const (
	clusterName = "active"
	// clusterID is fixed so that a restarted dev server finds its own cluster metadata.
	clusterID = "8c5a1e4e-61b1-4c0e-9f0f-3d7a5b0e2c11"
)

// Options say where and how the server runs.
type Options struct {
	// DatabaseFile is the SQLite file that keeps history across restarts; empty keeps it in memory.
	DatabaseFile string
	// FrontendAddr is the gRPC frontend's host:port; port 0 picks a free one.
	FrontendAddr string
	// UIAddr is the Web UI's host:port; empty runs no UI.
	UIAddr string
	// CodecEndpoint is the codec server the Web UI decodes payloads through, from the
	// browser (relay's /codec); empty: none, and encrypted payloads show as such.
	CodecEndpoint string
	// Namespace is created at start if missing; required.
	Namespace string
	// SearchAttributes are the custom search attributes (name to type) a namespace created
	// at start has. An existing namespace keeps its own: add to it through the operator API.
	SearchAttributes map[string]enumspb.IndexedValueType
	// Logger receives the server's logs (warnings and errors by default: the server is chatty).
	Logger *slog.Logger
	// DynamicConfig overrides or adds to LowLatencyConfig (keys as in the server's docs).
	DynamicConfig map[string]any
	// TLS, when set, makes the frontend speak TLS (mutual TLS with RequireClientCert); the
	// other services stay plain on loopback. relay dev never sets it: tests do.
	TLS *TLS
	// FrontendInterceptors run on every frontend call, before the server's own: tests see
	// there what clients send (their headers, say).
	FrontendInterceptors []grpc.UnaryServerInterceptor
}

// TLS is the frontend's TLS: PEM files, as the server's own config takes them.
type TLS struct {
	CertFile, KeyFile string // the frontend's certificate and key
	// CAFile is the authority the frontend trusts for client certificates, and the one the
	// server's system worker (schedules, namespace tasks) trusts when it dials the frontend.
	CAFile string
	// RequireClientCert asks every client for a certificate signed by CAFile.
	RequireClientCert bool
	// ServerName is the name the system worker expects in the frontend's certificate;
	// empty is the frontend's host.
	ServerName string
}

// Server is a running embedded Temporal server.
type Server struct {
	server       temporal.Server
	logger       slogLogger
	ui           *uiserver.Server
	frontendAddr string
	uiAddr       string
}

// Start builds and starts the server; it returns once the frontend accepts calls.
func Start(opts Options) (*Server, error) {
	if opts.Namespace == "" {
		return nil, errors.New("no namespace to create (config.Default has relay's)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	host, port, err := splitAddr(opts.FrontendAddr)
	if err != nil {
		return nil, fmt.Errorf("frontend address: %w", err)
	}
	if opts.UIAddr != "" {
		// The UI's Start exits the process when it cannot listen, so check the address first.
		if err := checkListen(opts.UIAddr); err != nil {
			return nil, fmt.Errorf("web UI address %s: %w (set RELAY_UI_ADDR to another address or 'off')", opts.UIAddr, err)
		}
	}

	// Free ports are picked first and bound later, so another process can take one in
	// between (tests running side by side do): then pick again.
	fixedPort := port != 0
	var srv temporal.Server
	var logger slogLogger
	var frontend string
	for attempt := 1; ; attempt++ {
		if !fixedPort {
			if port, err = freePort(host); err != nil {
				return nil, err
			}
		}
		frontend = net.JoinHostPort(host, strconv.Itoa(port))
		srv, logger, err = buildAndStart(host, port, opts)
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
		opts.Logger.Warn("a port was taken while the embedded Temporal server started; trying others", "error", err)
	}
	s := &Server{server: srv, logger: logger, frontendAddr: frontend}
	if opts.UIAddr != "" {
		// Built after the frontend is up, so that the UI's first connection succeeds.
		ui, err := newUI(opts.UIAddr, frontend, opts.Namespace, opts.CodecEndpoint)
		if err != nil {
			_ = srv.Stop()
			return nil, err
		}
		s.ui, s.uiAddr = ui, opts.UIAddr
		go func() {
			if err := ui.Start(); err != nil {
				opts.Logger.Error("web UI stopped", "error", err)
			}
		}()
	}
	return s, nil
}

// buildAndStart builds the server with its frontend on port (and fresh free ports for the
// other services) and starts it.
func buildAndStart(host string, port int, opts Options) (_ temporal.Server, _ slogLogger, err error) {
	defer func() {
		// A Fatal of the server's while it is built (a port taken, say) comes back as an
		// error; any other panic is a bug and goes on.
		if r := recover(); r != nil {
			fe, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("start temporal server: %w", fe)
		}
	}()
	cfg, err := serverConfig(host, port, opts)
	if err != nil {
		return nil, slogLogger{}, err
	}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for _, svc := range []primitives.ServiceName{primitives.FrontendService, primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		rpc := cfg.Services[string(svc)].RPC
		hosts[svc] = static.SingleLocalHost(net.JoinHostPort(host, strconv.Itoa(rpc.GRPCPort)))
	}
	dc := dynamicconfig.StaticClient{}
	for k, v := range LowLatencyConfig() {
		dc[dynamicconfig.MakeKey(k)] = v
	}
	for k, v := range opts.DynamicConfig {
		dc[dynamicconfig.MakeKey(k)] = v
	}
	logger := newLogger(opts.Logger)
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, slogLogger{}, fmt.Errorf("authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, slogLogger{}, fmt.Errorf("claim mapper: %w", err)
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dc),
		temporal.WithChainedFrontendGrpcInterceptors(opts.FrontendInterceptors...),
	)
	if err != nil {
		return nil, slogLogger{}, fmt.Errorf("build temporal server: %w", err)
	}
	if err := srv.Start(); err != nil { // a failed start rolls back what it started
		return nil, slogLogger{}, fmt.Errorf("start temporal server: %w", err)
	}
	return srv, logger, nil
}

// FrontendAddr is the host:port SDK clients and the temporal CLI dial.
func (s *Server) FrontendAddr() string { return s.frontendAddr }

// UIAddr is the Web UI's host:port, or "" when it does not run.
func (s *Server) UIAddr() string { return s.uiAddr }

// Stop stops the UI and the server; it waits for the services to shut down.
func (s *Server) Stop() error {
	// The server's own system workers warn about every poll cut short by the stop.
	s.logger.min.Set(slog.LevelError)
	if s.ui != nil {
		s.ui.Stop()
	}
	return s.server.Stop()
}

// LowLatencyConfig is the dynamic config that makes a one-node server answer fast:
// the history queues poll far more often than the defaults (20/s), and every task
// queue has one partition, which a single matching host needs anyway and which lets
// the server-side activity rate limit of relay-geoip apply as one bucket.
func LowLatencyConfig() map[string]any {
	return map[string]any{
		"history.transferProcessorMaxPollRPS":   1000,
		"history.timerProcessorMaxPollRPS":      1000,
		"history.visibilityProcessorMaxPollRPS": 1000,
		"history.outboundProcessorMaxPollRPS":   1000,
		"matching.numTaskqueueReadPartitions":   1,
		"matching.numTaskqueueWritePartitions":  1,
		"frontend.namespaceRPS.visibility":      100,
		// A workflow result is awaited by a long poll on history, fed by a notifier whose
		// per-watcher channel holds one event and drops the rest: when a fast workflow's
		// events arrive together, the close can be dropped and the poll waits out its whole
		// interval. Measured here: 5 of 1000 pings took 20 s (the default); with 1 s, the
		// worst case is 1 s (`relay bench workflow-latency` reports the max).
		// No HTTP path waits this way any more (a merge is answered by an update; the other
		// routes read closed runs' results): only the tools that await a run's result on
		// this dev server do (`relay bench workflow-latency` and the other bench scenarios,
		// `relay history record`), so it is kept here, and a cluster does not need it.
		"history.longPollExpirationInterval": time.Second,
		"history.hostLevelCacheMaxSize":      8192, // bounds memory; a dev server has few open workflows
	}
}

func serverConfig(host string, frontendPort int, opts Options) (*config.Config, error) {
	httpPort, err := freePort(host)
	if err != nil {
		return nil, err
	}
	var cfg config.Config
	cfg.Global.Membership.MaxJoinDuration = 30 * time.Second
	cfg.Global.Membership.BroadcastAddress = host

	sqlCfg, err := sqlConfig(opts)
	if err != nil {
		return nil, err
	}
	cfg.Persistence.DefaultStore = "sqlite"
	cfg.Persistence.VisibilityStore = "sqlite"
	cfg.Persistence.NumHistoryShards = 1
	cfg.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlCfg}}

	cfg.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             net.JoinHostPort(host, strconv.Itoa(frontendPort)),
				HTTPAddress:            net.JoinHostPort(host, strconv.Itoa(httpPort)),
				ClusterID:              clusterID,
			},
		},
	}
	cfg.DCRedirectionPolicy.Policy = "noop"
	cfg.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc config.Service
		svc.RPC.BindOnIP = host
		if name == "frontend" {
			svc.RPC.GRPCPort, svc.RPC.HTTPPort = frontendPort, httpPort
		} else if svc.RPC.GRPCPort, err = freePort(host); err != nil {
			return nil, err
		}
		cfg.Services[name] = svc
	}
	cfg.Archival.History.State = "disabled"
	cfg.Archival.Visibility.State = "disabled"
	cfg.NamespaceDefaults.Archival.History.State = "disabled"
	cfg.NamespaceDefaults.Archival.Visibility.State = "disabled"
	cfg.PublicClient.HostPort = net.JoinHostPort(host, strconv.Itoa(frontendPort))
	if opts.TLS != nil {
		cfg.Global.TLS = rootTLS(*opts.TLS)
	}
	return &cfg, nil
}

// rootTLS maps TLS onto the server's config: the frontend's listener, and the system
// worker's connection to it. Without the second, the worker service (which runs schedules
// and namespace tasks through the frontend, like any SDK client) dials in plain text, is
// refused, and schedules silently stop firing.
func rootTLS(t TLS) config.RootTLS {
	var root config.RootTLS
	root.Frontend.Server = config.ServerTLS{CertFile: t.CertFile, KeyFile: t.KeyFile}
	if t.RequireClientCert {
		root.Frontend.Server.RequireClientAuth = true
		root.Frontend.Server.ClientCAFiles = []string{t.CAFile}
	}
	root.SystemWorker.Client = config.ClientTLS{ServerName: t.ServerName, ForceTLS: true}
	if t.CAFile != "" {
		root.SystemWorker.Client.RootCAFiles = []string{t.CAFile}
	}
	if t.RequireClientCert {
		// The frontend's own certificate serves as the system worker's client certificate.
		root.SystemWorker.CertFile, root.SystemWorker.KeyFile = t.CertFile, t.KeyFile
	}
	return root
}

func sqlConfig(opts Options) (*config.SQL, error) {
	cfg := &config.SQL{PluginName: sqliteplugin.PluginName}
	if opts.DatabaseFile == "" {
		// A shared in-memory database, named at random so that tests can run several.
		cfg.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		cfg.DatabaseName = "relay-" + strconv.FormatUint(rand.Uint64(), 36)
	} else {
		if err := os.MkdirAll(filepath.Dir(opts.DatabaseFile), 0o755); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		// WAL with synchronous=NORMAL survives a killed process; "setup" creates the
		// schema on first use and leaves an existing one alone.
		cfg.ConnectAttributes = map[string]string{
			"mode": "rwc", "setup": "true", "journal_mode": "wal", "synchronous": "1", "busy_timeout": "10000",
		}
		cfg.DatabaseName = opts.DatabaseFile
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", opts.Namespace, err)
	}
	if err := sqliteschema.CreateNamespaces(cfg, ns); err != nil {
		return nil, fmt.Errorf("create namespace %q: %w", opts.Namespace, err)
	}
	return cfg, nil
}

func newUI(addr, frontend, namespace, codecEndpoint string) (*uiserver.Server, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("web UI address: %w", err)
	}
	cfg := &uiconfig.Config{
		Host:                host,
		Port:                port,
		TemporalGRPCAddress: frontend,
		EnableUI:            true,
		DefaultNamespace:    namespace,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
		DisableNewsFetch:    true, // no internet is assumed
	}
	cfg.Codec.Endpoint = codecEndpoint
	return uiserver.NewServer(uioptions.WithConfigProvider(cfg)), nil
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// freePort asks the kernel for a port that is free now. Another process could take it
// before the server binds it; on one developer machine that is rare enough.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func checkListen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}
