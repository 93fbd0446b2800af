package server

import (
	"encoding/json"
	"reflect"
	"strings"
)

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
