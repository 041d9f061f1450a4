package tracking

import (
	"strings"
	"testing"
)

func TestSealedClickID(t *testing.T) {
	s := NewSigner([]byte("new"), []byte("old"))
	dest := "https://shop.example/p?id=7&utm_source=mail#top"
	id := s.SealedClickID("acct_a", "em_b", 3, dest)
	if c, ok := s.ParseClick(id); !ok || c != (Click{EmailID: "em_b", Index: 3, AccountID: "acct_a", Dest: dest}) {
		t.Fatalf("ParseClick(%q) = %+v, %v", id, c, ok)
	}
	// An id signed with a secret since rotated out still verifies.
	old := NewSigner([]byte("old"))
	if c, ok := s.ParseClick(old.SealedClickID("acct_a", "em_b", 0, dest)); !ok || c.Dest != dest {
		t.Errorf("an id of the old secret: %+v %v", c, ok)
	}
	// The older form still parses, without a destination.
	if c, ok := s.ParseClick(s.ClickID("em_b", 2)); !ok || c != (Click{EmailID: "em_b", Index: 2}) {
		t.Errorf("an unsealed id: %+v %v", c, ok)
	}
	parts := strings.Split(id, ".")
	other := destEncoding.EncodeToString([]byte("https://evil.example/"))
	for _, bad := range []string{
		strings.Join([]string{parts[0], parts[1], parts[2], other, parts[4]}, "."), // another destination
		strings.Join([]string{parts[0], parts[1], "acct_x", parts[3], parts[4]}, "."),
		strings.Join([]string{parts[0], "4", parts[2], parts[3], parts[4]}, "."),
		strings.Join([]string{parts[0], "03", parts[2], parts[3], parts[4]}, "."),
		strings.Join([]string{parts[0], parts[1], parts[2], parts[3] + "=", parts[4]}, "."),
		NewSigner([]byte("another")).SealedClickID("acct_a", "em_b", 3, dest),
		s.SealedClickID("acct_a", "em_b", 3, strings.Repeat("x", maxSealedClickIDLen)),
		"a.b.c.d.e", "....",
	} {
		if c, ok := s.ParseClick(bad); ok {
			t.Errorf("ParseClick(%.80q) = %+v, ok", bad, c)
		}
	}
}

// TestPreviewClickID: a preview's click id has the form of a sealed one
// but another purpose, so that the click endpoint (ParseClick) refuses it,
// while the same link sealed for a send verifies.
func TestPreviewClickID(t *testing.T) {
	s := NewSigner([]byte("secret"))
	dest := "https://shop.example/p?id=7"
	id := s.PreviewClickID("acct_a", "em_preview", 0, dest)
	sealed := s.SealedClickID("acct_a", "em_preview", 0, dest)
	if strings.Count(id, ".") != 4 || id == sealed || id[:strings.LastIndexByte(id, '.')] != sealed[:strings.LastIndexByte(sealed, '.')] {
		t.Fatalf("preview id %q, sealed %q: want the same form, another MAC", id, sealed)
	}
	if c, ok := s.ParseClick(id); ok {
		t.Errorf("ParseClick(preview id) = %+v, ok", c)
	}
	if _, ok := s.ParseClick(sealed); !ok {
		t.Error("the sealed id does not verify")
	}
}
