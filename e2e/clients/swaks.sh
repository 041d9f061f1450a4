#!/usr/bin/env bash
# Send an HTML message with a PDF attachment through pigeonpost with swaks.
#   SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [ATTACHMENT] [SMTP_SECURITY=starttls|tls]
#   [SEND_AT]   schedule it: X-SP-Send-At, e.g. "$(date -R -d 'tomorrow 09:00')"
# STARTTLS on the submission port (--tls), or implicit TLS (--tls-on-connect).
set -euo pipefail

# Non-ASCII header text must be an RFC 2047 encoded word.
utf8() { printf '=?UTF-8?B?%s?=' "$(printf '%s' "$1" | base64 -w0)"; }

tls=--tls
[ "${SMTP_SECURITY:-starttls}" = tls ] && tls=--tls-on-connect

schedule=()
[ -n "${SEND_AT:-}" ] && schedule=(--header "X-SP-Send-At: $SEND_AT")

html='<html><body><h1>Hello Zoë</h1><p>Your invoice is attached.</p><p><a href="https://acme.test/account?ref=e2e&amp;lang=fr">View your account</a></p></body></html>'

exec swaks --server "$SMTP_HOST:$SMTP_PORT" "$tls" \
  --auth-user apikey --auth-password "$SMTP_API_KEY" \
  --from "$MAIL_FROM" --to "$MAIL_TO" \
  --header "From: $(utf8 'Acme Café') <$MAIL_FROM>" \
  --header "To: $(utf8 'Zoë Tester') <$MAIL_TO>" \
  --header "Subject: $(utf8 'Your invoice — Café ✓')" \
  --header "X-SP-Track-Opens: true" \
  --header "X-SP-Track-Clicks: true" \
  "${schedule[@]}" \
  --attach-type 'text/html; charset=UTF-8' --attach-body "$html" \
  --attach-type application/pdf --attach-name invoice.pdf \
  --attach "@${ATTACHMENT:-$(dirname "$0")/../fixtures/invoice.pdf}" \
  --timeout 30s
