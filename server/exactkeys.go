package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// duplicateKey finds an object member given more than once in body, at any depth, and
// returns its dotted path (location.city). Parsers disagree on which of the two counts
// (encoding/json keeps the last, others the first or refuse), so the API refuses both
// rather than guess. body is one valid JSON value.
func duplicateKey(body []byte) (string, bool) {
	type object struct {
		path    string
		keys    map[string]bool
		wantKey bool   // the next token is a member name (or the closing brace)
		last    string // the member whose value is being read
	}
	var stack []*object // nil entries are arrays
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1] != nil {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false // the end of body (or a decode error reported elsewhere)
		}
		top := (*object)(nil)
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if name, ok := tok.(string); ok && top != nil && top.wantKey {
			path := name
			if top.path != "" {
				path = top.path + "." + name
			}
			if top.keys[name] {
				return path, true
			}
			top.keys[name], top.wantKey, top.last = true, false, path
			continue
		}
		switch tok {
		case json.Delim('{'):
			path := ""
			if top != nil {
				path = top.last
			}
			stack = append(stack, &object{path: path, keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, nil)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// unknownKey finds an object member of body whose name is not exactly one of the JSON
// names of t's fields, at any depth t describes. encoding/json matches names ignoring
// case, so {"NAME": …} would be taken for "name" and {"name": …, "NAME": …} would keep
// the last; JSON names are case-sensitive, and the API rejects unknown fields. body has
// already decoded into t, so it is valid JSON of t's shape.
func unknownKey(body []byte, t reflect.Type) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeFor[json.RawMessage]() {
			return "", false
		}
		var members map[string]json.RawMessage
		if json.Unmarshal(body, &members) != nil {
			return "", false // null: nothing to check
		}
		fields := jsonFields(t)
		for name, raw := range members {
			ft, ok := fields[name]
			if !ok {
				return name, true
			}
			if key, found := unknownKey(raw, ft); found {
				return key, true
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 { // []byte and json.RawMessage hold any JSON
			return "", false
		}
		var items []json.RawMessage
		if json.Unmarshal(body, &items) != nil {
			return "", false
		}
		for _, raw := range items {
			if key, found := unknownKey(raw, t.Elem()); found {
				return key, true
			}
		}
	}
	return "", false
}

// jsonFields maps the JSON names of t's exported fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}
