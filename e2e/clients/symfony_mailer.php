<?php
// Send an HTML message with a PDF attachment through pigeonpost with Symfony
// Mailer, the transport behind Laravel's "smtp" mailer.
//   SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [ATTACHMENT] [SMTP_SECURITY=starttls|tls]
// smtp:// negotiates STARTTLS when offered (port 587); smtps:// is implicit TLS (port 465).
// Laravel: MAIL_MAILER=smtp MAIL_HOST MAIL_PORT MAIL_USERNAME=apikey MAIL_PASSWORD=<key>.

require_once getenv('SYMFONY_MAILER_AUTOLOAD') ?: '/usr/share/php/Symfony/Component/Mailer/autoload.php'; // or vendor/autoload.php

use Symfony\Component\Mailer\Exception\TransportExceptionInterface;
use Symfony\Component\Mailer\Transport;
use Symfony\Component\Mime\Address;
use Symfony\Component\Mime\Email;

$scheme = getenv('SMTP_SECURITY') === 'tls' ? 'smtps' : 'smtp';
// verify_peer=0: the gateway in this test has a self-signed certificate; drop it in production.
$dsn = sprintf('%s://apikey:%s@%s:%d?verify_peer=0', $scheme,
    rawurlencode(getenv('SMTP_API_KEY')), getenv('SMTP_HOST'), (int) getenv('SMTP_PORT'));

$email = (new Email())
    ->from(new Address(getenv('MAIL_FROM'), 'Acme Café'))
    ->to(new Address(getenv('MAIL_TO'), 'Zoë Tester'))
    ->subject('Your invoice — Café ✓')
    ->html('<html><body><h1>Hello Zoë</h1><p>Your invoice is attached.</p>'
        . '<p><a href="https://acme.test/account?ref=e2e&amp;lang=fr">View your account</a></p>'
        . '</body></html>')
    ->attachFromPath(getenv('ATTACHMENT') ?: __DIR__ . '/../fixtures/invoice.pdf', 'invoice.pdf', 'application/pdf');
$email->getHeaders()
    ->addTextHeader('X-SP-Track-Opens', 'true')
    ->addTextHeader('X-SP-Track-Clicks', 'true');

try {
    $sent = Transport::fromDsn($dsn)->send($email); // what Laravel's Mailer calls
    // The reply to the final dot carries pigeonpost's email id.
    preg_match('/250 [^\r\n]*queued as \S+/', $sent->getDebug(), $reply);
    echo 'sent: ' . ($reply[0] ?? $sent->getMessageId()) . "\n";
} catch (TransportExceptionInterface $e) {
    fwrite(STDERR, 'error: ' . get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
