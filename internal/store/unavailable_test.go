package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
)

func TestIsUnavailable(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"nil":                     {nil, false},
		"no rows":                 {sql.ErrNoRows, false},
		"not found":               {ErrNotFound, false},
		"syntax error":            {&pgconn.PgError{Code: "42601"}, false},
		"unique violation":        {&pgconn.PgError{Code: "23505"}, false},
		"admin shutdown":          {fmt.Errorf("accept: %w", &pgconn.PgError{Code: "57P01"}), true},
		"starting up":             {&pgconn.PgError{Code: "57P03"}, true},
		"connection failure":      {&pgconn.PgError{Code: "08006"}, true},
		"too many connections":    {&pgconn.PgError{Code: "53300"}, true},
		"connection refused":      {fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		"reset":                   {&net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		"cancelled by the client": {context.Canceled, false},
		"other":                   {errors.New("boom"), false},
	} {
		assert.Equal(t, tc.want, IsUnavailable(tc.err), name)
	}
}
