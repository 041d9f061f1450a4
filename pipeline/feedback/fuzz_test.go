package feedback

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// FuzzParse holds Parse, which reads mail from anyone, to what the code
// applying reports relies on: no panic; an error or a report, never both; a
// report of one of the two kinds, with the field that makes it one (a
// Feedback-Type, a recipient), at most maxRecipients recipients, each with an
// address, a lower-case action, a status that is a valid code or none, and a
// diagnostic of valid UTF-8 within maxDiagnosticBytes. And, under the header
// limits, how the input is cut into reads changes nothing.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := Parse(bytes.NewReader(in))
		if err != nil {
			if rep != nil {
				t.Fatalf("report %+v with error %v", rep, err)
			}
		} else {
			checkInvariants(t, rep)
		}
		if len(in) > maxStatusBytes {
			return // near a limit, where reads end may matter
		}
		again, againErr := Parse(iotest.HalfReader(bytes.NewReader(in)))
		if (err == nil) != (againErr == nil) || errors.Is(err, ErrNotReport) != errors.Is(againErr, ErrNotReport) ||
			!reflect.DeepEqual(rep, again) {
			t.Fatalf("read whole: %+v, %v; read in halves: %+v, %v", rep, err, again, againErr)
		}
	})
}

func checkInvariants(t *testing.T, rep *Report) {
	t.Helper()
	switch rep.Kind {
	case KindComplaint:
		if rep.FeedbackType == "" || rep.FeedbackType != strings.ToLower(rep.FeedbackType) {
			t.Errorf("complaint with Feedback-Type %q", rep.FeedbackType)
		}
	case KindDelivery:
		if len(rep.Recipients) == 0 || rep.FeedbackType != "" {
			t.Errorf("delivery-status report with %d recipients, Feedback-Type %q", len(rep.Recipients), rep.FeedbackType)
		}
	default:
		t.Errorf("kind %q", rep.Kind)
	}
	if len(rep.Recipients) > maxRecipients {
		t.Errorf("%d recipients", len(rep.Recipients))
	}
	for _, rcpt := range rep.Recipients {
		if rcpt.Address == "" || rcpt.Action != strings.ToLower(rcpt.Action) {
			t.Errorf("recipient %+v", rcpt)
		}
		if rep.Kind == KindComplaint && (rcpt.Action != "" || rcpt.Status != [3]int{} || rcpt.Diagnostic != "") {
			t.Errorf("complaint recipient %+v", rcpt)
		}
		if s := rcpt.Status; s != [3]int{} && (s[0] != 2 && s[0] != 4 && s[0] != 5 || s[1] > 999 || s[2] > 999 || s[1] < 0 || s[2] < 0) {
			t.Errorf("status %v", s)
		}
		if len(rcpt.Diagnostic) > maxDiagnosticBytes || !utf8.ValidString(rcpt.Diagnostic) {
			t.Errorf("diagnostic of %d bytes: %q", len(rcpt.Diagnostic), rcpt.Diagnostic)
		}
	}
}
