# Send an HTML message with a PDF attachment through pigeonpost with the mail
# gem, configured exactly as Rails' config.action_mailer.smtp_settings.
#   SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [ATTACHMENT] [SMTP_SECURITY=starttls|tls]
require "mail"

smtp_settings = {
  address: ENV.fetch("SMTP_HOST"),
  port: Integer(ENV.fetch("SMTP_PORT")),
  user_name: "apikey",
  password: ENV.fetch("SMTP_API_KEY"),
  authentication: :plain,
  enable_starttls_auto: true,
  # The gateway in this test has a self-signed certificate; drop this in production.
  openssl_verify_mode: "none",
  open_timeout: 30,
  read_timeout: 30,
  return_response: true,
}
smtp_settings[:tls] = true if ENV["SMTP_SECURITY"] == "tls" # implicit TLS (port 465)

attachment = ENV.fetch("ATTACHMENT") { File.expand_path("../fixtures/invoice.pdf", __dir__) }

mail = Mail.new do
  from    "Acme Café <#{ENV.fetch("MAIL_FROM")}>"
  to      "Zoë Tester <#{ENV.fetch("MAIL_TO")}>"
  subject "Your invoice — Café ✓"
  header["X-SP-Track-Opens"] = "true"
  header["X-SP-Track-Clicks"] = "true"
  html_part do
    content_type "text/html; charset=UTF-8"
    body '<html><body><h1>Hello Zoë</h1><p>Your invoice is attached.</p>' \
         '<p><a href="https://acme.test/account?ref=e2e&amp;lang=fr">View your account</a></p>' \
         "</body></html>"
  end
  add_file filename: "invoice.pdf", content: File.binread(attachment), mime_type: "application/pdf"
end
mail.charset = "UTF-8"
mail.delivery_method :smtp, smtp_settings

begin
  response = mail.deliver!
  puts "sent: #{response.respond_to?(:string) ? response.string.strip : response}"
rescue Net::SMTPError, IOError, SystemCallError, OpenSSL::SSL::SSLError => e
  warn "error: #{e.class}: #{e.message.strip}"
  exit 1
end
