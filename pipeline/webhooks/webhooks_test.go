package webhooks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

func TestSignVerify(t *testing.T) {
	secret := NewSecret()
	if !strings.HasPrefix(secret, "whsec_") || len(secret) != len("whsec_")+43 || secret == NewSecret() {
		t.Fatalf("secret %q", secret)
	}
	body := []byte(`{"event":"email.opened","timestamp":"2025-01-15T10:30:00.000Z","data":{}}`)
	at := time.Unix(1736937000, 0)
	header := Sign(secret, at, body)
	if !strings.HasPrefix(header, "t=1736937000,v1=") || len(header) != len("t=1736937000,v1=")+64 {
		t.Fatalf("header %q", header)
	}

	tests := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, header, body, at, nil},
		{"valid at the edge of the window", secret, header, body, at.Add(DefaultTolerance), nil},
		{"clock behind the sender", secret, header, body, at.Add(-time.Minute), nil},
		{"replayed later", secret, header, body, at.Add(DefaultTolerance + time.Second), ErrTimestamp},
		{"one body byte changed", secret, header, append([]byte{'['}, body[1:]...), at, ErrSignature},
		{"timestamp shifted", secret, strings.Replace(header, "t=1736937000", "t=1736937001", 1), body, at, ErrSignature},
		{"another secret", NewSecret(), header, body, at, ErrSignature},
		{"rotation: one of two signatures matches", secret, header[:strings.Index(header, ",")] + ",v1=" + strings.Repeat("ab", 32) + header[strings.Index(header, ","):], body, at, nil},
		{"no signature", secret, "t=1736937000", body, at, ErrBadSignatureHeader},
		{"no timestamp", secret, header[strings.Index(header, ",")+1:], body, at, ErrBadSignatureHeader},
		{"not hex", secret, "t=1736937000,v1=zz", body, at, ErrBadSignatureHeader},
		{"garbage", secret, "garbage", body, at, ErrBadSignatureHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.secret, tt.header, tt.body, tt.now, DefaultTolerance); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBody(t *testing.T) {
	at := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	ev := func(typ store.EventType, data map[string]string) store.Event {
		return store.Event{Type: typ, Timestamp: at, EmailID: "em_abc123", Data: data}
	}
	const ts = `"2025-01-15T10:30:00.000Z"`
	tests := []struct {
		name string
		ev   store.Event
		want string
	}{
		{"opened, visitor data left out", ev("opened", map[string]string{"ip": "192.0.2.1", "userAgent": "UA", "first": "true"}),
			`{"event":"email.opened","timestamp":` + ts + `,"data":{"emailId":"em_abc123","toAddress":"user@example.com","openedAt":` + ts + `,"bot":false,"proxied":false,"machineOpen":null,"rule":null}}`},
		{"an Apple Mail Privacy Protection open", ev("opened", map[string]string{"proxied": "true", "machineOpen": "apple_mpp", "filterRule": "apple_mpp"}),
			`{"event":"email.opened","timestamp":` + ts + `,"data":{"emailId":"em_abc123","toAddress":"user@example.com","openedAt":` + ts + `,"bot":false,"proxied":true,"machineOpen":"apple_mpp","rule":"apple_mpp"}}`},
		{"a scanner's click", ev("clicked", map[string]string{"linkUrl": "https://e.test/", "linkIndex": "0", "botFiltered": "true", "filterRule": "known_bot_user_agent"}),
			`{"event":"email.clicked","timestamp":` + ts + `,"data":{"emailId":"em_abc123","toAddress":"user@example.com","clickedAt":` + ts +
				`,"linkUrl":"https://e.test/","linkIndex":0,"bot":true,"proxied":false,"machineOpen":null,"rule":"known_bot_user_agent"}}`},
		{"clicked", ev("clicked", map[string]string{"linkUrl": "https://example.com/activate?a=1&b=<2>", "linkIndex": "3", "referer": "https://r.test/"}),
			`{"event":"email.clicked","timestamp":` + ts + `,"data":{"emailId":"em_abc123","toAddress":"user@example.com","clickedAt":` + ts +
				`,"linkUrl":"https://example.com/activate?a=1&b=<2>","linkIndex":3,"bot":false,"proxied":false,"machineOpen":null,"rule":null}}`},
		{"delivered", ev("delivered", nil),
			`{"event":"email.delivered","timestamp":` + ts + `,"data":{"emailId":"em_abc123","toAddress":"user@example.com","deliveredAt":` + ts + `}}`},
		{"bounced with reason", ev("bounced", map[string]string{"reason": `550 5.1.1 "no such user"`}),
			`{"event":"email.bounced","timestamp":` + ts + `,"data":{"emailId":"em_abc123","toAddress":"user@example.com","bouncedAt":` + ts + `,"reason":"550 5.1.1 \"no such user\""}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Body(tt.ev, "user@example.com")); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]string, error) {
		switch host {
		case "hooks.example.com":
			return []string{"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"}, nil
		case "rebind.example.com":
			return []string{"93.184.216.34", "10.0.0.1"}, nil
		}
		return nil, errors.New("NXDOMAIN")
	}
	strict := URLPolicy{}
	tests := []struct {
		url    string
		policy URLPolicy
		ok     bool
	}{
		{"https://hooks.example.com/pigeonpost", strict, true},
		{"https://93.184.216.34:8443/x", strict, true},
		{"http://hooks.example.com/", strict, false}, // https only
		{"http://hooks.example.com/", URLPolicy{AllowHTTP: true}, true},
		{"https://127.0.0.1/", strict, false},
		{"https://[::1]/", strict, false},
		{"https://[::ffff:127.0.0.1]/", strict, false},
		{"https://10.0.0.1/", strict, false},
		{"https://172.16.0.1/", strict, false},
		{"https://192.168.0.1/", strict, false},
		{"https://169.254.169.254/latest/meta-data", strict, false},
		{"https://100.64.0.1/", strict, false},
		{"https://[fd00::1]/", strict, false},
		{"https://[fe80::1]/", strict, false},
		{"https://0.0.0.0/", strict, false},
		{"https://127.1/", strict, false},
		{"https://2130706433/", strict, false},
		{"https://0x7f.0.0.1/", strict, false},
		{"https://017700000001/", strict, false},
		{"https://127.1/", URLPolicy{AllowPrivate: true}, false}, // ambiguous whatever the policy
		{"https://[64:ff9b::7f00:1]/", strict, false},
		{"https://[::7f00:1]/", strict, false},
		{"gopher://hooks.example.com/", strict, false},
		{"https://localhost/", strict, false},
		{"https://app.localhost/", strict, false},
		{"https://rebind.example.com/", strict, false}, // one private address is enough
		{"https://nowhere.example.com/", strict, false},
		{"https://user:pw@hooks.example.com/", strict, false},
		{"ftp://hooks.example.com/", strict, false},
		{"file:///etc/passwd", strict, false},
		{"/relative", strict, false},
		{"", strict, false},
		{"https://hooks.example.com/a b", strict, false},
		{"https://127.0.0.1:9/", URLPolicy{AllowPrivate: true}, true},
		{"http://127.0.0.1:9/", URLPolicy{AllowPrivate: true}, false}, // still https only
	}
	for _, tt := range tests {
		err := CheckURL(context.Background(), tt.url, tt.policy, lookup)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q, %+v) = %v, want ok=%v", tt.url, tt.policy, err, tt.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	d := &Dispatcher{RetryInitial: time.Second, RetryMax: 10 * time.Second}
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		got := d.backoff(attempts)
		if got < want*9/10 || got > want*11/10 {
			t.Errorf("backoff(%d) = %v, want %v ±10%%", attempts, got, want)
		}
	}
}

func TestDeliveryIDStable(t *testing.T) {
	a, b := deliveryID("1-0", "wh_a"), deliveryID("1-0", "wh_a")
	if a != b || a == deliveryID("1-0", "wh_b") || a == deliveryID("1-1", "wh_a") || !strings.HasPrefix(a, "whmsg_") {
		t.Errorf("ids %q %q", a, b)
	}
}
