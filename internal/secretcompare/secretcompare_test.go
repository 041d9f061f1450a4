package secretcompare

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// secretWords are the words of an identifier (split at camelCase and _)
// that name a secret value. The rule is by name, not by type: simple, and
// honest about what it sees; a secret under another name escapes it.
var secretWords = map[string]bool{
	"mac": true, "macs": true, "hmac": true, "sig": true, "sigs": true, "signature": true, "signatures": true,
	"secret": true, "secrets": true, "digest": true, "hash": true, "password": true, "apikey": true,
}

var camelWord = regexp.MustCompile(`[A-Z]?[a-z0-9]+|[A-Z]+(?:[A-Z][a-z]|$)?`)

// namesSecret reports whether e is (a selection of, a conversion or
// slice of, or a call returning) a value whose name has a secret word.
func namesSecret(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		for _, w := range camelWord.FindAllString(x.Name, -1) {
			if secretWords[strings.ToLower(w)] {
				return true
			}
		}
	case *ast.SelectorExpr:
		return namesSecret(x.Sel)
	case *ast.ParenExpr:
		return namesSecret(x.X)
	case *ast.SliceExpr:
		return namesSecret(x.X)
	case *ast.IndexExpr:
		return namesSecret(x.X)
	case *ast.StarExpr:
		return namesSecret(x.X)
	case *ast.CallExpr:
		if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "string" || id.Name == "len") {
			if id.Name == "len" {
				return false // comparing a length leaks nothing
			}
			return len(x.Args) == 1 && namesSecret(x.Args[0])
		}
		return namesSecret(x.Fun)
	}
	return false
}

// trivial is a value compared with for emptiness or absence: nil, a
// literal, a constant.
func trivial(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "nil" || x.Name == "true" || x.Name == "false"
	case *ast.BasicLit:
		return true
	case *ast.CallExpr:
		id, ok := x.Fun.(*ast.Ident)
		return ok && id.Name == "len"
	}
	return false
}

// finding is one comparison of a secret that is not constant-time.
type finding struct {
	pos  token.Position
	expr string
}

// check returns the variable-time comparisons of secrets in the file, and
// how many constant-time ones it makes.
func check(fset *token.FileSet, f *ast.File) (bad []finding, constantTime int) {
	src := func(n ast.Node) token.Position { return fset.Position(n.Pos()) }
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.BinaryExpr:
			if (x.Op == token.EQL || x.Op == token.NEQ) && !trivial(x.X) && !trivial(x.Y) && (namesSecret(x.X) || namesSecret(x.Y)) {
				bad = append(bad, finding{src(x), exprString(x)})
			}
		case *ast.CallExpr:
			sel, ok := x.Fun.(*ast.SelectorExpr)
			if !ok {
				break
			}
			pkg, _ := sel.X.(*ast.Ident)
			if pkg == nil {
				break
			}
			switch pkg.Name + "." + sel.Sel.Name {
			case "hmac.Equal", "subtle.ConstantTimeCompare":
				constantTime++
			case "bytes.Equal", "strings.EqualFold", "reflect.DeepEqual", "slices.Equal":
				if slices.ContainsFunc(x.Args, namesSecret) {
					bad = append(bad, finding{src(x), exprString(x)})
				}
			}
		}
		return true
	})
	return bad, constantTime
}

func exprString(e ast.Node) string {
	var b strings.Builder
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			b.WriteString(id.Name + " ")
		}
		return true
	})
	return strings.TrimSpace(b.String())
}

// TestSecretsComparedInConstantTime reads every non-test Go file of the
// module. Where a secret is known to be checked (click, unsubscribe and
// feedback ids; webhook signatures), the check must be constant-time, and
// nowhere may a secret be compared with ==, != or bytes.Equal. API keys
// are not compared at all: they are looked up by their SHA-256.
func TestSecretsComparedInConstantTime(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	constantTime := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "vendor" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		bad, n := check(fset, f)
		for _, b := range bad {
			t.Errorf("%s: a secret compared in variable time (%s): use hmac.Equal or subtle.ConstantTimeCompare", b.pos, b.expr)
		}
		rel, _ := filepath.Rel(root, path)
		constantTime[filepath.ToSlash(rel)] += n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"tracking/signer.go", "pipeline/webhooks/sign.go"} {
		if constantTime[file] == 0 {
			t.Errorf("%s checks MACs but makes no constant-time comparison", file)
		}
	}
}

// The rule finds what it is meant to find, and lets the rest be.
func TestSecretCompareRule(t *testing.T) {
	const src = `package p
func f(mac, want []byte, sig string, k *Key, secret, given string, n int) {
	_ = string(mac) == string(want) // bad
	_ = sig != given                // bad
	_ = bytes.Equal(want, mac)      // bad
	_ = k.Hash == given             // bad
	_ = secret == ""
	_ = mac == nil
	_ = len(sig) != 43
	_ = hmac.Equal(mac, want)
	_ = subtle.ConstantTimeCompare(mac, want) == 1
	_ = n == 3
	_ = tokenType == startTag
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad, n := check(fset, f)
	var lines []int
	for _, b := range bad {
		lines = append(lines, b.pos.Line)
	}
	if !slices.Equal(lines, []int{3, 4, 5, 6}) || n != 2 {
		t.Errorf("flagged lines %v (%+v), %d constant-time; want 3 4 5 6 and 2", lines, bad, n)
	}
}

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
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}
