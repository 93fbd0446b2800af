package temporalclient

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

// EnsureSearchAttributes makes namespace ns know the custom search attributes want (name to
// type): it creates the missing ones and waits until Temporal lists them. One of the same
// name with another type is an error: relay would fail to set it. Temporal Cloud and
// clusters that refuse the operator call need them created by hand; the error says how.
func EnsureSearchAttributes(ctx context.Context, c client.Client, ns string, want map[string]enumspb.IndexedValueType) error {
	missing, err := missingSearchAttributes(ctx, c, ns, want)
	if err != nil || len(missing) == 0 {
		return err
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: missing,
	}); err != nil {
		return fmt.Errorf("create search attributes in namespace %s: %w (create them by hand: %s)",
			ns, err, CreateSearchAttributesCommand(ns, missing))
	}
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		if missing, err = missingSearchAttributes(ctx, c, ns, want); err != nil || len(missing) == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("search attributes %v created in namespace %s but not listed yet: %w",
				slices.Sorted(maps.Keys(missing)), ns, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func missingSearchAttributes(ctx context.Context, c client.Client, ns string, want map[string]enumspb.IndexedValueType) (map[string]enumspb.IndexedValueType, error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return nil, fmt.Errorf("list search attributes of namespace %s: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range want {
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return nil, fmt.Errorf("search attribute %s of namespace %s is a %s; relay needs a %s (remove it, then restart a worker)",
				name, ns, got, typ)
		}
	}
	return missing, nil
}

// CreateSearchAttributesCommand is the temporal CLI command that creates attrs in ns.
func CreateSearchAttributesCommand(ns string, attrs map[string]enumspb.IndexedValueType) string {
	var b strings.Builder
	fmt.Fprintf(&b, "temporal operator search-attribute create --namespace %s", ns)
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		fmt.Fprintf(&b, " --name %s --type %s", name, attrs[name])
	}
	return b.String()
}
