package workflows

import (
	"context"
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

func (s *GeolocateSuite) result() GeolocateEventResult {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var r GeolocateEventResult
	s.Require().NoError(s.env.GetWorkflowResult(&r))
	return r
}

func (s *GeolocateSuite) miss(ip string) {
	s.env.OnActivity(s.geo.LookUp, mock.Anything, ip).Return(activities.Lookup{Claimed: true}, nil).Once()
}

func (s *GeolocateSuite) TestLocatesThroughTheAPIAndCaches() {
	s.miss("8.8.8.8")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").Return(willenhall, nil).Once()
	s.env.OnActivity(s.geo.RecordLocation, mock.Anything, activities.RecordInput{TaskID: "t1", IP: "8.8.8.8", Location: &willenhall, Cache: true}).
		Return(nil).Once()
	s.env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t1", IP: "8.8.8.8"})
	s.Equal(GeolocateEventResult{TaskID: "t1", State: "located", Country: "GB", From: "api"}, s.result())
}

func (s *GeolocateSuite) TestARepeatedIPCostsNoCall() {
	s.env.OnActivity(s.geo.LookUp, mock.Anything, "8.8.8.8").Return(activities.Lookup{Found: true, Location: &willenhall}, nil).Once()
	s.env.OnActivity(s.geo.RecordLocation, mock.Anything, activities.RecordInput{TaskID: "t2", IP: "8.8.8.8", Location: &willenhall}).Return(nil).Once()
	s.env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t2", IP: "8.8.8.8"})
	s.Equal("cache", s.result().From)
}

// While another event looks the same IP up, this one waits for the answer in the cache.
func (s *GeolocateSuite) TestWaitsForAnotherLookupOfTheSameIP() {
	lookups := 0
	s.env.OnActivity(s.geo.LookUp, mock.Anything, "8.8.8.8").Return(func(context.Context, string) (activities.Lookup, error) {
		lookups++
		if lookups < 3 {
			return activities.Lookup{}, nil // claimed by someone else
		}
		return activities.Lookup{Found: true, Location: &willenhall}, nil
	}).Times(3)
	s.env.OnActivity(s.geo.RecordLocation, mock.Anything, activities.RecordInput{TaskID: "t7", IP: "8.8.8.8", Location: &willenhall}).Return(nil).Once()
	s.env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t7", IP: "8.8.8.8"})
	s.Equal("cache", s.result().From)
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
	s.env.OnActivity(s.geo.RecordLocation, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t3", IP: "8.8.8.8"})
	s.Equal("located", s.result().State)
	s.Equal(2, calls)
	// The retry came after period_remaining (0.7 s), not after the policy's 1 s.
	s.GreaterOrEqual(second.Sub(start), 700*time.Millisecond)
	s.Less(second.Sub(start), time.Second)
}

func (s *GeolocateSuite) TestAHiccupIsRetried() {
	s.miss("8.8.8.8")
	calls := 0
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").Return(func(context.Context, string) (activities.Location, error) {
		calls++
		if calls == 1 {
			return activities.Location{}, temporal.NewApplicationError("geoip: no answer: timeout", activities.ErrUpstreamUnreachable)
		}
		return willenhall, nil
	}).Twice()
	s.env.OnActivity(s.geo.RecordLocation, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t4", IP: "8.8.8.8"})
	s.Equal("located", s.result().State)
}

func (s *GeolocateSuite) TestA400EndsUnlocatableAtOnce() {
	s.miss("8.8.4.4")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.4.4").
		Return(activities.Location{}, temporal.NewApplicationError("geoip: 400", activities.ErrUpstreamBadRequest)).Once()
	s.env.OnActivity(s.geo.RecordLocation, mock.Anything, activities.RecordInput{TaskID: "t5", IP: "8.8.4.4", Cache: true}).Return(nil).Once()
	s.env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t5", IP: "8.8.4.4"})
	s.Equal("unlocatable", s.result().State)
}

func (s *GeolocateSuite) TestEndless500sEndUnlocatableNotForever() {
	s.miss("8.8.8.8")
	s.env.OnActivity(s.geo.Locate, mock.Anything, "8.8.8.8").
		Return(activities.Location{}, temporal.NewApplicationError("geoip: 500", activities.ErrUpstreamUnavailable)).
		Times(int(geolocateRetryPolicy.MaximumAttempts))
	s.env.OnActivity(s.geo.RecordLocation, mock.Anything, activities.RecordInput{TaskID: "t6", IP: "8.8.8.8"}).Return(nil).Once()
	s.env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t6", IP: "8.8.8.8"})
	s.Equal("unlocatable", s.result().State)
}

func (s *GeolocateSuite) TestAPrivateIPCostsNoCall() {
	for _, ip := range []string{"10.1.2.3", "127.0.0.1", "192.168.0.1", "100.64.0.1", "::1", "not-an-ip"} {
		env := s.NewTestWorkflowEnvironment()
		env.RegisterActivity(s.geo)
		env.OnActivity(s.geo.RecordLocation, mock.Anything, activities.RecordInput{TaskID: "t", IP: ip}).Return(nil).Once()
		env.ExecuteWorkflow(GeolocateEvent, GeolocateEventInput{TaskID: "t", IP: ip})
		s.Require().NoError(env.GetWorkflowError(), ip)
		var r GeolocateEventResult
		s.Require().NoError(env.GetWorkflowResult(&r))
		s.Equal(GeolocateEventResult{TaskID: "t", State: "unlocatable", From: "none"}, r, ip)
		env.AssertExpectations(s.T())
	}
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
