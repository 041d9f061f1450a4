#!/usr/bin/env bash
# Install what `make e2e` needs on Debian/Ubuntu: redis-server and every
# client it runs (curl, swaks, Python, Ruby with the mail gem, PHP with Symfony
# Mailer and PHPMailer, Nodemailer and playwright-core from e2e/package-lock.json,
# chromium for the dashboard). Go and make
# are assumed. Idempotent; run as root or with sudo.
set -euo pipefail
cd "$(dirname "$0")"
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive

packages=(
  redis-server
  curl                            # the sends API's client
  swaks libnet-ssleay-perl        # swaks and its TLS
  python3 python3-dkim            # smtplib; dkimpy, a second DKIM verifier
  ruby ruby-mail                  # the mail gem (what Action Mailer uses)
  php-cli php-mbstring            # PHP
  php-symfony-mailer              # Symfony Mailer (Laravel's mail transport)
  libphp-phpmailer                # PHPMailer
  chromium                        # the dashboard's browser check (playwright-core drives it)
)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

$sudo apt-get update -qq
$sudo apt-get install -y -qq "${packages[@]}" >/dev/null
npm ci --no-audit --no-fund --loglevel=error   # nodemailer, playwright-core into e2e/node_modules
echo "e2e clients installed"
