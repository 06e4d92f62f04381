package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The settings of each binary, read off its source rather than kept in a
// list here, so that a variable added, renamed or dropped in cmd/ shows up
// in the deployment tests at once.

var (
	// varName is a whole SHOPLEDGER_* variable name.
	varName = regexp.MustCompile(`^SHOPLEDGER_[A-Z0-9_]*[A-Z0-9]$`)
	// varPrefix is a family of variables a binary builds names from
	// (SHOPLEDGER_ETSYSIM_<FLAG>).
	varPrefix = regexp.MustCompile(`^SHOPLEDGER_[A-Z0-9_]+_$`)
	// loopback marks a default that only works on the machine itself.
	loopback = regexp.MustCompile(`127\.0\.0\.1|localhost|\[::1\]`)
)

// binaryEnv is what one binary reads from its environment.
type binaryEnv struct {
	// reads maps each variable to where the code names it.
	reads map[string][]string
	// prefixes are families of variables read by built-up names.
	prefixes []string
	// required maps a variable the deployment must set to why: the code
	// reads it without a default, or its default names the loopback
	// address, which inside a container or a sandboxed unit is the
	// process's own host and rarely what a deployment means.
	required map[string]string
}

func (b *binaryEnv) readsVar(name string) bool {
	if _, ok := b.reads[name]; ok {
		return true
	}
	for _, p := range b.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// rawLookups are calls that read a variable without a default of their
// own; whether the caller supplies one is not visible at the call.
var rawLookups = map[string]bool{"getenv": true, "Getenv": true, "LookupEnv": true}

// scanBinaries parses every cmd/<name> package (tests left out) and the
// constants of the service package they share.
func scanBinaries(t *testing.T) map[string]*binaryEnv {
	t.Helper()
	root := repoRoot(t)
	fset := token.NewFileSet()
	parseDir := func(dir string) []*ast.File {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var files []*ast.File
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		return files
	}
	serviceFiles := parseDir(filepath.Join(root, "service"))
	serviceConsts := stringConsts(serviceFiles)
	serviceReads := readsByFunc(serviceFiles)

	cmds, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*binaryEnv{}
	for _, c := range cmds {
		if !c.IsDir() {
			continue
		}
		files := parseDir(filepath.Join(root, "cmd", c.Name()))
		local := stringConsts(files)
		// value resolves an expression to the string it stands for, when it
		// is a literal or a constant.
		value := func(e ast.Expr) (string, bool) {
			switch e := e.(type) {
			case *ast.BasicLit:
				if e.Kind == token.STRING {
					s, err := strconv.Unquote(e.Value)
					return s, err == nil
				}
			case *ast.Ident:
				s, ok := local[e.Name]
				return s, ok
			case *ast.SelectorExpr:
				if pkg, ok := e.X.(*ast.Ident); ok && pkg.Name == "service" {
					s, ok := serviceConsts[e.Sel.Name]
					return s, ok
				}
			}
			return "", false
		}
		// namesLoopback tells whether a default expression, or any
		// literal or constant it is built from, names the loopback address.
		namesLoopback := func(e ast.Expr) bool {
			found := false
			ast.Inspect(e, func(n ast.Node) bool {
				if x, ok := n.(ast.Expr); ok {
					if s, ok := value(x); ok && loopback.MatchString(s) {
						found = true
					}
				}
				return !found
			})
			return found
		}

		b := &binaryEnv{reads: map[string][]string{}, required: map[string]string{}}
		add := func(name string, pos token.Pos) {
			b.reads[name] = append(b.reads[name], fset.Position(pos).String())
		}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					// A service function that reads settings itself
					// (service.TelemetryConfig) reads them for its caller.
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
						if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "service" {
							for _, name := range serviceReads[sel.Sel.Name] {
								add(name, n.Pos())
							}
						}
					}
					if len(n.Args) == 0 {
						return true
					}
					name, ok := value(n.Args[0])
					if !ok || !varName.MatchString(name) {
						return true
					}
					add(name, n.Args[0].Pos())
					fn := ""
					switch f := n.Fun.(type) {
					case *ast.Ident:
						fn = f.Name
					case *ast.SelectorExpr:
						fn = f.Sel.Name
					}
					switch {
					case len(n.Args) == 1 && !rawLookups[fn]:
						b.required[name] = fn + " reads it without a default at " + fset.Position(n.Pos()).String()
					case len(n.Args) >= 2 && namesLoopback(n.Args[1]):
						b.required[name] = "its default names the loopback address at " + fset.Position(n.Args[1].Pos()).String()
					}
					for _, a := range n.Args[1:] {
						ast.Inspect(a, func(m ast.Node) bool { return visitLiteral(m, value, add, b) })
					}
					return false
				default:
					return visitLiteral(n, value, add, b)
				}
			})
		}
		out[c.Name()] = b
	}
	return out
}

