package deviceflow

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
	testFunc = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w+)\(`)
	// A test named in the docs, and the files in brackets after a list
	// of them: "`TestA`, `TestB` (flow/a_test.go)".
	namedTest  = regexp.MustCompile("`((?:Test|Fuzz|Benchmark)\\w+)`")
	namedTests = regexp.MustCompile("((?:`(?:Test|Fuzz|Benchmark)\\w+`(?:, )?)+) \\(([\\w/.-]+_test\\.go)")
)

// The docs say which test proves each claim (docs/security.md: every
// one): each test they name exists, in the file they name.
func TestDocsNameRealTests(t *testing.T) {
	defined := map[string][]string{} // test → files
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		for _, m := range testFunc.FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = append(defined[m[1]], filepath.ToSlash(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob("docs/*.md")
	for _, doc := range append(docs, "README.md", "CHANGELOG.md") {
		src, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			for _, m := range namedTest.FindAllStringSubmatch(line, -1) {
				if defined[m[1]] == nil {
					t.Errorf("%s:%d names %s, which no test file defines", doc, i+1, m[1])
				}
			}
			for _, m := range namedTests.FindAllStringSubmatch(line, -1) {
				for _, name := range namedTest.FindAllStringSubmatch(m[1], -1) {
					if files := defined[name[1]]; files != nil && !slices.Contains(files, m[2]) {
						t.Errorf("%s:%d puts %s in %s; it is in %s", doc, i+1, name[1], m[2], strings.Join(files, ", "))
					}
				}
			}
		}
	}
}
