package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// C42 calls the calendar API ("C42").
type C42 struct {
	api upstream
}

// C42Options configure the calendar API client.
type C42Options struct {
	// BaseURL is the API's root, without /api/v2.
	BaseURL string
	Token   string
	HTTP    *http.Client
	Metrics *UpstreamMetrics
}

// NewC42 builds the calendar API's activities.
func NewC42(o C42Options) *C42 {
	return &C42{api: upstream{
		name: "c42", baseURL: o.BaseURL + "/api/v2", http: o.HTTP, metrics: o.Metrics,
		auth: func(r *http.Request) { r.Header.Set("Authorization", "Token "+o.Token) },
	}}
}

// Event is what relay keeps of a calendar event.
type Event struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// FetchEvent gets one event's id and title.
func (a *C42) FetchEvent(ctx context.Context, eventID string) (Event, error) {
	path := "/events/" + url.PathEscape(eventID) + "/"
	var body struct {
		Data []struct {
			ID    *string `json:"id"`
			Title *string `json:"title"`
		} `json:"data"`
	}
	if _, err := a.api.getJSON(ctx, path, &body); err != nil {
		return Event{}, err
	}
	if len(body.Data) != 1 {
		return Event{}, badResponse("c42", path, fmt.Errorf("data holds %d events, want 1", len(body.Data)))
	}
	// A missing or null title would be served (and cached) as an empty one.
	e := body.Data[0]
	if e.ID == nil || e.Title == nil {
		return Event{}, badResponse("c42", path, fmt.Errorf("the event has no id or no title"))
	}
	return Event{ID: *e.ID, Title: *e.Title}, nil
}

// MaxSubscriptions bounds the subscribers relay merges for one event (100 pages).
const MaxSubscriptions = 10_000

// PageRequest asks for one page of an event's subscriptions.
type PageRequest struct {
	EventID string `json:"event_id"`
	Offset  int    `json:"offset"`
	Limit   int    `json:"limit"`
}

// SubscriptionsPage is one page: its subscribers' first names in upstream order, and how
// many subscriptions the event has in all.
type SubscriptionsPage struct {
	Offset int      `json:"offset"`
	Names  []string `json:"names"`
	Count  int      `json:"count"`
}

// FetchSubscriptionsPage gets one page of an event's subscriptions.
func (a *C42) FetchSubscriptionsPage(ctx context.Context, req PageRequest) (SubscriptionsPage, error) {
	q := url.Values{}
	q.Set("event_ids", "["+req.EventID+"]")
	q.Set("offset", strconv.Itoa(req.Offset))
	q.Set("limit", strconv.Itoa(req.Limit))
	path := "/event-subscriptions/?" + q.Encode()
	var body struct {
		Data []struct {
			Subscriber *struct {
				FirstName *string `json:"first_name"`
			} `json:"subscriber"`
		} `json:"data"`
		MetaData *struct {
			Count *int `json:"count"`
		} `json:"meta_data"`
	}
	if _, err := a.api.getJSON(ctx, path, &body); err != nil {
		return SubscriptionsPage{}, err
	}
	if body.MetaData == nil || body.MetaData.Count == nil {
		return SubscriptionsPage{}, badResponse("c42", path, fmt.Errorf("no meta_data.count"))
	}
	// The count decides how many pages the workflow asks for at once: a count no event
	// has is refused here, not turned into a million activities.
	if c := *body.MetaData.Count; c < 0 || c > MaxSubscriptions {
		return SubscriptionsPage{}, badResponse("c42", path, fmt.Errorf("meta_data.count %d is outside 0..%d", c, MaxSubscriptions))
	}
	page := SubscriptionsPage{Offset: req.Offset, Names: make([]string, 0, len(body.Data)), Count: *body.MetaData.Count}
	for i, s := range body.Data {
		if s.Subscriber == nil || s.Subscriber.FirstName == nil {
			return SubscriptionsPage{}, badResponse("c42", path, fmt.Errorf("subscription %d has no subscriber.first_name", req.Offset+i))
		}
		page.Names = append(page.Names, *s.Subscriber.FirstName)
	}
	return page, nil
}