// readsByFunc maps each function declared in files to the variables it
// reads: calls whose first argument is a variable name, each with a
// default (env.String("SHOPLEDGER_SENTRY_DSN", "")).
func readsByFunc(files []*ast.File) map[string][]string {
	m := map[string][]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) < 2 {
					return true
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && varName.MatchString(s) {
						m[fn.Name.Name] = append(m[fn.Name.Name], s)
					}
				}
				return true
			})
		}
	}
	return m
}

// visitLiteral records a string literal or constant that is exactly a
// variable name (a map key, a name passed on) or a prefix family.
func visitLiteral(n ast.Node, value func(ast.Expr) (string, bool), add func(string, token.Pos), b *binaryEnv) bool {
	e, ok := n.(ast.Expr)
	if !ok {
		return true
	}
	s, ok := value(e)
	if !ok {
		return true
	}
	switch {
	case varName.MatchString(s):
		add(s, e.Pos())
	case varPrefix.MatchString(s):
		b.prefixes = append(b.prefixes, s)
	}
	return true
}

// stringConsts maps the names of string constants declared in files to
// their values.
func stringConsts(files []*ast.File) map[string]string {
	m := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, err := strconv.Unquote(lit.Value); err == nil {
							m[name.Name] = s
						}
					}
				}
			}
		}
	}
	return m
}

// anyBinaryReads tells whether some binary reads name.
func anyBinaryReads(bins map[string]*binaryEnv, name string) bool {
	for _, b := range bins {
		if b.readsVar(name) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestScanFindsWhatTheBinariesRead keeps the scanner honest: a few reads
// every binary is known to make must be found, and the loopback defaults
// must come out as required.
func TestScanFindsWhatTheBinariesRead(t *testing.T) {
	bins := scanBinaries(t)
	for _, bin := range []string{"ingest", "projector", "query", "ledger"} {
		b, ok := bins[bin]
		if !ok {
			t.Fatalf("no cmd/%s found", bin)
		}
		for _, v := range []string{"SHOPLEDGER_DATABASE_URL", "SHOPLEDGER_LOG_LEVEL", "SHOPLEDGER_ALLOW_NONDURABLE_DATABASE"} {
			if !b.readsVar(v) {
				t.Errorf("scan says %s does not read %s", bin, v)
			}
		}
		if _, ok := b.required["SHOPLEDGER_DATABASE_URL"]; !ok {
			t.Errorf("scan says %s does not require SHOPLEDGER_DATABASE_URL (its default is a loopback URL)", bin)
		}
		if _, ok := b.required["SHOPLEDGER_LOG_LEVEL"]; ok {
			t.Errorf("scan says %s requires SHOPLEDGER_LOG_LEVEL, which has a default of its own", bin)
		}
	}
	if !bins["etsysim"].readsVar("SHOPLEDGER_ETSYSIM_ORDER_RATE") {
		t.Error("scan misses etsysim's SHOPLEDGER_ETSYSIM_<FLAG> family")
	}
	if !bins["healthcheck"].readsVar("SHOPLEDGER_HEALTHCHECK_URL") {
		t.Error("scan misses healthcheck's SHOPLEDGER_HEALTHCHECK_URL")
	}
	if testing.Verbose() {
		for _, bin := range sortedKeys(bins) {
			t.Logf("%s reads %d variables, requires %v", bin, len(bins[bin].reads), sortedKeys(bins[bin].required))
		}
	}
}
