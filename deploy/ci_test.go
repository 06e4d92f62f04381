package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// makeTarget finds `make TARGET` in a command line.
var makeTarget = regexp.MustCompile(`(?:^|[\s;&|(])make\s+([a-z][a-z0-9-]*)`)

func makeTargets(script string) []string {
	var out []string
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range makeTarget.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// TestWorkflowRunsWhatCIRuns compares the make targets of the GitHub
// workflow's steps, in order, with those of .ci/run: a target added to one
// and not the other would make the public CI and this one disagree.
func TestWorkflowRunsWhatCIRuns(t *testing.T) {
	root := repoRoot(t)
	ciRun, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Env   map[string]string `yaml:"env"`
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("parse ci.yml: %v", err)
	}
	var got []string
	for _, name := range sortedKeys(wf.Jobs) {
		job := wf.Jobs[name]
		var targets []string
		for _, s := range job.Steps {
			targets = append(targets, makeTargets(s.Run)...)
		}
		got = append(got, targets...)
		if len(targets) > 0 && job.Env["CI"] != "true" {
			t.Errorf("job %s runs make without CI=true: tests would skip where .ci/run fails", name)
		}
	}
	want := makeTargets(string(ciRun))
	if len(want) == 0 {
		t.Fatal(".ci/run runs no make target")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("make targets, .ci/run (-) against .github/workflows/ci.yml (+):\n%s", diff)
	}
}
