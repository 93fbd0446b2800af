package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"relay/activities"
)

type GeolocateSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	geo *activities.Geo
}

func TestGeolocate(t *testing.T) { suite.Run(t, new(GeolocateSuite)) }

func (s *GeolocateSuite) SetupTest() {
	logToTest(&s.WorkflowTestSuite, s.T())
	s.env = s.NewTestWorkflowEnvironment()
	s.geo = &activities.Geo{}
	s.env.RegisterActivity(s.geo)
}

func (s *GeolocateSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

func city(name string) *string { return &name }

var willenhall = activities.Location{City: city("Willenhall"), Latitude: 52.58, Longitude: -2.05, TimeZone: "Europe/London", AccuracyRadius: 50}

func init() {
	willenhall.Country.IsoCode, willenhall.Country.Name = "GB", "United Kingdom"
}

func (s *GeolocateSuite) result() GeolocateResult {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var r GeolocateResult
	s.Require().NoError(s.env.GetWorkflowResult(&r))
	return r
}

func (s *GeolocateSuite) miss(ip string) {
	s.env.OnActivity(s.geo.CachedLocation, mock.Anything, ip).Return(activities.Cached{}, nil).Once()
}

// settles expects the settle of in, answering n events settled.
func (s *GeolocateSuite) settles(in activities.SettleInput, n int) {
	s.env.OnActivity(s.geo.Settle, mock.Anything, in).Return(n, nil).Once()
}

func (s *GeolocateSuite) run(ip string) {
	s.env.ExecuteWorkflow(Geolocate, GeolocateInput{IP: ip})
}

func (s *GeolocateSuite) TestLocatesThroughTheAPIAndCaches() {
	s.miss("8.8.8.8")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").Return(willenhall, nil).Once()
	s.settles(activities.SettleInput{IP: "8.8.8.8", Location: &willenhall, Cache: true}, 3)
	s.run("8.8.8.8")
	s.Equal(GeolocateResult{IP: "8.8.8.8", State: "located", Country: "GB", From: "api", Settled: 3}, s.result())
}

// A lookup that finds the IP cached (another run settled it since the dispatcher looked)
// costs no call, and does not cache it again.
func (s *GeolocateSuite) TestACachedIPCostsNoCall() {
	s.env.OnActivity(s.geo.CachedLocation, mock.Anything, "8.8.8.8").Return(activities.Cached{Found: true, Location: &willenhall}, nil).Once()
	s.settles(activities.SettleInput{IP: "8.8.8.8", Location: &willenhall}, 1)
	s.run("8.8.8.8")
	s.Equal(GeolocateResult{IP: "8.8.8.8", State: "located", Country: "GB", From: "cache", Settled: 1}, s.result())
}

func (s *GeolocateSuite) TestACachedVerdictIsReused() {
	s.env.OnActivity(s.geo.CachedLocation, mock.Anything, "8.8.8.8").Return(activities.Cached{Found: true}, nil).Once()
	s.settles(activities.SettleInput{IP: "8.8.8.8"}, 2)
	s.run("8.8.8.8")
	s.Equal(GeolocateResult{IP: "8.8.8.8", State: "unlocatable", From: "cache", Settled: 2}, s.result())
}

func (s *GeolocateSuite) TestWaitsWhatPeriodRemainingSays() {
	s.miss("8.8.8.8")
	calls := 0
	var second time.Time
	start := s.env.Now()
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").Return(func(context.Context, string) (activities.Location, error) {
		calls++
		if calls == 1 {
			return activities.Location{}, temporal.NewApplicationErrorWithOptions("geoip GET /info: 429", activities.ErrUpstreamRateLimited,
				temporal.ApplicationErrorOptions{NextRetryDelay: 700 * time.Millisecond})
		}
		second = s.env.Now()
		return willenhall, nil
	}).Twice()
	s.settles(activities.SettleInput{IP: "8.8.8.8", Location: &willenhall, Cache: true}, 1)
	s.run("8.8.8.8")
	s.Equal("located", s.result().State)
	s.Equal(2, calls)
	// The retry came after period_remaining (0.7 s), not after the policy's 1 s.
	s.GreaterOrEqual(second.Sub(start), 700*time.Millisecond)
	s.Less(second.Sub(start), time.Second)
}

// The API's verdicts end the lookup at once, after one call, and are cached: 400 (a
// malformed request) and 500 (it cannot place the IP).
func (s *GeolocateSuite) TestTheAPIsVerdictsAreFinalAtOnce() {
	for _, verdict := range activities.GeoVerdicts {
		s.Run(verdict, func() {
			s.SetupTest()
			s.miss("8.8.4.4")
			s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.4.4").
				Return(activities.Location{}, temporal.NewNonRetryableApplicationError("geoip: no", verdict, nil)).Once()
			s.settles(activities.SettleInput{IP: "8.8.4.4", Cache: true}, 1)
			// Found in the Web UI by its outcome and count (never by its IP).
			s.env.OnUpsertTypedSearchAttributes(temporal.NewSearchAttributes(JobAttribute.ValueSet(JobGeolocation),
				OutcomeAttribute.ValueSet(OutcomeUnlocatable), CountAttribute.ValueSet(1))).Return(nil).Once()
			s.run("8.8.4.4")
			s.Equal(GeolocateResult{IP: "8.8.4.4", State: "unlocatable", From: "api", Verdict: verdict, Settled: 1}, s.result())
			s.env.AssertExpectations(s.T())
		})
	}
}

