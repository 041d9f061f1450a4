package smtpd_test

import (
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/smtpd"
)

// The production pipeline satisfies what smtpd declares it needs. The check
// lives here because pipeline must not import smtpd.
var _ smtpd.Pipeline = (*pipeline.Service)(nil)
