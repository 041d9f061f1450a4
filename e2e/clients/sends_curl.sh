#!/usr/bin/env bash
# The sends API with curl, as the Transactional Sends quick start shows it:
# a template with {{tokens}}, one send with personalizations, a batch, the
# reads of a send and of a batch, and a mail client's one-click unsubscribe
# (RFC 8058). Prints the JSON answer of each call on stdout.
#
#   API_URL      the gateway, e.g. http://127.0.0.1:8080 (routes under /api/v1)
#   API_KEY      an API key (pp_live_… or sp_live_…), sent as X-API-Key
#   SENDS_STEP   template | send | batch | send-status | batch-status | unsubscribe
#   MAIL_FROM    template: its from address
#   TEMPLATE_ID  send, batch: the template
#   MAIL_TO      send: an address or a contact id; batch: addresses, space-separated
#   SEND_ID      send-status: the send;  BATCH_ID  batch-status: the batch
#   UNSUBSCRIBE_URL  unsubscribe: the https URL of the List-Unsubscribe header
set -euo pipefail

api="${API_URL:?}/api/v1"
call() { curl -sS --fail-with-body --max-time 30 -H "X-API-Key: ${API_KEY:?}" "$@"; echo; }

case "${SENDS_STEP:?}" in
  template)
    call -H 'Content-Type: application/json' "$api/templates" --data-binary @- <<EOF
{
  "name": "order-shipped",
  "from": "Acme Café <${MAIL_FROM:?}>",
  "subject": "Order {{order_id}} has shipped, {{first_name}}",
  "html": "<p>Hello {{first_name}},</p><p>your order {{order_id}} is on its way: <a href=\"{{tracking_url}}\">track it</a>.</p>",
  "text": "Hello {{first_name}}, your order {{order_id}} is on its way: {{tracking_url}}"
}
EOF
    ;;
  send)
    call -H 'Content-Type: application/json' "$api/sends" --data-binary @- <<EOF
{
  "templateId": "${TEMPLATE_ID:?}",
  "to": "${MAIL_TO:?}",
  "personalizations": {
    "first_name": "Zoë",
    "order_id": "ORD-12345",
    "tracking_url": "https://track.example.com/abc"
  }
}
EOF
    ;;
  batch)
    recipients=() i=0
    for to in ${MAIL_TO:?}; do
      i=$((i + 1))
      recipients+=("{\"to\": \"$to\", \"personalizations\": {\"first_name\": \"Reader $i\", \"order_id\": \"ORD-B$i\", \"tracking_url\": \"https://track.example.com/b$i\"}}")
    done
    body=$(IFS=,; echo "{\"templateId\": \"${TEMPLATE_ID:?}\", \"recipients\": [${recipients[*]}]}")
    call -H 'Content-Type: application/json' "$api/sends/batch" --data-binary "$body"
    ;;
  send-status) call "$api/sends/${SEND_ID:?}" ;;
  batch-status) call "$api/batches/${BATCH_ID:?}" ;;
  unsubscribe)
    # What a mail client posts to the https URL of List-Unsubscribe when
    # List-Unsubscribe-Post is present: no key, no cookie.
    curl -sS --fail-with-body --max-time 30 -X POST -H 'Content-Type: application/x-www-form-urlencoded' \
      --data 'List-Unsubscribe=One-Click' "${UNSUBSCRIBE_URL:?}"
    echo
    ;;
  *) echo "unknown SENDS_STEP $SENDS_STEP" >&2; exit 2 ;;
esac
