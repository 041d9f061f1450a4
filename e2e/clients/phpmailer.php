<?php
// Send an HTML message with a PDF attachment through pigeonpost with PHPMailer.
//   SMTP_HOST SMTP_PORT SMTP_API_KEY MAIL_FROM MAIL_TO [ATTACHMENT] [SMTP_SECURITY=starttls|tls]
// ENCRYPTION_STARTTLS on the submission port (587); ENCRYPTION_SMTPS is implicit TLS (465).

require_once getenv('PHPMAILER_AUTOLOAD') ?: '/usr/share/php/libphp-phpmailer/autoload.php'; // or vendor/autoload.php

use PHPMailer\PHPMailer\Exception;
use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\SMTP;

$mail = new PHPMailer(true); // throw on errors
// PHPMailer's exceptions say what failed ("Could not authenticate.") but not
// the server's reply; keep the replies to show it (and the email id).
$replies = [];
$mail->SMTPDebug = SMTP::DEBUG_SERVER;
$mail->Debugoutput = function ($line) use (&$replies) {
    if (strncmp($line, 'SERVER -> CLIENT: ', 18) === 0) {
        $replies[] = trim(substr($line, 18));
    }
};
try {
    $mail->isSMTP();
    $mail->Host = getenv('SMTP_HOST');
    $mail->Port = (int) getenv('SMTP_PORT');
    $mail->SMTPSecure = getenv('SMTP_SECURITY') === 'tls' ? PHPMailer::ENCRYPTION_SMTPS : PHPMailer::ENCRYPTION_STARTTLS;
    $mail->SMTPAuth = true;
    $mail->Username = 'apikey';
    $mail->Password = getenv('SMTP_API_KEY');
    $mail->Timeout = 30;
    // The gateway in this test has a self-signed certificate; drop this in production.
    $mail->SMTPOptions = ['ssl' => ['verify_peer' => false, 'verify_peer_name' => false, 'allow_self_signed' => true]];

    $mail->CharSet = PHPMailer::CHARSET_UTF8;
    $mail->setFrom(getenv('MAIL_FROM'), 'Acme Café');
    $mail->addAddress(getenv('MAIL_TO'), 'Zoë Tester');
    $mail->Subject = 'Your invoice — Café ✓';
    $mail->isHTML(true);
    $mail->Body = '<html><body><h1>Hello Zoë</h1><p>Your invoice is attached.</p>'
        . '<p><a href="https://acme.test/account?ref=e2e&amp;lang=fr">View your account</a></p>'
        . '</body></html>';
    $mail->addAttachment(getenv('ATTACHMENT') ?: __DIR__ . '/../fixtures/invoice.pdf',
        'invoice.pdf', PHPMailer::ENCODING_BASE64, 'application/pdf');
    $mail->addCustomHeader('X-SP-Track-Opens', 'true');
    $mail->addCustomHeader('X-SP-Track-Clicks', 'true');

    $mail->send();
    // "250 2.0.0 Ok: queued as em_…" is Postfix's reply, which PHPMailer parses.
    echo 'sent: ' . $mail->getSMTPInstance()->getLastTransactionID() . "\n";
} catch (Exception $e) {
    $refusals = preg_grep('/^[45]\d\d[ -]/', $replies);
    fwrite(STDERR, 'error: ' . $e->getMessage() . ' (server: ' . (end($refusals) ?: 'no reply') . ")\n");
    exit(1);
}
