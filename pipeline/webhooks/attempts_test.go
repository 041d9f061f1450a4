package webhooks

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Every attempt joins its endpoint's list of recent attempts: a success
// with its status line, a failure with the answer's status, one refused
// before connecting with the reason and no status. Nothing of an answer's
// body is kept unless KeepAnswers (endpoints must be public) says so, and
// then its start, as one line of text.
func TestWebhookAttemptsRecorded(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("KeepAnswers=%v", keep), func(t *testing.T) { testWebhookAttempts(t, keep) })
	}
}

func testWebhookAttempts(t *testing.T, keepAnswers bool) {
	okSrv, _ := endpointServer(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "thanks")
	}))
	badSrv, _ := endpointServer(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "root:x:0:0:root:/root:/bin/bash\n")
	}))
	e := newSSRFEnv(t, okSrv)
	e.d.KeepAnswers = keepAnswers
	_, okPort, _ := net.SplitHostPort(okSrv.Listener.Addr().String())
	_, badPort, _ := net.SplitHostPort(badSrv.Listener.Addr().String())
	e.dns.SetA("hooks.ok.test", "127.0.0.2")
	e.dns.SetA("hooks.bad.test", "127.0.0.2")
	e.dns.SetAInTurn("hooks.moved.test", "127.0.0.2", "127.0.0.1")
	for id, url := range map[string]string{"wh_ok": "https://hooks.ok.test:" + okPort + "/", "wh_500": "https://hooks.bad.test:" + badPort + "/",
		"wh_moved": "https://hooks.moved.test:" + okPort + "/"} {
		if err := e.register(id, url); err != nil {
			t.Fatal(id, err)
		}
	}
	ids := e.queue("wh_ok", "wh_500", "wh_moved")
	e.run()

	ctx := context.Background()
	recorded := func(ep string) store.WebhookAttempt {
		t.Helper()
		var got []store.WebhookAttempt
		testkit.WaitFor(t, "the attempt at "+ep+" in its list", func() bool {
			var err error
			got, err = e.st.WebhookAttempts(ctx, ssrfAccount, ep, 0)
			return err == nil && len(got) > 0
		})
		if len(got) != 1 {
			t.Fatalf("%s: %d attempts listed, want 1: %+v", ep, len(got), got)
		}
		return got[0]
	}
	ok := recorded("wh_ok")
	if ok.DeliveryID != ids[0] || ok.Outcome != store.AttemptDelivered || ok.HTTPStatus != 200 || ok.Response != "HTTP 200 OK" ||
		ok.Attempt != 1 || ok.Event != "email.delivered" || ok.At.IsZero() || ok.LatencyMs < 0 {
		t.Errorf("the delivered attempt: %+v", ok)
	}
	bad := recorded("wh_500")
	if bad.DeliveryID != ids[1] || bad.Outcome != store.AttemptRetrying || bad.HTTPStatus != 500 || bad.Response != "HTTP 500 Internal Server Error" {
		t.Errorf("the failed attempt: %+v", bad)
	}
	moved := recorded("wh_moved")
	if moved.DeliveryID != ids[2] || moved.Outcome != store.AttemptRetrying || moved.HTTPStatus != 0 || !strings.Contains(moved.Response, "refused, not connected") {
		t.Errorf("the refused attempt: %+v", moved)
	}
	for _, a := range []store.WebhookAttempt{ok, bad, moved} {
		if strings.Contains(a.Response, "root:") || strings.Contains(a.Response, "thanks") {
			t.Errorf("%s: the answer's body is in the response: %q", a.EndpointID, a.Response)
		}
	}
	wantOK, wantBad := "", ""
	if keepAnswers {
		wantOK, wantBad = "thanks", "root:x:0:0:root:/root:/bin/bash "
	}
	if ok.Body != wantOK || bad.Body != wantBad || moved.Body != "" {
		t.Errorf("bodies kept %q, %q, %q; want %q, %q, none", ok.Body, bad.Body, moved.Body, wantOK, wantBad)
	}
}

func TestSnippet(t *testing.T) {
	for in, want := range map[string]string{
		"ok":                     "ok",
		"a\r\nb\tc\x00":          "a  b c ",
		"bad \xff byte":          "bad \ufffd byte",
		"cut é"[:len("cut é")-1]: "cut ",
		"":                       "",
	} {
		if got := Snippet([]byte(in)); got != want {
			t.Errorf("Snippet(%q) = %q, want %q", in, got, want)
		}
	}
}
