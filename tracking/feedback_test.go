package tracking

import "testing"

func TestFeedbackID(t *testing.T) {
	s := NewSigner([]byte("secret"))
	id := s.FeedbackID("em_abc")
	if got, ok := s.ParseFeedbackID(" " + id + "\r\n"); !ok || got != "em_abc" {
		t.Fatalf("ParseFeedbackID(%q) = %q, %v", id, got, ok)
	}
	for _, bad := range []string{
		"", "em_abc", "em_abc.", id + "x", "em_abd" + id[len("em_abc"):], "." + id[len("em_abc."):],
		NewSigner([]byte("other")).FeedbackID("em_abc"),
		s.ClickID("em_abc", 0), // another purpose's MAC
	} {
		if got, ok := s.ParseFeedbackID(bad); ok {
			t.Errorf("ParseFeedbackID(%q) = %q, ok", bad, got)
		}
	}
}

func TestAppendFeedbackField(t *testing.T) {
	s := NewSigner([]byte("secret"))
	if got, want := string(s.AppendFeedbackField([]byte("x"), "em_abc")), "xX-Pigeonpost-Id: "+s.FeedbackID("em_abc")+"\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
