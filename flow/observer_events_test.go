package flow_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Events lists every Event* constant of observer.go, so that the metrics,
// which show each from the start, cannot miss a new one.
func TestEventsListsEveryEvent(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "observer.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, name := range vs.Names {
				if strings.HasPrefix(name.Name, "Event") && i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
						v, _ := strconv.Unquote(lit.Value)
						consts = append(consts, v)
					}
				}
			}
		}
		return true
	})
	events := flow.Events()
	if len(consts) < 10 {
		t.Fatalf("found %d Event constants in observer.go: %v", len(consts), consts)
	}
	for _, c := range consts {
		if !slices.Contains(events, c) {
			t.Errorf("Events() lacks %q", c)
		}
	}
	if len(events) != len(consts) {
		t.Errorf("Events() has %d names, observer.go %d constants", len(events), len(consts))
	}
}
