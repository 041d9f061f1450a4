package smtpd

import (
	"errors"
	"testing"
)

func TestLoginServer(t *testing.T) {
	cases := map[string][][]byte{
		"without initial response": {nil, []byte("apikey"), []byte("secret")},
		"with initial response":    {[]byte("apikey"), []byte("secret")},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			var gotUser, gotPass string
			l := &loginServer{authenticate: func(u, p string) error { gotUser, gotPass = u, p; return nil }}
			for i, resp := range steps {
				challenge, done, err := l.Next(resp)
				if err != nil {
					t.Fatal(err)
				}
				last := i == len(steps)-1
				if done != last {
					t.Fatalf("step %d: done=%v", i, done)
				}
				if !last && string(challenge) != "Username:" && string(challenge) != "Password:" {
					t.Fatalf("step %d: challenge %q", i, challenge)
				}
			}
			if gotUser != "apikey" || gotPass != "secret" {
				t.Errorf("authenticated %q/%q", gotUser, gotPass)
			}
		})
	}
	refused := errors.New("no")
	l := &loginServer{authenticate: func(string, string) error { return refused }}
	l.Next([]byte("apikey"))
	if _, _, err := l.Next([]byte("bad")); !errors.Is(err, refused) {
		t.Errorf("got %v", err)
	}
}
