package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
)

// The message is built exactly as /work/shared/bench/loadgen builds it
// (same words, line lengths, anchors and headers), so that byte counts and
// server work are comparable between the two tools.

const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat"

// buildBody returns a body of about size bytes with CRLF lines <= 78 chars.
// In HTML mode it holds `links` anchors spread evenly through the text.
func buildBody(size, links int, html bool) []byte {
	var b bytes.Buffer
	ws := strings.Fields(words)
	line := func(s string) { b.WriteString(s); b.WriteString("\r\n") }
	var tail string
	if html {
		line("<!DOCTYPE html>")
		line("<html><head><meta charset=\"utf-8\"><title>Benchmark newsletter</title></head>")
		line("<body style=\"font-family:sans-serif\">")
		line("<h1>Benchmark newsletter</h1>")
		tail = "</body></html>\r\n"
	}
	// Reserve room for links so they are spread through the whole body.
	linkLen := 0
	if html && links > 0 {
		linkLen = len(anchor(0)) + 2
	}
	textBudget := max(size-b.Len()-len(tail)-links*linkLen, 0)
	interval := math.MaxInt
	if html && links > 0 {
		interval = max(textBudget/(links+1), 1)
	}
	written, wi, linkN, sinceLink := 0, 0, 0, 0
	cur := strings.Builder{}
	if html {
		cur.WriteString("<p>")
	}
	flush := func() {
		if cur.Len() > 0 {
			line(cur.String())
			written += cur.Len() + 2
			sinceLink += cur.Len() + 2
			cur.Reset()
		}
	}
	for written < textBudget {
		w := ws[wi%len(ws)]
		wi++
		if cur.Len()+len(w)+1 > 76 {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(w)
		if html && linkN < links && sinceLink >= interval {
			flush()
			line(anchor(linkN))
			linkN++
			sinceLink = 0
		}
	}
	flush()
	for html && linkN < links {
		line(anchor(linkN))
		linkN++
	}
	if html {
		line("</p>")
		b.WriteString(tail)
	}
	return b.Bytes()
}

func anchor(i int) string {
	return fmt.Sprintf("<a href=\"https://www.example.com/offer/%04d?utm_source=bench\">offer %04d</a>", i, i)
}

// header returns the header section of message seq, ending with the blank line.
// With a runID (-ledger) it carries the message's unique id in idHeader.
func header(c *config, seq int64, pid int, runID string, rcpts []string) []byte {
	var b bytes.Buffer
	now := time.Now()
	fmt.Fprintf(&b, "From: Loadgen <%s>\r\n", c.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(rcpts, ", "))
	fmt.Fprintf(&b, "Subject: loadgen message %d\r\n", seq)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%d.%d@loadgen.bench>\r\n", now.UnixNano(), pid, seq)
	b.WriteString("MIME-Version: 1.0\r\n")
	if c.HTML {
		b.WriteString("Content-Type: text/html; charset=utf-8\r\n")
	} else {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	}
	b.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	if runID != "" {
		fmt.Fprintf(&b, "%s: %s\r\n", idHeader, ledgerID(runID, seq))
	}
	for _, h := range c.Headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
