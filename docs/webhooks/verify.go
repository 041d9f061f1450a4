// Command verify checks a pigeonpost webhook's signature (Go, standard
// library only): WEBHOOK_SECRET and WEBHOOK_SIGNATURE from the environment,
// the raw body on standard input; exit status 0 when valid.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

const tolerance = 5 * time.Minute

// verifyWebhook reports whether the X-Pigeonpost-Signature header signs
// rawBody (the bytes as received, before any JSON decoding) with the
// endpoint's secret, at a time within 5 minutes of now.
func verifyWebhook(secret, header string, rawBody []byte, now time.Time) bool {
	var timestamp string
	var signatures [][]byte
	for _, part := range strings.Split(header, ",") {
		key, value, ok := strings.Cut(part, "=")
		if !ok {
			return false
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "t" {
			timestamp = value
		}
		if sig, err := hex.DecodeString(value); key == "v1" && err == nil {
			signatures = append(signatures, sig)
		}
	}
	sec, err := strconv.ParseUint(timestamp, 10, 63)
	if err != nil || len(signatures) == 0 {
		return false
	}
	if d := now.Sub(time.Unix(int64(sec), 0)); d > tolerance || d < -tolerance {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(rawBody)
	expected := mac.Sum(nil)
	for _, given := range signatures {
		if hmac.Equal(given, expected) {
			return true
		}
	}
	return false
}

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if !verifyWebhook(os.Getenv("WEBHOOK_SECRET"), os.Getenv("WEBHOOK_SIGNATURE"), body, time.Now()) {
		fmt.Println("invalid")
		os.Exit(1)
	}
	fmt.Println("valid")
}
