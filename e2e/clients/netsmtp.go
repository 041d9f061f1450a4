// Command netsmtp sends an HTML message with a PDF attachment through
// pigeonpost with Go's net/smtp: STARTTLS, then AUTH PLAIN.
//
//	SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [ATTACHMENT] [SMTP_SECURITY=starttls|tls]
//
// smtp.SendMail would do the same in one call but verifies the certificate
// against the host name; this test gateway's certificate is self-signed.
// smtp.PlainAuth refuses to send the key unless the connection is TLS (or
// the server is localhost), and its host must be the name dialled.
package main

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"time"
)

func main() {
	if err := send(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Println("sent")
}

func send() error {
	host, port := os.Getenv("SMTP_HOST"), os.Getenv("SMTP_PORT")
	from, to := os.Getenv("MAIL_FROM"), os.Getenv("MAIL_TO")
	msg, err := message(from, to)
	if err != nil {
		return err
	}
	// The gateway in this test has a self-signed certificate; in production
	// leave InsecureSkipVerify out.
	tlsConfig := &tls.Config{ServerName: host, InsecureSkipVerify: true}

	addr := net.JoinHostPort(host, port)
	var conn net.Conn
	if os.Getenv("SMTP_SECURITY") == "tls" { // implicit TLS (port 465)
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, tlsConfig)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 30*time.Second)
	}
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, isTLS := conn.(*tls.Conn); !isTLS {
		if err := c.StartTLS(tlsConfig); err != nil {
			return err
		}
	}
	if err := c.Auth(smtp.PlainAuth("", "apikey", os.Getenv("SMTP_API_KEY"), host)); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil { // the reply to the final dot
		return err
	}
	return c.Quit()
}

// message builds a multipart/mixed message: the HTML body and the PDF.
func message(from, to string) ([]byte, error) {
	pdf, err := os.ReadFile(cmp.Or(os.Getenv("ATTACHMENT"), "invoice.pdf"))
	if err != nil {
		return nil, err
	}
	html := `<html><body><h1>Hello Zoë</h1><p>Your invoice is attached.</p>` +
		`<p><a href="https://acme.test/account?ref=e2e&amp;lang=fr">View your account</a></p></body></html>`

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "From: %s\r\n", (&mail.Address{Name: "Acme Café", Address: from}).String())
	fmt.Fprintf(&buf, "To: %s\r\n", (&mail.Address{Name: "Zoë Tester", Address: to}).String())
	fmt.Fprintf(&buf, "Subject: %s\r\n", mime.QEncoding.Encode("UTF-8", "Your invoice — Café ✓"))
	fmt.Fprintf(&buf, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	buf.WriteString("X-SP-Track-Opens: true\r\nX-SP-Track-Clicks: true\r\n")
	fmt.Fprintf(&buf, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%q\r\n\r\n", mw.Boundary())

	part, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/html; charset=UTF-8"},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, err
	}
	writeBase64(part, []byte(html))
	part, err = mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {`application/pdf; name="invoice.pdf"`},
		"Content-Disposition":       {`attachment; filename="invoice.pdf"`},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, err
	}
	writeBase64(part, pdf)
	if err := mw.Close(); err != nil {
		return nil, err
	}
	buf.Write(body.Bytes())
	return buf.Bytes(), nil
}

// writeBase64 writes b in base64 lines of 76 characters (RFC 2045).
func writeBase64(w io.Writer, b []byte) {
	s := base64.StdEncoding.EncodeToString(b)
	for len(s) > 76 {
		fmt.Fprintf(w, "%s\r\n", s[:76])
		s = s[76:]
	}
	fmt.Fprintf(w, "%s\r\n", s)
}