// Everything that is not the API's verdict is retried past any attempt cap, and the IP's
// events stay pending meanwhile: a stall, a 502, a revoked key, an answer of a new shape,
// the store behind the rate limit. Once the cause passes, the IP is located.
func (s *GeolocateSuite) TestRelaysOwnFailuresAreRetriedUntilTheyPass() {
	failures := []error{
		temporal.NewApplicationError("geoip: no answer: timeout", activities.ErrUpstreamUnreachable),
		temporal.NewApplicationError("geoip: 502", activities.ErrUpstreamUnavailable),
		temporal.NewApplicationError("geoip: 401", activities.ErrUpstreamUnauthorized),
		temporal.NewApplicationError("geoip: answer of a new shape", activities.ErrUpstreamBadResponse),
		errors.New("reserve rate slot: connection refused"),
	}
	// 9 failures, past the 5 attempts the old design gave up after (the test environment
	// caps an unlimited policy at 10 attempts).
	const failed = 9
	calls := 0
	s.miss("8.8.8.8")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").Return(func(context.Context, string) (activities.Location, error) {
		calls++
		if calls <= failed {
			return activities.Location{}, failures[(calls-1)%len(failures)]
		}
		return willenhall, nil
	}).Times(failed + 1)
	s.settles(activities.SettleInput{IP: "8.8.8.8", Location: &willenhall, Cache: true}, 1)
	start := s.env.Now()
	s.run("8.8.8.8")
	s.Equal("located", s.result().State)
	// Backoff is bounded: 9 failures take 1+2+4+...+32 s and then a minute each, about
	// 4 minutes in all.
	s.Less(s.env.Now().Sub(start), 5*time.Minute)
}

// A store outage is waited out: the settle is retried however long it takes.
func (s *GeolocateSuite) TestTheSettleOutlastsAStoreOutage() {
	s.miss("8.8.8.8")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").Return(willenhall, nil).Once()
	tries := 0
	s.env.OnActivity(s.geo.Settle, mock.Anything, mock.Anything).Return(func(context.Context, activities.SettleInput) (int, error) {
		tries++
		if tries <= 9 {
			return 0, errors.New("settle events of 8.8.8.8: connection refused")
		}
		return 4, nil
	}).Times(10)
	s.run("8.8.8.8")
	s.Equal(4, s.result().Settled)
}

// Events dispatched while the lookup runs are settled by its one settle; events signalled
// during the settle itself get another, without caching again and without another call.
func (s *GeolocateSuite) TestMoreEventsWhileItRunsAreSettledToo() {
	s.miss("8.8.8.8")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").After(3*time.Second).Return(willenhall, nil).Once()
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(GeolocateSignal, nil) }, time.Second)
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(GeolocateSignal, nil) }, 2*time.Second)
	s.env.OnActivity(s.geo.Settle, mock.Anything, activities.SettleInput{IP: "8.8.8.8", Location: &willenhall, Cache: true}).
		Return(func(context.Context, activities.SettleInput) (int, error) {
			s.env.SignalWorkflow(GeolocateSignal, nil) // one more event, while the settle runs
			return 2, nil
		}).Once()
	s.settles(activities.SettleInput{IP: "8.8.8.8", Location: &willenhall}, 1)
	s.run("8.8.8.8")
	s.Equal(GeolocateResult{IP: "8.8.8.8", State: "located", Country: "GB", From: "api", Settled: 3}, s.result())
}

// A lookup cancelled mid-call settles nothing: its events stay pending for the dispatcher
// to drive again, rather than being written as unlocatable.
func (s *GeolocateSuite) TestACancelledLookupSettlesNothing() {
	s.miss("8.8.8.8")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").After(time.Minute).Return(willenhall, nil).Maybe()
	s.env.RegisterDelayedCallback(s.env.CancelWorkflow, time.Second)
	s.run("8.8.8.8")
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Error(s.env.GetWorkflowError())
}

func TestPlaceable(t *testing.T) {
	for ip, want := range map[string]bool{
		"8.8.8.8": true, "17.99.238.86": true, "1.2.3.4": true,
		"10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false, "127.0.0.1": false, "169.254.1.1": false,
		"224.0.0.1": false, "0.1.2.3": false, "100.64.1.1": false, "192.0.2.7": false, "198.51.100.1": false,
		"203.0.113.9": false, "240.0.0.1": false, "255.255.255.255": false, "::1": false, "2001:db8::1": false, "": false,
	} {
		assert.Equal(t, want, Placeable(ip), ip)
	}
}
