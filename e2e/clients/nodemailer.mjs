// Send an HTML message with a PDF attachment through pigeonpost with Nodemailer.
//   SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [ATTACHMENT] [SMTP_SECURITY=starttls|tls]
// secure: false upgrades with STARTTLS (port 587); secure: true is implicit TLS (port 465).
import nodemailer from "nodemailer";

const env = process.env;
const transport = nodemailer.createTransport({
  host: env.SMTP_HOST,
  port: Number(env.SMTP_PORT),
  secure: env.SMTP_SECURITY === "tls",
  auth: { user: "apikey", pass: env.SMTP_API_KEY },
  // The gateway in this test has a self-signed certificate; drop this in production.
  tls: { rejectUnauthorized: false },
});

try {
  const info = await transport.sendMail({
    from: { name: "Acme Café", address: env.MAIL_FROM },
    to: { name: "Zoë Tester", address: env.MAIL_TO },
    subject: "Your invoice — Café ✓",
    html:
      '<html><body><h1>Hello Zoë</h1><p>Your invoice is attached.</p>' +
      '<p><a href="https://acme.test/account?ref=e2e&amp;lang=fr">View your account</a></p>' +
      "</body></html>",
    attachments: [{
      filename: "invoice.pdf",
      path: env.ATTACHMENT ?? new URL("../fixtures/invoice.pdf", import.meta.url).pathname,
      contentType: "application/pdf",
    }],
    headers: { "X-SP-Track-Opens": "true", "X-SP-Track-Clicks": "true" },
  });
  console.log(`sent: ${info.response}`); // 250 2.0.0 Ok: queued as em_…
} catch (err) {
  console.error(`error: ${err.code ?? ""} ${err.responseCode ?? ""} ${err.message}`);
  process.exitCode = 1;
}
