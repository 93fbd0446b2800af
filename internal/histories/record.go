package histories

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"relay/internal/payloadcodec"
	"relay/workflows"
)

// Target is a running relay to record from: its Temporal client and its HTTP API. The API
// must trust loopback as a proxy, so that a submitted event can come "from" a public IP.
type Target struct {
	Client  client.Client
	BaseURL string // like http://127.0.0.1:8080
	HTTP    *http.Client
	// SetC42Knobs sets the calendar simulator's knobs (as in C42 sim knobs, e.g.
	// "failure-rate=1"), for the scenarios of a failing upstream.
	SetC42Knobs func(knobs string) error
	// WorkflowIDKey is the running relay's RELAY_WORKFLOW_ID_KEY: it names IP lookups.
	WorkflowIDKey []byte
}

// Scenario is one recorded run: the file it is saved as (<WorkflowType>-<case>.json, the
// name the replay test groups by) and how to run it to completion.
type Scenario struct {
	File string
	Run  func(ctx context.Context, t Target) (workflowID, runID string, err error)
}

// Scenarios cover every workflow type and each of its main paths (the merge's are in
// eventsubscriptions.go).
var Scenarios = append([]Scenario{
	{"Ping-basic.json", execute(workflows.PingWorkflowID("record-basic"), workflows.PingWorkflowType,
		workflows.PingInput{Message: "recorded"})},
	{"Ping-sleep-geoip-queue.json", execute(workflows.PingWorkflowID("record-sleep"), workflows.PingWorkflowType,
		workflows.PingInput{Message: "recorded", Sleep: "1s", Queue: workflows.GeoIPTaskQueue})},
	{"SyncSiteOutages-kingfisher.json", execute(workflows.OutageSyncWorkflowID("kingfisher"), workflows.SyncSiteOutagesWorkflowType,
		workflows.SyncSiteOutagesInput{SiteID: "kingfisher", Since: "2022-01-01T00:00:00.000Z"})},
	// The schedule's run of a site's sync: SyncSiteOutages as a child under the site's id.
	{"ScheduledSyncSiteOutages-kingfisher.json", execute(workflows.OutageSyncScheduledWorkflowID("kingfisher")+"-recorded",
		workflows.ScheduledSyncSiteOutagesWorkflowType,
		workflows.SyncSiteOutagesInput{SiteID: "kingfisher", Since: "2022-01-01T00:00:00.000Z"})},
	// An unknown site fails the sync: the path that workflow.GetVersion changed (see
	// workflows/versioning_test.go).
	{"SyncSiteOutages-unknown-site.json", executeFailing(workflows.OutageSyncWorkflowID("atlantis"), workflows.SyncSiteOutagesWorkflowType,
		workflows.SyncSiteOutagesInput{SiteID: "atlantis"})},
	{"AggregateIncidents-manual.json", execute("incidents/manual-recorded", workflows.AggregateIncidentsWorkflowType,
		workflows.AggregateIncidentsInput{})},
	// Geolocate runs for an IP of submitted events: through the geolocation API; again
	// for the same IP, now cached; told of more events while it runs; and the API's two
	// verdicts, 400 (a malformed address) and 500 (an address it cannot place).
	{"Geolocate-api.json", submitEvent("8.8.8.8")},
	{"Geolocate-cache.json", execute(workflows.GeolocateWorkflowID(nil, "8.8.8.8"), workflows.GeolocateWorkflowType,
		workflows.GeolocateInput{IP: "8.8.8.8"})},
	{"Geolocate-more-events.json", signalTwice("9.9.9.9")},
	{"Geolocate-bad-request.json", execute(workflows.GeolocateWorkflowID(nil, "8.8.8"), workflows.GeolocateWorkflowType,
		workflows.GeolocateInput{IP: "8.8.8"})},
	{"Geolocate-cannot-place.json", execute(workflows.GeolocateWorkflowID(nil, "10.0.0.1"), workflows.GeolocateWorkflowType,
		workflows.GeolocateInput{IP: "10.0.0.1"})},
}, mergeScenarios...)

