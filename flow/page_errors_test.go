package flow_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// ErrorKeys lists every Error* constant of page_errors.go, and flow sets
// PageData.Error only to one of them (or ""), never to a bare string: so
// the pages, whose tests ask for a message for each of ErrorKeys in every
// language, cannot miss a key flow starts to use.
func TestErrorKeysListsEveryKeyFlowSets(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "page_errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // name -> key
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(name.Name, "Error") {
					consts[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
		return true
	})
	keys := flow.ErrorKeys()
	if len(consts) < 9 {
		t.Fatalf("found %d Error constants in page_errors.go: %v", len(consts), consts)
	}
	for name, key := range consts {
		if !slices.Contains(keys, key) {
			t.Errorf("ErrorKeys() lacks %s (%q)", name, key)
		}
	}
	if len(keys) != len(consts) {
		t.Errorf("ErrorKeys() has %d keys, page_errors.go %d constants", len(keys), len(consts))
	}

	// Every value given to PageData.Error in flow's code.
	files, _ := os.ReadDir(".")
	checked := 0
	for _, e := range files {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		check := func(v ast.Expr) {
			checked++
			if id, ok := v.(*ast.Ident); ok && consts[id.Name] != "" {
				return
			}
			if lit, ok := v.(*ast.BasicLit); ok && lit.Value == `""` {
				return
			}
			t.Errorf("%s: PageData.Error set to something other than an Error* constant of page_errors.go or \"\"", fset.Position(v.Pos()))
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "PageData" {
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Error" {
								check(kv.Value)
							}
						}
					}
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if sel, ok := lhs.(*ast.SelectorExpr); ok && sel.Sel.Name == "Error" && i < len(n.Rhs) {
						check(n.Rhs[i])
					}
				}
			}
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("found only %d places that set PageData.Error", checked)
	}
}
