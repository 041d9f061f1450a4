package api

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// readGrowing returns the body whole, in a buffer sized by what arrived: a
// body that declares a megabyte and sends ten bytes gets no large buffer.
func TestReadGrowing(t *testing.T) {
	for _, c := range []struct {
		name     string
		body     string
		declared int64
	}{
		{"empty", "", 0},
		{"unknown length", strings.Repeat("x", 300<<10), -1},
		{"declared exactly", strings.Repeat("x", 300<<10), 300 << 10},
		{"declares much more than it sends", "0123456789", 1 << 20},
	} {
		got, err := readGrowing(io.MultiReader(strings.NewReader(c.body)), c.declared)
		if err != nil || !bytes.Equal(got, []byte(c.body)) {
			t.Errorf("%s: %d bytes, %v", c.name, len(got), err)
		}
		if limit := max(2*len(c.body), 64<<10); cap(got) > limit {
			t.Errorf("%s: a buffer of %d for %d bytes", c.name, cap(got), len(c.body))
		}
	}
}
