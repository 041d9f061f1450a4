// A small MIME reader for the email view: it finds the first text/html and
// text/plain parts of a message (GET /v1/emails/{id}/content) and decodes
// them (quoted-printable, base64, the part's charset). It reads a binary
// string: one character per octet, as bytesToBinary makes.

const maxDepth = 10;

export function bytesToBinary(buf) {
  const bytes = new Uint8Array(buf);
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return out;
}

export function textParts(raw) {
  const out = { html: null, text: null };
  walk(raw, out, 0);
  return out;
}

function split(s) {
  const m = /\r?\n\r?\n/.exec(s);
  if (!m) return { headers: parseHeaders(s), body: "" };
  return { headers: parseHeaders(s.slice(0, m.index)), body: s.slice(m.index + m[0].length) };
}

function parseHeaders(head) {
  const headers = new Map();
  for (const line of head.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(i + 1).trim());
  }
  return headers;
}

export function param(value, name) {
  const re = new RegExp(";\\s*" + name + "\\s*=\\s*(?:\"([^\"]*)\"|([^;\\s]+))", "i");
  const m = re.exec(value || "");
  return m ? (m[1] !== undefined ? m[1] : m[2]) : "";
}

function walk(s, out, depth) {
  if (depth > maxDepth) return;
  const { headers, body } = split(s);
  const ct = headers.get("content-type") || "text/plain";
  const type = ct.split(";")[0].trim().toLowerCase();
  const attachment = /^\s*attachment/i.test(headers.get("content-disposition") || "");
  if (type.startsWith("multipart/")) {
    const boundary = param(ct, "boundary");
    if (!boundary) return;
    const parts = body.split(new RegExp("\\r?\\n?--" + escapeRe(boundary) + "(?:--)?[ \\t]*(?:\\r?\\n|$)"));
    for (const part of parts.slice(1)) {
      if (part.trim() === "") continue;
      walk(part, out, depth + 1);
      if (out.html !== null && out.text !== null) return;
    }
    return;
  }
  if (attachment) return;
  const cte = (headers.get("content-transfer-encoding") || "").trim().toLowerCase();
  const charset = param(ct, "charset") || "utf-8";
  if (type === "text/html" && out.html === null) out.html = decode(body, cte, charset);
  else if (type === "text/plain" && out.text === null) out.text = decode(body, cte, charset);
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function decode(body, cte, charset) {
  let bin = body;
  if (cte === "quoted-printable") {
    bin = body.replace(/=\r?\n/g, "").replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  } else if (cte === "base64") {
    try { bin = atob(body.replace(/[^A-Za-z0-9+/=]/g, "")); } catch { bin = ""; }
  }
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i) & 0xff;
  let dec;
  try { dec = new TextDecoder(charset); } catch { dec = new TextDecoder("utf-8"); }
  return dec.decode(bytes);
}
