package metricsdoc

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	// A metric name as the code declares it: a whole string literal.
	codeName = regexp.MustCompile(`"(pigeonpost_[a-z0-9_]+)"`)
	// A metric name as the doc writes it, in code spans or PromQL.
	docName = regexp.MustCompile(`\bpigeonpost_[a-z0-9_]+`)
)

// TestMonitoringDocListsEveryMetric fails when a metric name in a non-test
// Go file is missing from docs/monitoring.md, or when the doc names a
// metric that no Go file declares (a renamed or removed series). A
// histogram's _bucket, _sum and _count series count as its own name.
func TestMonitoringDocListsEveryMetric(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}

	inCode := map[string]string{} // name → a file that declares it
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range codeName.FindAllSubmatch(src, -1) {
			if _, ok := inCode[string(m[1])]; !ok {
				rel, _ := filepath.Rel(root, path)
				inCode[string(m[1])] = rel
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(inCode) == 0 {
		t.Fatal("no pigeonpost_ metric names found in the Go sources: is the module root right?")
	}

	inDoc := map[string]bool{}
	for _, m := range docName.FindAll(doc, -1) {
		inDoc[string(m)] = true
	}

	var missing, unknown []string
	for name, file := range inCode {
		if !inDoc[name] {
			missing = append(missing, name+" (declared in "+file+")")
		}
	}
	for name := range inDoc {
		if _, ok := inCode[name]; ok {
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if _, ok := inCode[base]; !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(missing)
	slices.Sort(unknown)
	for _, m := range missing {
		t.Errorf("docs/monitoring.md does not document %s", m)
	}
	for _, u := range unknown {
		t.Errorf("docs/monitoring.md names %s, which no Go source declares", u)
	}
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
