package pipeline

import (
	"fmt"
	"regexp"
	"sort"
	"unicode"
	"unicode/utf8"
)

// Limits of tags and metadata: they are stored on every email record and
// sent in every webhook, so they stay small.
const (
	MaxTags             = 20
	MaxTagLen           = 100
	MaxMetadataKeys     = 50
	MaxMetadataKeyLen   = 40
	MaxMetadataValueLen = 500
	MaxMetadataBytes    = 4096
)

// CheckLabels validates tags and metadata (no control characters, no
// line breaks, in anything a caller gets back or a webhook carries).
func CheckLabels(tags []string, metadata map[string]string) error {
	if len(tags) > MaxTags {
		return ErrInvalid.With(fmt.Sprintf("tags: at most %d tags are allowed (got %d)", MaxTags, len(tags)))
	}
	for i, t := range tags {
		field := fmt.Sprintf("tags[%d]", i)
		if t == "" {
			return ErrInvalid.With(field + ": must not be empty")
		}
		if utf8.RuneCountInString(t) > MaxTagLen {
			return ErrInvalid.With(fmt.Sprintf("%s: must be at most %d characters", field, MaxTagLen))
		}
		if err := CheckPrintable(field, t); err != nil {
			return err
		}
	}
	if len(metadata) > MaxMetadataKeys {
		return ErrInvalid.With(fmt.Sprintf("metadata: at most %d keys are allowed (got %d)", MaxMetadataKeys, len(metadata)))
	}
	keys := make([]string, 0, len(metadata))
	for k := range metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first problem reported is the same every time
	total := 0
	for _, k := range keys {
		v := metadata[k]
		total += len(k) + len(v)
		if k == "" || utf8.RuneCountInString(k) > MaxMetadataKeyLen {
			return ErrInvalid.With(fmt.Sprintf("metadata: key %s must be 1 to %d characters", Quote(k), MaxMetadataKeyLen))
		}
		if err := CheckPrintable("metadata key "+Quote(k), k); err != nil {
			return err
		}
		if utf8.RuneCountInString(v) > MaxMetadataValueLen {
			return ErrInvalid.With(fmt.Sprintf("metadata.%s: must be at most %d characters", k, MaxMetadataValueLen))
		}
		if err := CheckPrintable("metadata."+k, v); err != nil {
			return err
		}
	}
	if total > MaxMetadataBytes {
		return ErrInvalid.With(fmt.Sprintf("metadata: keys and values must total at most %d bytes (got %d)", MaxMetadataBytes, total))
	}
	return nil
}

// CheckPrintable refuses line breaks and other control characters,
// including U+2028/U+2029 and invalid UTF-8.
func CheckPrintable(field, v string) error {
	if !utf8.ValidString(v) {
		return ErrInvalid.With(field + ": must be valid UTF-8")
	}
	for _, r := range v {
		if r == '\r' || r == '\n' {
			return ErrInvalid.With(field + ": must not contain line breaks")
		}
		if (unicode.IsControl(r) && r != '\t') || r == '\u2028' || r == '\u2029' {
			return ErrInvalid.With(field + ": must not contain control characters")
		}
	}
	return nil
}

var domainName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

// ValidDomainName reports whether name is a lower-case host name with a
// top-level domain: a sending domain or a tracking domain.
func ValidDomainName(name string) bool {
	return len(name) <= 253 && domainName.MatchString(name)
}
