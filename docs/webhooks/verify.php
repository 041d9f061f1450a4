<?php
// Verify a pigeonpost webhook (PHP 7.4 or later, no extensions beyond the defaults).

const PIGEONPOST_TOLERANCE_SECONDS = 5 * 60;

// True when the X-Pigeonpost-Signature header signs $rawBody (the bytes as
// received, file_get_contents('php://input'), before any JSON decoding) with
// the endpoint's secret, at a time within 5 minutes of now.
function pigeonpost_verify_webhook(string $secret, string $header, string $rawBody, ?int $now = null): bool
{
    $timestamp = null;
    $signatures = [];
    foreach (explode(',', $header) as $part) {
        $pair = explode('=', $part, 2);
        if (count($pair) !== 2) {
            return false;
        }
        [$key, $value] = [trim($pair[0]), trim($pair[1])];
        if ($key === 't') {
            $timestamp = $value;
        }
        if ($key === 'v1') {
            $signatures[] = strtolower($value);
        }
    }
    if ($timestamp === null || !ctype_digit($timestamp) || $signatures === []) {
        return false;
    }
    if (abs(($now ?? time()) - (int) $timestamp) > PIGEONPOST_TOLERANCE_SECONDS) {
        return false;
    }
    $expected = hash_hmac('sha256', $timestamp . '.' . $rawBody, $secret);
    foreach ($signatures as $given) {
        if (hash_equals($expected, $given)) {
            return true;
        }
    }
    return false;
}

// As a script: WEBHOOK_SECRET and WEBHOOK_SIGNATURE from the environment,
// the raw body on standard input; exit status 0 when valid.
if (PHP_SAPI === 'cli' && realpath($_SERVER['argv'][0] ?? '') === __FILE__) {
    $ok = pigeonpost_verify_webhook((string) getenv('WEBHOOK_SECRET'), (string) getenv('WEBHOOK_SIGNATURE'), (string) file_get_contents('php://stdin'));
    echo $ok ? "valid\n" : "invalid\n";
    exit($ok ? 0 : 1);
}
