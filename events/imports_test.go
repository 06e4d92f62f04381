package events_test

import (
	"go/build"
	"strings"
	"testing"
)

// events and domain are the vocabulary and the rules; infrastructure
// depends on them, never the other way round.
func TestNoInfrastructureImports(t *testing.T) {
	banned := []string{"github.com/jackc/", "github.com/ThreeDotsLabs/", "github.com/go-chi/", "github.com/prometheus/", "database/sql", "net/http"}
	for _, dir := range []string{".", "../domain"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				continue
			}
			t.Fatalf("%s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			for _, b := range banned {
				if strings.HasPrefix(imp, b) {
					t.Errorf("%s imports %s", pkg.ImportPath, imp)
				}
			}
		}
	}
}
