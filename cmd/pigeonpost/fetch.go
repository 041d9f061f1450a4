package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/safehttp"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
)

// attachmentFetcher is the client that downloads attachment paths: HTTPS
// only, public addresses only (unless attachments.allow_private), 7 MB and
// compose.FetchTimeout per file, trusting the system roots plus
// attachments.ca_file, names looked up with resolver (nil: the system's).
func attachmentFetcher(cfg config.Attachments, resolver *net.Resolver) (*safehttp.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("attachments.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("attachments.ca_file: no PEM certificate in %s", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return safehttp.New(safehttp.Options{
		Timeout:      compose.FetchTimeout,
		MaxBytes:     compose.MaxAttachmentBytes,
		HTTPSOnly:    true,
		AllowPrivate: cfg.AllowPrivate,
		Transport:    tr,
		Resolver:     resolver,
	}), nil
}
