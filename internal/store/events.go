package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event states.
const (
	EventPending     = "pending"
	EventLocated     = "located"
	EventUnlocatable = "unlocatable"
)

// Event is a submitted event and what relay learned of it.
type Event struct {
	TaskID     string
	Name       *string
	StatusCode *int64
	IP         string
	ReceivedAt time.Time
	State      string
	Location   []byte // JSON, nil until located
}

// NewEvent is an event as submitted.
type NewEvent struct {
	TaskID     string
	Name       *string
	StatusCode *int64
	IP         string
	// IdempotencyKey, when set, makes a retried submission from the same IP return the
	// event it first created.
	IdempotencyKey string
}

const eventColumns = `task_id, name, status_code, ip, received_at, state, location`

// AcceptEvent stores a new pending event. If the client (IP) already submitted with this
// idempotency key, it stores nothing and returns that event with existed true.
func (s *Store) AcceptEvent(ctx context.Context, e NewEvent) (Event, bool, error) {
	var key any
	if e.IdempotencyKey != "" {
		key = e.IP + " " + e.IdempotencyKey // a space cannot occur in an IP
	}
	now := time.Now()
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO events (task_id, name, status_code, ip, received_at, state, idempotency_key)
		 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING`,
		e.TaskID, e.Name, e.StatusCode, e.IP, now.UnixMilli(), EventPending, key)
	if err != nil {
		return Event{}, false, fmt.Errorf("accept event: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return Event{TaskID: e.TaskID, Name: e.Name, StatusCode: e.StatusCode, IP: e.IP,
			ReceivedAt: time.UnixMilli(now.UnixMilli()), State: EventPending}, false, nil
	}
	ev, err := s.scanEvent(s.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE idempotency_key = $1`, key))
	if err != nil {
		return Event{}, false, fmt.Errorf("event of idempotency key: %w", err)
	}
	return ev, true, nil
}

// Event returns one event, or ErrNotFound.
func (s *Store) Event(ctx context.Context, taskID string) (Event, error) {
	ev, err := s.scanEvent(s.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE task_id = $1`, taskID))
	if err != nil {
		return Event{}, fmt.Errorf("event %s: %w", taskID, err)
	}
	return ev, nil
}

// EventFilter selects and pages events, newest first.
type EventFilter struct {
	Country string // ISO code, any case
	City    string // any case
	State   string
	Limit   int
	Cursor  string // from a previous page
}

// ErrBadCursor is a cursor this store did not hand out.
var ErrBadCursor = errors.New("bad cursor")

// Events lists events newest first; next is the cursor of the following page, "" at the end.
func (s *Store) Events(ctx context.Context, f EventFilter) (events []Event, next string, err error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.Country != "" {
		where = append(where, "country = "+arg(strings.ToUpper(f.Country)))
	}
	if f.City != "" {
		where = append(where, "lower(city) = "+arg(strings.ToLower(f.City)))
	}
	if f.State != "" {
		where = append(where, "state = "+arg(f.State))
	}
	if f.Cursor != "" {
		ms, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		a, b := arg(ms), arg(id)
		where = append(where, "(received_at < "+a+" OR (received_at = "+a+" AND task_id < "+b+"))")
	}
	q := `SELECT ` + eventColumns + ` FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY received_at DESC, task_id DESC LIMIT " + arg(f.Limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := s.scanEvent(rows)
		if err != nil {
			return nil, "", err
		}
		events = append(events, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	if len(events) > f.Limit {
		events = events[:f.Limit]
		last := events[len(events)-1]
		next = encodeCursor(last.ReceivedAt.UnixMilli(), last.TaskID)
	}
	return events, next, nil
}

type rowScanner interface{ Scan(dest ...any) error }

func (s *Store) scanEvent(r rowScanner) (Event, error) {
	var ev Event
	var name, loc sql.NullString
	var code sql.NullInt64
	var ms int64
	err := r.Scan(&ev.TaskID, &name, &code, &ev.IP, &ms, &ev.State, &loc)
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, err
	}
	if name.Valid {
		ev.Name = &name.String
	}
	if code.Valid {
		ev.StatusCode = &code.Int64
	}
	if loc.Valid {
		ev.Location = []byte(loc.String)
	}
	ev.ReceivedAt = time.UnixMilli(ms)
	return ev, nil
}

func encodeCursor(ms int64, taskID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(ms, 10) + ":" + taskID))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	msText, id, ok := strings.Cut(string(b), ":")
	ms, err := strconv.ParseInt(msText, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", ErrBadCursor
	}
	return ms, id, nil
}
