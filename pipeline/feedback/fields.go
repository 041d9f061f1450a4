package feedback

import (
	"bufio"
	"errors"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"unicode"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

const maxDiagnosticBytes = 512

// complaint reads the fields of a message/feedback-report (RFC 5965 section
// 3.1). They form one block; should a sender split them with blank lines, the
// blocks are read as one.
func complaint(blocks []textproto.MIMEHeader) (*Report, error) {
	fields := textproto.MIMEHeader{}
	for _, block := range blocks {
		for name, values := range block {
			fields[name] = append(fields[name], values...)
		}
	}
	feedbackType := firstWord(fields.Get("Feedback-Type"))
	if feedbackType == "" {
		return nil, errors.New("feedback: feedback report without a Feedback-Type")
	}
	rep := &Report{
		Kind:         KindComplaint,
		FeedbackType: feedbackType,
		UserAgent:    clean(fields.Get("User-Agent")),
	}
	for _, rcpt := range fields.Values("Original-Rcpt-To") {
		if len(rep.Recipients) == maxRecipients {
			break
		}
		if addr := address(rcpt); addr != "" {
			rep.Recipients = append(rep.Recipients, Recipient{Address: addr})
		}
	}
	return rep, nil
}

// deliveryStatus reads the blocks of a message/delivery-status (RFC 3464
// section 2.1): the per-message fields, then one block per recipient. A
// block is taken for a recipient's by its Final-Recipient or
// Original-Recipient rather than by its place, so a report with no
// per-message block, or with stray blank lines, still reads right.
func deliveryStatus(blocks []textproto.MIMEHeader) (*Report, error) {
	rep := &Report{Kind: KindDelivery}
	for _, block := range blocks {
		if rep.UserAgent == "" {
			rep.UserAgent = clean(stripType(block.Get("Reporting-MTA")))
		}
		rcpt, ok := recipient(block)
		if !ok {
			continue
		}
		if len(rep.Recipients) == maxRecipients {
			break
		}
		rep.Recipients = append(rep.Recipients, rcpt)
	}
	if len(rep.Recipients) == 0 {
		return nil, errors.New("feedback: delivery-status report without a recipient")
	}
	return rep, nil
}

// recipient reads a per-recipient block; ok is false when it names no address.
func recipient(block textproto.MIMEHeader) (rcpt Recipient, ok bool) {
	rcpt.Address = address(block.Get("Final-Recipient"))
	if rcpt.Address == "" {
		rcpt.Address = address(block.Get("Original-Recipient"))
	}
	if rcpt.Address == "" {
		return Recipient{}, false
	}
	rcpt.Action = firstWord(block.Get("Action"))
	rcpt.Status = parseStatus(block.Get("Status"))
	rcpt.Diagnostic = diagnostic(block.Get("Diagnostic-Code"))
	if rcpt.Action == "failed" && rcpt.Status == ([3]int{}) {
		// Status is required, but a failure without one must still
		// tell a bounce from a deferral: the SMTP reply says.
		rcpt.Status = replyStatus(rcpt.Diagnostic)
	}
	return rcpt, true
}

// address returns the mailbox of a recipient field: its address type
// ("rfc822;") stripped, then the angle brackets around it.
func address(value string) string {
	return strings.TrimSpace(strings.Trim(stripType(value), "<>"))
}

// stripType drops the type a DSN field's value starts with: "rfc822; a@b",
// "dns; mx.example.com", "smtp; 550 ..." (RFC 3464 section 2.1.2). A value
// without one is returned trimmed.
func stripType(value string) string {
	typ, rest, ok := strings.Cut(value, ";")
	if !ok || !isTypeName(strings.TrimSpace(typ)) {
		return strings.TrimSpace(value)
	}
	return strings.TrimSpace(rest)
}

// isTypeName reports whether s can be an address, MTA name or diagnostic
// type: "rfc822", "utf-8", "dns", "smtp", "X-Postfix"...
func isTypeName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// firstWord returns the value of a keyword field such as Action or
// Feedback-Type, cleaned and lower-cased, without a comment that may follow it.
func firstWord(value string) string {
	value = clean(value)
	if i := strings.IndexAny(value, " ("); i >= 0 {
		value = value[:i]
	}
	return strings.ToLower(value)
}

// parseStatus reads a Status field: an RFC 3463 code, which may be followed
// by a comment ("5.1.1 (bad destination mailbox)").
func parseStatus(value string) [3]int {
	value = strings.TrimSpace(value)
	if i := strings.IndexAny(value, " \t("); i >= 0 {
		value = value[:i]
	}
	return statusCode(value)
}

// statusCode parses s as a whole RFC 3463 code, class.subject.detail, the
// class 2, 4 or 5 and the others of one to three digits; {0,0,0} otherwise.
func statusCode(s string) [3]int {
	var code [3]int
	parts := strings.SplitN(s, ".", 4)
	if len(parts) != 3 {
		return [3]int{}
	}
	for i, part := range parts {
		if part == "" || len(part) > 3 || i == 0 && len(part) > 1 || strings.Trim(part, "0123456789") != "" {
			return [3]int{}
		}
		code[i], _ = strconv.Atoi(part)
	}
	if code[0] != 2 && code[0] != 4 && code[0] != 5 {
		return [3]int{}
	}
	return code
}

// replyStatus reads the status of the SMTP reply a diagnostic starts with: its
// enhanced code ("550 5.1.1 ...", Gmail's "550-5.1.1 ...", old Exchange's
// "550 #5.1.0 ..."), else the class of its basic code ("550 ..." is 5.0.0).
func replyStatus(diagnostic string) [3]int {
	if len(diagnostic) < 3 || strings.Trim(diagnostic[:3], "0123456789") != "" ||
		len(diagnostic) > 3 && diagnostic[3] != ' ' && diagnostic[3] != '-' {
		return [3]int{}
	}
	class := int(diagnostic[0] - '0')
	if class != 2 && class != 4 && class != 5 {
		return [3]int{}
	}
	enhanced := strings.TrimLeft(diagnostic[3:], " -")
	if i := strings.IndexByte(enhanced, ' '); i >= 0 {
		enhanced = enhanced[:i]
	}
	enhanced = strings.TrimRight(strings.TrimPrefix(enhanced, "#"), ",:;")
	// The enhanced code must agree with the basic one (RFC 3463 section 2);
	// when it does not, the basic code is the one SMTP acted on.
	if code := statusCode(enhanced); code[0] == class {
		return code
	}
	return [3]int{class, 0, 0}
}

// diagnostic cleans a Diagnostic-Code for storing and showing: its type
// stripped, cut to maxDiagnosticBytes on a character boundary.
func diagnostic(value string) string {
	return strings.TrimSpace(pipeline.Cut(clean(stripType(value)), maxDiagnosticBytes))
}

// clean makes a field value fit to store and show: valid UTF-8, with runs
// of white space — the folds of a long line among them — and control
// characters collapsed to single spaces.
func clean(value string) string {
	words := strings.FieldsFunc(strings.ToValidUTF8(value, "\uFFFD"), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	})
	return strings.Join(words, " ")
}

