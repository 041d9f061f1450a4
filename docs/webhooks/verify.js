// Verify a pigeonpost webhook (Node.js, no dependencies).
const crypto = require("node:crypto");

const TOLERANCE_SECONDS = 5 * 60;

// verifyWebhook returns true when the X-Pigeonpost-Signature header signs
// rawBody (a Buffer of the bytes as received, before any JSON parsing) with
// the endpoint's secret, at a time within 5 minutes of now.
function verifyWebhook(secret, header, rawBody, nowSeconds = Math.floor(Date.now() / 1000)) {
  let timestamp = null;
  const signatures = [];
  for (const part of String(header || "").split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) return false;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") timestamp = value;
    if (key === "v1") signatures.push(value);
  }
  if (!/^[0-9]+$/.test(timestamp || "") || signatures.length === 0) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) return false;
  const expected = crypto.createHmac("sha256", secret).update(timestamp + ".").update(rawBody).digest();
  return signatures.some((hex) => {
    const given = Buffer.from(hex, "hex");
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

module.exports = { verifyWebhook };

// As a script: WEBHOOK_SECRET and WEBHOOK_SIGNATURE from the environment,
// the raw body on standard input; exit status 0 when valid.
if (require.main === module) {
  const chunks = [];
  process.stdin.on("data", (chunk) => chunks.push(chunk));
  process.stdin.on("end", () => {
    const ok = verifyWebhook(process.env.WEBHOOK_SECRET, process.env.WEBHOOK_SIGNATURE, Buffer.concat(chunks));
    console.log(ok ? "valid" : "invalid");
    process.exitCode = ok ? 0 : 1;
  });
}