// signalTwice signal-with-starts an IP's lookup twice, as two dispatches of its events
// would, and waits for it to end.
func signalTwice(ip string) func(context.Context, Target) (string, string, error) {
	return func(ctx context.Context, t Target) (string, string, error) {
		var runID string
		for range 2 {
			run, err := t.Client.SignalWithStartWorkflow(ctx, workflows.GeolocateWorkflowID(t.WorkflowIDKey, ip), workflows.GeolocateSignal, nil,
				workflows.GeolocateStartOptions(t.WorkflowIDKey, ip), workflows.GeolocateWorkflowType, workflows.GeolocateInput{IP: ip})
			if err != nil {
				return "", "", fmt.Errorf("signal-with-start the lookup of %s: %w", ip, err)
			}
			runID = run.GetRunID()
		}
		if err := t.Client.GetWorkflow(ctx, workflows.GeolocateWorkflowID(t.WorkflowIDKey, ip), runID).Get(ctx, nil); err != nil {
			return "", "", err
		}
		return workflows.GeolocateWorkflowID(t.WorkflowIDKey, ip), runID, nil
	}
}

func execute(id, workflowType string, input any) func(context.Context, Target) (string, string, error) {
	return run(id, workflowType, input, false)
}

// executeFailing records a run that must fail, as a run against a bad input does.
func executeFailing(id, workflowType string, input any) func(context.Context, Target) (string, string, error) {
	return run(id, workflowType, input, true)
}

func run(id, workflowType string, input any, wantFailure bool) func(context.Context, Target) (string, string, error) {
	return func(ctx context.Context, t Target) (string, string, error) {
		wr, err := t.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: workflows.TaskQueue,
		}, workflowType, input)
		if err != nil {
			return "", "", fmt.Errorf("start %s: %w", workflowType, err)
		}
		err = wr.Get(ctx, nil)
		if wantFailure && err == nil {
			return "", "", fmt.Errorf("%s %s succeeded; this scenario records a failure", workflowType, id)
		}
		if !wantFailure && err != nil {
			return "", "", fmt.Errorf("%s %s: %w", workflowType, id, err)
		}
		return wr.GetID(), wr.GetRunID(), nil
	}
}

func submitEvent(ip string) func(context.Context, Target) (string, string, error) {
	return func(ctx context.Context, t Target) (string, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.BaseURL+"/event/submit/",
			strings.NewReader(`{"name":"recorded","status_code":200}`))
		if err != nil {
			return "", "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := t.HTTP.Do(req)
		if err != nil {
			return "", "", fmt.Errorf("submit event: %w", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return "", "", fmt.Errorf("submit event: %s: %s", resp.Status, body)
		}
		var sub struct {
			Data struct {
				TaskID string `json:"task_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &sub); err != nil || sub.Data.TaskID == "" {
			return "", "", fmt.Errorf("submit event: no task_id in %s", body)
		}
		// The dispatcher starts the IP's lookup shortly after acceptance: wait for it to end.
		id := workflows.GeolocateWorkflowID(t.WorkflowIDKey, ip)
		for {
			err := t.Client.GetWorkflow(ctx, id, "").Get(ctx, nil)
			if err == nil {
				return id, "", nil
			}
			if ctx.Err() != nil {
				return "", "", fmt.Errorf("event %s was not located: %w", sub.Data.TaskID, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// ErrExists is returned when a history file is already there and overwrite is off: an old
// history is what proves old runs still replay, so it is kept unless asked otherwise.
var ErrExists = errors.New("history file exists")

// RecordAll runs every scenario against t, saves its history in dir and replays it at once
// against this build's workflows, so that a file it writes is known to replay. It returns
// the paths written.
func RecordAll(ctx context.Context, t Target, dir string, overwrite bool) ([]string, error) {
	if t.HTTP == nil {
		t.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if !overwrite {
		for _, s := range Scenarios {
			path := filepath.Join(dir, s.File)
			if _, err := os.Stat(path); err == nil {
				return nil, fmt.Errorf("%s: %w (rename it to keep it as an old version's history, or pass --overwrite)", path, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	var written []string
	for _, s := range Scenarios {
		id, runID, err := s.Run(ctx, t)
		if err != nil {
			return written, fmt.Errorf("%s: %w", s.File, err)
		}
		path := filepath.Join(dir, s.File)
		if err := Record(ctx, t.Client, id, runID, path); err != nil {
			return written, err
		}
		written = append(written, path)
		if err := Replay(payloadcodec.Recording(), path); err != nil {
			return written, err
		}
	}
	return written, nil
}
