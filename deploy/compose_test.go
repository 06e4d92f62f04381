package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// composeFile is the part of a compose file these tests read. Anchors and
// merge keys (<<) are resolved by the YAML decoder.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Healthcheck struct {
		Disable bool `yaml:"disable"`
	} `yaml:"healthcheck"`
}

// mentionedVar finds SHOPLEDGER_* names anywhere in the text, ${...}
// interpolations included.
var mentionedVar = regexp.MustCompile(`SHOPLEDGER_[A-Z0-9_]*[A-Z0-9]`)

func readCompose(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// composeProblems holds a compose file to the binaries' settings: every
// SHOPLEDGER_* name in it is read by some binary; each service running a
// shopledger binary sets only variables that binary (or the healthcheck
// its image runs) reads, and sets every one they require.
func composeProblems(raw []byte, bins map[string]*binaryEnv) ([]string, error) {
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("parse compose file: %w", err)
	}
	var problems []string
	seen := map[string]bool{}
	for _, name := range mentionedVar.FindAllString(string(raw), -1) {
		if !seen[name] && !anyBinaryReads(bins, name) {
			problems = append(problems, fmt.Sprintf("%s: no binary reads it", name))
		}
		seen[name] = true
	}
	for _, svc := range sortedKeys(c.Services) {
		s := c.Services[svc]
		if len(s.Command) == 0 {
			continue
		}
		bin, ok := bins[s.Command[0]]
		if !ok {
			continue // not a shopledger binary (postgres, the proxy)
		}
		health := bins["healthcheck"]
		for _, name := range sortedKeys(s.Environment) {
			if !strings.HasPrefix(name, "SHOPLEDGER_") {
				continue
			}
			if !bin.readsVar(name) && !(health != nil && !s.Healthcheck.Disable && health.readsVar(name)) {
				problems = append(problems, fmt.Sprintf("service %s sets %s, which %s does not read", svc, name, s.Command[0]))
			}
		}
		required := map[string]string{}
		for name, why := range bin.required {
			required[name] = s.Command[0] + ": " + why
		}
		if health != nil && !s.Healthcheck.Disable {
			for name, why := range health.required {
				required[name] = "healthcheck: " + why
			}
		}
		for _, name := range sortedKeys(required) {
			if _, ok := s.Environment[name]; !ok {
				problems = append(problems, fmt.Sprintf("service %s does not set %s (%s)", svc, name, required[name]))
			}
		}
	}
	return problems, nil
}

func TestComposeSetsWhatTheBinariesReadAndNothingElse(t *testing.T) {
	problems, err := composeProblems(readCompose(t), scanBinaries(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error("deploy/compose.yaml: " + p)
	}
}

// TestComposeCheckCatchesDrift changes the real file the two ways it can
// drift from the code and expects the check to say so.
func TestComposeCheckCatchesDrift(t *testing.T) {
	raw := string(readCompose(t))
	bins := scanBinaries(t)
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []string
	}{
		{
			name: "a variable no binary reads",
			edit: func(s string) string {
				return strings.Replace(s, "      SHOPLEDGER_QUERY_ADDR: 0.0.0.0:8080\n",
					"      SHOPLEDGER_QUERY_ADDR: 0.0.0.0:8080\n      SHOPLEDGER_QUERY_LISTEN: 0.0.0.0:8080\n", 1)
			},
			want: []string{
				"SHOPLEDGER_QUERY_LISTEN: no binary reads it",
				"service query sets SHOPLEDGER_QUERY_LISTEN, which query does not read",
			},
		},
		{
			name: "a variable of another binary",
			edit: func(s string) string {
				return strings.Replace(s, "      SHOPLEDGER_QUERY_ADDR: 0.0.0.0:8080\n",
					"      SHOPLEDGER_QUERY_ADDR: 0.0.0.0:8080\n      SHOPLEDGER_PROJECTOR_ADDR: 0.0.0.0:8082\n", 1)
			},
			want: []string{"service query sets SHOPLEDGER_PROJECTOR_ADDR, which query does not read"},
		},
		{
			name: "a required variable left out",
			edit: func(s string) string {
				return strings.Replace(s, "      SHOPLEDGER_QUERY_ADDR: 0.0.0.0:8080\n", "", 1)
			},
			want: []string{"service query does not set SHOPLEDGER_QUERY_ADDR"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edited := tc.edit(raw)
			if edited == raw {
				t.Fatal("the edit did not apply: the compose file changed shape; update this test")
			}
			problems, err := composeProblems([]byte(edited), bins)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range problems {
				// The reason after " (" cites source positions.
				got = append(got, strings.SplitN(p, " (", 2)[0])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestComposeRunsTheMigrationFirst checks the wiring the variables do not
// show: the migration job runs ledger migrate once PostgreSQL is healthy,
// and every long-running binary waits for it to succeed.
func TestComposeRunsTheMigrationFirst(t *testing.T) {
	var c composeFile
	if err := yaml.Unmarshal(readCompose(t), &c); err != nil {
		t.Fatal(err)
	}
	want := []string{"ingest", "migrate", "postgres", "projector", "proxy", "query"}
	if diff := cmp.Diff(want, sortedKeys(c.Services)); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if got := c.Services["migrate"].Command; !slices.Equal(got, []string{"ledger", "migrate"}) {
		t.Errorf("migrate runs %q, want [ledger migrate]", got)
	}
	if got := dependsOn(t, c.Services["migrate"].DependsOn); got["postgres"] != "service_healthy" {
		t.Errorf("migrate depends on %v, want postgres: service_healthy", got)
	}
	if !c.Services["migrate"].Healthcheck.Disable {
		t.Error("migrate runs once and serves nothing: its image's healthcheck should be disabled")
	}
	image := c.Services["migrate"].Image
	for _, svc := range []string{"ingest", "projector", "query"} {
		s := c.Services[svc]
		if !slices.Equal(s.Command, []string{svc}) {
			t.Errorf("%s runs %q, want [%s]", svc, s.Command, svc)
		}
		if s.Image != image {
			t.Errorf("%s uses image %q, migrate %q: one image holds every binary", svc, s.Image, image)
		}
		if got := dependsOn(t, s.DependsOn); got["migrate"] != "service_completed_successfully" {
			t.Errorf("%s depends on %v, want migrate: service_completed_successfully", svc, got)
		}
	}
}

// dependsOn reads both forms of depends_on: a list of names, or a map of
// names to conditions.
func dependsOn(t *testing.T, n yaml.Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			out[name] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for name, d := range m {
			out[name] = d.Condition
		}
	default:
		t.Fatalf("depends_on is neither a list nor a map")
	}
	return out
}
