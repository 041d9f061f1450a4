package tracking

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	message "github.com/emersion/go-message"
)

const (
	testPixelURL = "https://t.example.test/v1/track/open/em_test"
	testClickFmt = "https://t.example.test/v1/track/click/c%d"
)

// goldenOpts are the options of the golden tests.
func goldenOpts() Options {
	return Options{
		Opens:    true,
		Clicks:   true,
		PixelURL: testPixelURL,
		ClickURL: func(i int, _ string) string { return fmt.Sprintf(testClickFmt, i) },
	}
}

// rewriteBytes runs Rewrite on in and fails the test on an error.
func rewriteBytes(t testing.TB, in []byte, opts Options) ([]byte, Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := Rewrite(&out, bytes.NewReader(in), opts)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return out.Bytes(), res
}

// parseAll reads msg with go-message, walking every part and reading every
// body, and returns the first error. Unknown charsets and transfer encodings
// are not errors: go-message reports them but still reads the entity.
func parseAll(msg []byte) error {
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return err
	}
	if e == nil {
		return fmt.Errorf("no entity")
	}
	return walkEntity(e, 0)
}

func walkEntity(e *message.Entity, depth int) error {
	if depth > 200 {
		return fmt.Errorf("too deep")
	}
	mr := e.MultipartReader()
	if mr == nil {
		_, err := io.Copy(io.Discard, e.Body)
		return err
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
		if p == nil {
			return fmt.Errorf("nil part")
		}
		if err := walkEntity(p, depth+1); err != nil {
			return err
		}
	}
}

// leaf is a non-multipart entity as the standard library reads it: its
// header and its raw (still transfer-encoded) body.
type leaf struct {
	path   string
	header textproto.MIMEHeader
	body   []byte
}

// rewritable reports whether Rewrite may change the leaf.
func (l leaf) rewritable() bool { return l.rewritableWith(false) }

// rewritableWith is rewritable with Options.TextLinks set to text.
func (l leaf) rewritableWith(text bool) bool {
	ct := l.header.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, _, _ := mime.ParseMediaType(ct)
	disp, _, _ := strings.Cut(l.header.Get("Content-Disposition"), ";")
	return (mt == "text/html" || text && mt == "text/plain") && !strings.EqualFold(strings.TrimSpace(disp), "attachment")
}

// leaves lists the leaf entities of msg using net/textproto and
// mime/multipart only, independently of the code under test.
func leaves(t testing.TB, msg []byte) []leaf {
	t.Helper()
	l, err := leafParts(msg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func leafParts(msg []byte) ([]leaf, error) {
	r := bufio.NewReader(bytes.NewReader(msg))
	h, err := textproto.NewReader(r).ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("reading header: %v", err)
	}
	body, _ := io.ReadAll(r)
	var out []leaf
	err = collectLeaves("0", h, body, &out, 0)
	return out, err
}

func collectLeaves(path string, h textproto.MIMEHeader, body []byte, out *[]leaf, depth int) error {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		*out = append(*out, leaf{path, h, body})
		return nil
	}
	if depth > 100 {
		return fmt.Errorf("part %s: too deep", path)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := 1; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("part %s.%d: %v", path, i, err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return fmt.Errorf("part %s.%d body: %v", path, i, err)
		}
		if err := collectLeaves(fmt.Sprintf("%s.%d", path, i), p.Header, b, out, depth+1); err != nil {
			return err
		}
	}
}

// checkInvariants checks the properties every rewrite of a well-formed
// message must have: the output parses, non-HTML leaves are byte-identical
// (header and raw body) and HTML leaves keep their header apart from
// Content-Transfer-Encoding.
func checkInvariants(t *testing.T, in, out []byte, res Result) {
	t.Helper()
	checkInvariantsText(t, in, out, res, false)
}

// checkInvariantsText is checkInvariants for a rewrite with
// Options.TextLinks set to text, which may also change text/plain leaves.
func checkInvariantsText(t *testing.T, in, out []byte, res Result, text bool) {
	t.Helper()
	if err := parseAll(out); err != nil {
		t.Errorf("output does not parse with go-message: %v", err)
	}
	if res.Changed == bytes.Equal(in, out) {
		t.Errorf("Changed = %v but output equal to input is %v", res.Changed, bytes.Equal(in, out))
	}
	checkFound(t, res)
	li, lo := leaves(t, in), leaves(t, out)
	if len(li) != len(lo) {
		t.Fatalf("input has %d leaf parts, output %d", len(li), len(lo))
	}
	for i := range li {
		a, b := li[i], lo[i]
		if !a.rewritableWith(text) {
			if !bytes.Equal(a.body, b.body) {
				t.Errorf("leaf %s (%s): body changed:\n%q\n%q", a.path, a.header.Get("Content-Type"), a.body, b.body)
			}
			if fmt.Sprint(a.header) != fmt.Sprint(b.header) {
				t.Errorf("leaf %s: header changed:\n%v\n%v", a.path, a.header, b.header)
			}
			continue
		}
		ha, hb := maps.Clone(a.header), maps.Clone(b.header)
		ha.Del("Content-Transfer-Encoding")
		hb.Del("Content-Transfer-Encoding")
		if fmt.Sprint(ha) != fmt.Sprint(hb) {
			t.Errorf("leaf %s: HTML header changed beyond Content-Transfer-Encoding:\n%v\n%v", a.path, a.header, b.header)
		}
	}
}

// checkFound checks that Result.Found agrees with Result.Links: its
// tracked links, in order, are Links with their indexes; every other has
// index -1 and a reason.
func checkFound(t testing.TB, res Result) {
	t.Helper()
	var tracked []string
	for _, l := range res.Found {
		switch {
		case l.Reason == "" && l.Index != len(tracked):
			t.Errorf("tracked link %q has index %d, want %d", l.URL, l.Index, len(tracked))
		case l.Reason != "" && l.Index != -1:
			t.Errorf("untracked link %q (%s) has index %d", l.URL, l.Reason, l.Index)
		}
		if l.Reason == "" {
			tracked = append(tracked, l.URL)
		}
	}
	if !slices.Equal(tracked, res.Links) {
		t.Errorf("the tracked links of Found are %q, Links %q", tracked, res.Links)
	}
}