// readLines reads lines from r, without their LF or CR LF endings, until r
// ends, or, with toBlank, until a blank line. It reads at most limit bytes:
// cut reports that r held more than that, or failed (an encoding error in
// the part, say); the last line, which may be incomplete, is then dropped.
func readLines(r io.Reader, limit int64, toBlank bool) (lines []string, cut bool) {
	br := bufio.NewReader(io.LimitReader(r, limit+1))
	var read int64
	for {
		line, err := br.ReadString('\n')
		read += int64(len(line))
		if read > limit || err != nil && err != io.EOF {
			return lines, true
		}
		if err == io.EOF && line == "" {
			return lines, false
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if toBlank && isBlank(line) {
			return lines, false
		}
		lines = append(lines, line)
		if err == io.EOF {
			return lines, false
		}
	}
}

// lastBlank returns the index of the last blank line, 0 when there is none.
func lastBlank(lines []string) int {
	for i := len(lines) - 1; i > 0; i-- {
		if isBlank(lines[i]) {
			return i
		}
	}
	return 0
}

// isBlank reports whether a line ends a block of fields. A line of white
// space counts: it separates blocks more often than it folds a field.
func isBlank(line string) bool {
	return strings.TrimSpace(line) == ""
}

// fieldBlocks parses lines as blocks of header fields separated by blank
// lines: the form of a message header and of the fields of a report. Folded
// lines are unfolded and field names canonicalized. Lines that are no field
// (no colon, a name that is no token) are skipped, with their continuations:
// a report is read for whatever fields it has.
func fieldBlocks(lines []string) []textproto.MIMEHeader {
	var (
		blocks []textproto.MIMEHeader
		block  textproto.MIMEHeader
		name   string   // of the field being read; "" after a line that is none
		value  []string // its lines, trimmed
	)
	flush := func() {
		if name != "" {
			block.Add(name, strings.TrimSpace(strings.Join(value, " ")))
		}
		name, value = "", nil
	}
	for _, line := range lines {
		switch {
		case isBlank(line):
			flush()
			block = nil
		case line[0] == ' ' || line[0] == '\t':
			if name != "" {
				value = append(value, strings.TrimSpace(line))
			}
		default:
			flush()
			n, v, ok := strings.Cut(line, ":")
			n = strings.TrimRight(n, " \t")
			if !ok || !isFieldName(n) {
				continue
			}
			if block == nil {
				block = textproto.MIMEHeader{}
				blocks = append(blocks, block)
			}
			name, value = textproto.CanonicalMIMEHeaderKey(n), []string{strings.TrimSpace(v)}
		}
	}
	flush()
	return blocks
}

// isFieldName reports whether s is a header field name (RFC 5322 section
// 2.2: printable ASCII but the colon).
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}
