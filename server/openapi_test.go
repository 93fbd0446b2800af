package server

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loadOpenAPI loads and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	require.NoError(t, err, "openapi.json does not load")
	require.NoError(t, doc.Validate(context.Background()), "openapi.json is not a valid OpenAPI 3 document")
	return doc
}

// trailingSlashOptional says whether a documented path also answers with its trailing
// slash toggled: the path item's "x-trailing-slash-optional" (gin registers both forms).
func trailingSlashOptional(t *testing.T, path string, item *openapi3.PathItem) bool {
	t.Helper()
	v, ok := item.Extensions["x-trailing-slash-optional"]
	if !ok {
		return false
	}
	b, isBool := v.(bool)
	require.True(t, isBool, "%s: x-trailing-slash-optional must be true or false, not %v", path, v)
	return b
}

func toggleTrailingSlash(path string) string {
	if p, ok := strings.CutSuffix(path, "/"); ok {
		return p
	}
	return path + "/"
}

// documentedRoutes lists "METHOD /path" for every documented operation, in gin's
// spelling (:param), with the twin of each path whose trailing slash is optional.
func documentedRoutes(t *testing.T, doc *openapi3.T) []string {
	t.Helper()
	var routes []string
	for path, item := range doc.Paths.Map() {
		paths := []string{path}
		if trailingSlashOptional(t, path, item) {
			paths = append(paths, toggleTrailingSlash(path))
		}
		for method := range item.Operations() {
			for _, p := range paths {
				routes = append(routes, method+" "+ginPath(p))
			}
		}
	}
	slices.Sort(routes)
	return routes
}

// ginPath spells an OpenAPI path template as gin does: {param} is :param.
func ginPath(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			parts[i] = ":" + p[1:len(p)-1]
		}
	}
	return strings.Join(parts, "/")
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	assert.Equal(t, "3.0.3", doc.OpenAPI)
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			assert.NotEmpty(t, op.OperationID, "%s has no operationId", where)
			assert.False(t, ids[op.OperationID], "%s: operationId %s is used twice", where, op.OperationID)
			ids[op.OperationID] = true
			assert.NotEmpty(t, op.Summary, "%s has no summary", where)
			// Every route but /healthz is behind the API keys when they are set.
			public := op.Security != nil && len(*op.Security) == 0
			assert.Equal(t, path == "/healthz", public, "%s: only /healthz is exempt from the API keys", where)
			if !public {
				assert.NotNil(t, op.Responses.Status(http.StatusUnauthorized), "%s does not document its 401", where)
			}
		}
	}
}

// Every route gin serves is documented, and every documented operation is served: the
// document can neither miss a route nor promise one that does not exist.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	h := New(slog.New(slog.DiscardHandler), Config{}, Deps{})
	var registered []string
	for _, r := range h.Routes() {
		registered = append(registered, r.Method+" "+r.Path)
	}
	slices.Sort(registered)
	documented := documentedRoutes(t, doc)

	var undocumented, unserved []string
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			undocumented = append(undocumented, r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			unserved = append(unserved, r)
		}
	}
	assert.Empty(t, undocumented, "routes registered in routes.go but missing from openapi.json")
	assert.Empty(t, unserved, "operations in openapi.json that no route serves")
}

func TestOpenAPIServedAsJSON(t *testing.T) {
	hs := newHarness(t, Config{})
	rec := hs.get(t, "/openapi.json")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Equal(t, openAPIDocument, rec.Body.Bytes())
}
