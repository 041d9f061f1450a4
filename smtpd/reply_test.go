package smtpd

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

// TestReplies holds every reply smtpd sends of its own and the translator's
// answer to each kind of error in one table: each has the codes the
// contract promises, and its basic and enhanced classes agree (maddy once
// paired 450 with 5.4.4).
func TestReplies(t *testing.T) {
	type want struct {
		code int
		enh  smtp.EnhancedCode
	}
	cases := []struct {
		group, name string
		got         *smtp.SMTPError
		want        want
	}{
		{"protocol", "unsupported AUTH mechanism", replyUnsupportedMechanism, want{504, smtp.EnhancedCode{5, 5, 4}}},
		{"protocol", "AUTH could not check the key", replyAuthUnavailable, want{454, smtp.EnhancedCode{4, 7, 0}}},
		{"protocol", "MAIL before STARTTLS", replyMustStartTLS, want{530, smtp.EnhancedCode{5, 7, 0}}},
		{"protocol", "MAIL before AUTH", replyAuthRequired, want{530, smtp.EnhancedCode{5, 7, 0}}},
		{"protocol", "DATA timed out", replyDataTimeout, want{451, smtp.EnhancedCode{4, 4, 2}}},
		{"protocol", "DATA connection failed", replyDataError, want{451, smtp.EnhancedCode{4, 3, 0}}},
		{"protocol", "a command panicked", replyInternal, want{451, smtp.EnhancedCode{4, 3, 0}}},
		{"protocol", "shutting down", replyShuttingDown, want{421, smtp.EnhancedCode{4, 3, 2}}},
		{"protocol", "too many connections", replyTooManyConnections, want{421, smtp.EnhancedCode{4, 7, 0}}},
		{"protocol", "queued", replyQueued("em_x"), want{250, smtp.EnhancedCode{2, 0, 0}}},
		{"protocol", "a DATA line over the limit", replyLineTooLong(2000), want{554, smtp.EnhancedCode{5, 6, 0}}},

		{"translated", "bad credentials", reply(pipeline.ErrAuthFailed), want{535, smtp.EnhancedCode{5, 7, 8}}},
		{"translated", "storage down", reply(pipeline.ErrUnavailable.WithCause(errors.New("dial tcp: refused"))), want{451, smtp.EnhancedCode{4, 3, 0}}},
		{"translated", "rate limited, wrapped", reply(fmt.Errorf("admit: %w", pipeline.ErrRateLimited)), want{451, smtp.EnhancedCode{4, 7, 1}}},
		{"translated", "unverified domain", reply(pipeline.ErrUnverifiedDomain), want{550, smtp.EnhancedCode{5, 7, 1}}},
		{"translated", "memory budget", errBusy, want{451, smtp.EnhancedCode{4, 3, 1}}},
		{"translated", "client text quoted in a message", reply(pipeline.ErrBadAddress.With("address \"a\rb\n250 ok\" is bad")), want{553, smtp.EnhancedCode{5, 1, 3}}},
		{"translated", "unknown error: temporary, never 554", reply(errors.New("redis: connection pool timeout")), want{451, smtp.EnhancedCode{4, 3, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.group+"/"+tc.name, func(t *testing.T) {
			if tc.got.Code != tc.want.code || tc.got.EnhancedCode != tc.want.enh {
				t.Errorf("got %d %v, want %d %v", tc.got.Code, tc.got.EnhancedCode, tc.want.code, tc.want.enh)
			}
			if tc.got.Code/100 != tc.got.EnhancedCode[0] {
				t.Errorf("classes disagree: %d with %v", tc.got.Code, tc.got.EnhancedCode)
			}
			if tc.got.Message == "" || strings.ContainsFunc(tc.got.Message, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("text %q is empty or holds control characters", tc.got.Message)
			}
		})
	}
}

// TestWire: the replies written outside go-smtp are one well-formed line.
func TestWire(t *testing.T) {
	for r, want := range map[*smtp.SMTPError]string{
		replyShuttingDown:       "421 4.3.2 Service shutting down, try again later\r\n",
		replyTooManyConnections: "421 4.7.0 Too many connections, try again later\r\n",
	} {
		if got := wire(r); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
