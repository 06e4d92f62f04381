package deploy_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/service/servicetest"
	"gopkg.in/yaml.v3"
)

// TestAlertRulesPassPromtool checks deploy/prometheus/rules.yml with
// promtool and runs its unit tests (rules_test.yml).
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool := servicetest.NeedTool(t, "promtool", "apt-get install prometheus, or as root SHOPLEDGER_PODMAN_INSTALL=1 scripts/proxy-ensure")
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	for _, args := range [][]string{{"check", "rules", "rules.yml"}, {"test", "rules", "rules_test.yml"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// ruleMetric is a shopledger metric name in a rule's expression; the
// histogram series suffixes are cut off.
var ruleMetric = regexp.MustCompile(`\b((?:ingest|shopledger|etsy)_[a-z0-9_]+?)(?:_bucket|_count|_sum)?\b`)

// TestAlertRulesNameMetricsTheCodeDeclares fails when a rule names a
// metric that no Go file declares (a typo, or a metric renamed): such a
// rule would never fire.
func TestAlertRulesNameMetricsTheCodeDeclares(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var source bytes.Buffer
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			source.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	declared := func(name string) bool { return bytes.Contains(source.Bytes(), []byte(`"`+name+`"`)) }

	rules := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			rules++
			for _, m := range ruleMetric.FindAllStringSubmatch(r.Expr, -1) {
				if !declared(m[1]) && !declared(m[0]) {
					t.Errorf("alert %s names %s, which no Go file declares", r.Alert, m[0])
				}
			}
		}
	}
	if rules < 10 {
		t.Errorf("rules.yml holds %d rules; the parse found too few to be the file", rules)
	}
}
