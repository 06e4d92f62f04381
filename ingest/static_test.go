package ingest_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) map[string]*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	fset := token.NewFileSet()
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = f
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return files
}

func selectorCalls(f *ast.File) []string {
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok {
					out = append(out, id.Name+"."+sel.Sel.Name)
				}
			}
		}
		return true
	})
	return out
}

// MACs are compared with hmac.Equal, never bytes.Equal, == or a string
// comparison. The webhook path verifies through stdwebhooks.Verify, so
// both packages are checked.
func TestConstantTimeComparison(t *testing.T) {
	t.Parallel()
	usesHMACEqual := false
	for _, dir := range []string{".", "../stdwebhooks"} {
		for name, f := range parseDir(t, dir) {
			for _, call := range selectorCalls(f) {
				switch call {
				case "hmac.Equal":
					usesHMACEqual = true
				case "bytes.Equal", "bytes.Compare", "strings.EqualFold", "strings.Compare":
					// Tolerated only in files that touch no MAC.
					if fileMentionsMAC(t, name) {
						t.Errorf("%s calls %s in a file that handles MACs; use hmac.Equal", name, call)
					}
				}
			}
		}
	}
	if !usesHMACEqual {
		t.Error("no hmac.Equal call found: signature comparison must be constant time")
	}
	// No == on a computed MAC anywhere in the verifier.
	src, err := os.ReadFile("../stdwebhooks/stdwebhooks.go")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(src), "\n") {
		l := strings.ToLower(line)
		if (strings.Contains(l, "mac") || strings.Contains(l, "sig")) && (strings.Contains(line, " == ") || strings.Contains(line, " != ")) &&
			!strings.Contains(l, "nil") && !strings.Contains(l, `""`) && !strings.Contains(l, "len(") && !strings.Contains(l, `"v1"`) {
			t.Errorf("stdwebhooks/stdwebhooks.go:%d compares a MAC with ==: %s", i+1, strings.TrimSpace(line))
		}
	}
}

func fileMentionsMAC(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Contains(s, "crypto/hmac") || strings.Contains(s, "computeMAC")
}

// The part a grep can show: no handler in ingest answers
// 410 Gone or redirects. The routing half is tested in cmd/ingest.
func TestNoGoneOrRedirectInHandlers(t *testing.T) {
	t.Parallel()
	for name, f := range parseDir(t, ".") {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && id.Name == "http" {
					switch x.Sel.Name {
					case "StatusGone", "Redirect", "RedirectHandler", "StatusMovedPermanently", "StatusFound", "StatusTemporaryRedirect", "StatusPermanentRedirect", "StatusSeeOther":
						t.Errorf("%s uses http.%s", name, x.Sel.Name)
					}
				}
			case *ast.BasicLit:
				if x.Kind == token.INT && (x.Value == "410" || strings.HasPrefix(x.Value, "30") && len(x.Value) == 3) {
					t.Errorf("%s has a literal status %s", name, x.Value)
				}
			}
			return true
		})
	}
}
