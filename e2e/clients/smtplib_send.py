"""Send an HTML message with a PDF attachment through pigeonpost with smtplib.

Environment: SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [ATTACHMENT]
[SMTP_SECURITY=starttls|tls]: STARTTLS on the submission port (SMTP +
starttls()), or implicit TLS (SMTP_SSL).
"""

import os
import pathlib
import smtplib
import ssl
import sys
from email.headerregistry import Address
from email.message import EmailMessage

host, port = os.environ["SMTP_HOST"], int(os.environ["SMTP_PORT"])
api_key = os.environ["SMTP_API_KEY"]
attachment = pathlib.Path(os.environ.get(
    "ATTACHMENT", pathlib.Path(__file__).parent.parent / "fixtures" / "invoice.pdf"))

msg = EmailMessage()
msg["From"] = Address("Acme Café", addr_spec=os.environ["MAIL_FROM"])
msg["To"] = Address("Zoë Tester", addr_spec=os.environ["MAIL_TO"])
msg["Subject"] = "Your invoice — Café ✓"
msg["X-SP-Track-Opens"] = "true"
msg["X-SP-Track-Clicks"] = "true"
msg.set_content(
    '<html><body><h1>Hello Zoë</h1><p>Your invoice is attached.</p>'
    '<p><a href="https://acme.test/account?ref=e2e&amp;lang=fr">View your account</a></p>'
    '</body></html>', subtype="html")
msg.add_attachment(attachment.read_bytes(), maintype="application", subtype="pdf",
                   filename="invoice.pdf")

# The gateway in this test has a self-signed certificate. In production use
# ssl.create_default_context() and a certificate your clients trust.
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE

try:
    if os.environ.get("SMTP_SECURITY", "starttls") == "tls":
        server = smtplib.SMTP_SSL(host, port, context=context, timeout=30)
    else:
        server = smtplib.SMTP(host, port, timeout=30)
        server.starttls(context=context)
    with server:
        server.login("apikey", api_key)
        refused = server.send_message(msg)
except smtplib.SMTPResponseException as e:
    print(f"error: {type(e).__name__}: {e.smtp_code} {e.smtp_error.decode(errors='replace')}",
          file=sys.stderr)
    sys.exit(1)
except smtplib.SMTPRecipientsRefused as e:
    print(f"error: recipients refused: {e.recipients}", file=sys.stderr)
    sys.exit(1)
print(f"sent; refused recipients: {refused}")
