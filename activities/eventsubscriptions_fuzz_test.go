package activities

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
)

// FuzzC42Answer serves an arbitrary body as both calendar answers (GET /events/{id}/ and a
// page of GET /event-subscriptions/): each activity returns exactly what the reference
// reads from the body, or refuses it with a decoding error.
func FuzzC42Answer(f *testing.F) {
	for _, body := range []string{
		`{"data": [{"id": "d6e66cb0ced8e46102bcfd93ceac51b0_14752373875438", "title": "Team sync", "start": "2016-10-07T14:00:00Z", "creator": {"id": 1}}], "meta_data": {}}`,
		`{"data": [{"id": "e", "title": ""}]}`,
		`{"data": [{"id": "e"}]}`,
		`{"data": [{}]}`,
		`{"data": [{"id": 5, "title": "t"}]}`,
		`{"data": [{"ID": "e", "Title": "t"}]}`,
		`{"data": [{"id": "a", "title": "t"}, {"id": "b", "title": "u"}]}`,
		`{"data": []}`,
		`{"data": {"id": "e", "title": "t"}}`,
		`{"data": [{"id": "e", "title": "t"}], "data": []}`,
		`{"data": [{"subscriber": {"first_name": "Bob", "last_name": "B", "user_id": 1}, "id": 1, "event_id": "e", "permission": "read"}, {"subscriber": {"first_name": ""}}, {"subscriber": {"first_name": "Zoë"}}], "meta_data": {"count": 25, "offset": 20, "sync_token": 7}}`,
		`{"data": [], "meta_data": {"count": 0}}`,
		`{"data": null, "meta_data": {"count": 3}}`,
		`{"meta_data": {"count": 0}}`,
		`{"data": [{"subscriber": {"first_name": null}}], "meta_data": {"count": 1}}`,
		`{"data": [{"subscriber": null}], "meta_data": {"count": 1}}`,
		`{"data": [{}], "meta_data": {"count": 1}}`,
		`{"data": [null], "meta_data": {"count": 1}}`,
		`{"data": [{"subscriber": {"first_name": 7}}], "meta_data": {"count": 1}}`,
		`{"data": [], "meta_data": {"count": null}}`,
		`{"data": [], "meta_data": {"count": "3"}}`,
		`{"data": [], "meta_data": {"count": 3.0}}`,
		`{"data": [], "meta_data": {"count": -1}}`,
		`{"data": [{"subscriber": {"first_name": "A"}}], "meta_data": {"count": 1000000000000}}`,
		`{"data": [], "meta_data": {"count": 9223372036854775808}}`,
		`{"data": [], "meta_data": null}`,
		`{"error": {"message": "Not found", "code": "not_found", "status_code": 404}}`,
		`{"data": [{"id": "e", "title": "\ud83d\ude00 \u00e9"}]}`,
		"\ufeff" + `{"data": [{"id": "e", "title": "t"}]}`,
		`{"data": [{"id": "e", "title": "t"}]`,
		`null`, `[]`, `""`, ``, `<html></html>`,
	} {
		f.Add([]byte(body))
	}
	answer, client := newCannedAnswer()
	c42 := NewC42(C42Options{BaseURL: "http://c42.test", Token: "token", HTTP: client})
	ctx := context.Background()
	page := PageRequest{EventID: "e", Offset: 20, Limit: 10}
	f.Fuzz(func(t *testing.T, body []byte) {
		answer.body = body
		sure := !hasFoldedDuplicates(body)

		event, err := c42.FetchEvent(ctx, "e")
		want, ok := refC42Event(body)
		switch {
		case err != nil:
			requireDecodeError(t, err, body)
			if sure && ok {
				t.Fatalf("event %q: refused (%v), want %+v", body, err, want)
			}
		case sure && !ok:
			t.Fatalf("event %q: accepted as %+v, want a decoding error", body, event)
		case sure && event != want:
			t.Fatalf("event %q: %+v, want %+v", body, event, want)
		}

		got, err := c42.FetchSubscriptionsPage(ctx, page)
		wantPage, ok := refC42Page(body, page)
		switch {
		case err != nil:
			requireDecodeError(t, err, body)
			if sure && ok {
				t.Fatalf("page %q: refused (%v), want %+v", body, err, wantPage)
			}
		case sure && !ok:
			t.Fatalf("page %q: accepted as %+v, want a decoding error", body, got)
		case sure && !reflect.DeepEqual(got, wantPage):
			t.Fatalf("page %q: %+v, want %+v", body, got, wantPage)
		}
	})
}

// refC42Event reads GET /events/{id}/ as spec/upstreams.md describes it: an object whose
// "data" is an array of exactly one event, an object with "id" and "title" strings.
func refC42Event(body []byte) (Event, bool) {
	v, ok := decodeGeneric(body)
	obj, isObj := v.(map[string]any)
	if !ok || !isObj {
		return Event{}, false
	}
	data, _ := jsonMember(obj, "data")
	list, isList := data.([]any)
	if !isList || len(list) != 1 {
		return Event{}, false
	}
	event, isObj := list[0].(map[string]any)
	if !isObj {
		return Event{}, false
	}
	id, _ := jsonMember(event, "id")
	title, _ := jsonMember(event, "title")
	idText, idOK := id.(string)
	titleText, titleOK := title.(string)
	return Event{ID: idText, Title: titleText}, idOK && titleOK
}

// refC42Page reads a page of GET /event-subscriptions/: an object whose "data" is an array
// (absent or null: no subscriptions) of subscriptions, each with a "subscriber" object
// with a "first_name" string, and whose "meta_data" has an integer "count".
func refC42Page(body []byte, req PageRequest) (SubscriptionsPage, bool) {
	v, ok := decodeGeneric(body)
	obj, isObj := v.(map[string]any)
	if !ok || !isObj {
		return SubscriptionsPage{}, false
	}
	page := SubscriptionsPage{Offset: req.Offset, Names: []string{}}
	meta, _ := jsonMember(obj, "meta_data")
	metaObj, isObj := meta.(map[string]any)
	if !isObj {
		return SubscriptionsPage{}, false
	}
	count, _ := jsonMember(metaObj, "count")
	n, isNum := count.(json.Number)
	if !isNum {
		return SubscriptionsPage{}, false
	}
	c, err := strconv.ParseInt(string(n), 10, 0)
	if err != nil || c < 0 || c > MaxSubscriptions {
		return SubscriptionsPage{}, false
	}
	page.Count = int(c)
	data, _ := jsonMember(obj, "data")
	if data == nil {
		return page, true
	}
	list, isList := data.([]any)
	if !isList {
		return SubscriptionsPage{}, false
	}
	for _, s := range list {
		sub, isObj := s.(map[string]any)
		if !isObj {
			return SubscriptionsPage{}, false
		}
		subscriber, _ := jsonMember(sub, "subscriber")
		who, isObj := subscriber.(map[string]any)
		if !isObj {
			return SubscriptionsPage{}, false
		}
		name, _ := jsonMember(who, "first_name")
		text, isText := name.(string)
		if !isText {
			return SubscriptionsPage{}, false
		}
		page.Names = append(page.Names, text)
	}
	return page, true
}
