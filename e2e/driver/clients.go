package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// client is one mail library or tool, run as a user would run it: a
// snippet from e2e/clients reading its settings from the environment.
type client struct {
	name    string // in check lines and recipient addresses
	cmd     func(root string) []string
	modes   []string // "starttls" (submission port) and/or "tls" (implicit TLS port)
	install string   // what to run when it is missing
	// missing reports why the client cannot run here ("" when it can).
	missing func(root string) string
	// version is a command printing the client's version, for the record.
	version []string
	// sends: an HTTP client of the sends API (env.sendsAPI), not an SMTP one.
	sends bool
	// sendAt: the snippet sets X-SP-Send-At from SEND_AT (env.sendAt).
	sendAt bool
	// verify: a webhook signature check of docs/webhooks (env.webhooks),
	// not a mail client.
	verify bool
	// browser: the dashboard in a real browser (env.dashboard).
	browser bool
}

const installAll = "e2e/install.sh"

func clients(netsmtpBin, verifyGoBin string) []client {
	symfonyAutoload := envOr("SYMFONY_MAILER_AUTOLOAD", "/usr/share/php/Symfony/Component/Mailer/autoload.php")
	phpmailerAutoload := envOr("PHPMAILER_AUTOLOAD", "/usr/share/php/libphp-phpmailer/autoload.php")
	return []client{
		{
			name:    "swaks",
			cmd:     func(root string) []string { return []string{"bash", filepath.Join(root, "e2e/clients/swaks.sh")} },
			modes:   []string{"starttls", "tls"},
			install: "apt-get install -y swaks",
			missing: func(string) string { return needCommand("swaks") },
			version: []string{"swaks", "--version"},
			sendAt:  true,
		},
		{
			name: "smtplib",
			cmd: func(root string) []string {
				return []string{"python3", filepath.Join(root, "e2e/clients/smtplib_send.py")}
			},
			modes:   []string{"starttls", "tls"},
			install: "apt-get install -y python3",
			missing: func(string) string { return needCommand("python3") },
			version: []string{"python3", "-c", "import sys; print('Python', sys.version.split()[0])"},
		},
		{
			name:    "nodemailer",
			cmd:     func(root string) []string { return []string{"node", filepath.Join(root, "e2e/clients/nodemailer.mjs")} },
			modes:   []string{"starttls", "tls"},
			install: "npm ci --prefix e2e",
			missing: func(root string) string {
				if m := needCommand("node"); m != "" {
					return m
				}
				if _, err := os.Stat(filepath.Join(root, "e2e/node_modules/nodemailer/package.json")); err != nil {
					return "e2e/node_modules/nodemailer is not installed"
				}
				return ""
			},
			version: []string{"node", "-e", `console.log("nodemailer " + require("./e2e/node_modules/nodemailer/package.json").version + ", node " + process.version)`},
		},
		{
			name: "mail-gem",
			cmd: func(root string) []string {
				return []string{"ruby", filepath.Join(root, "e2e/clients/actionmailer.rb")}
			},
			modes:   []string{"starttls", "tls"},
			install: "apt-get install -y ruby ruby-mail",
			missing: func(string) string {
				if m := needCommand("ruby"); m != "" {
					return m
				}
				if out, err := exec.Command("ruby", "-e", `require "mail"`).CombinedOutput(); err != nil {
					return "ruby cannot load the mail gem: " + truncate(string(out), 120)
				}
				return ""
			},
			version: []string{"ruby", "-rmail", "-rnet/smtp", "-e", `puts "mail #{Mail::VERSION.version}, net-smtp #{Net::SMTP::VERSION}, ruby #{RUBY_VERSION}"`},
		},
		{
			name: "symfony-mailer",
			cmd: func(root string) []string {
				return []string{"php", filepath.Join(root, "e2e/clients/symfony_mailer.php")}
			},
			modes:   []string{"starttls", "tls"},
			install: "apt-get install -y php-cli php-symfony-mailer",
			missing: func(string) string {
				if m := needCommand("php"); m != "" {
					return m
				}
				return needFile(symfonyAutoload)
			},
			version: []string{"php", "-r", `require $argv[1]; echo "symfony/mailer ", class_exists('Composer\InstalledVersions') ? Composer\InstalledVersions::getPrettyVersion('symfony/mailer') : trim(@shell_exec('dpkg-query -W -f \'${Version}\' php-symfony-mailer') ?? '?'), ", PHP ", PHP_VERSION, "\n";`, symfonyAutoload},
		},
		{
			name:    "phpmailer",
			cmd:     func(root string) []string { return []string{"php", filepath.Join(root, "e2e/clients/phpmailer.php")} },
			modes:   []string{"starttls", "tls"},
			install: "apt-get install -y php-cli libphp-phpmailer",
			missing: func(string) string {
				if m := needCommand("php"); m != "" {
					return m
				}
				return needFile(phpmailerAutoload)
			},
			version: []string{"php", "-r", `require $argv[1]; echo "PHPMailer ", PHPMailer\PHPMailer\PHPMailer::VERSION, ", PHP ", PHP_VERSION, "\n";`, phpmailerAutoload},
		},
		{
			name:    "net-smtp",
			cmd:     func(string) []string { return []string{netsmtpBin} },
			modes:   []string{"starttls", "tls"},
			install: "go build -o BIN ./e2e/clients (e2e/run.sh does this)",
			missing: func(string) string { return needFile(netsmtpBin) },
			version: []string{"go", "version"},
		},
		{
			name:    "sends-curl",
			cmd:     func(root string) []string { return []string{"bash", filepath.Join(root, "e2e/clients/sends_curl.sh")} },
			install: "apt-get install -y curl",
			missing: func(string) string { return needCommand("curl") },
			version: []string{"sh", "-c", "curl --version | awk 'NR == 1 { print $1, $2 }'"},
			sends:   true,
		},
		{
			name:    "dashboard-chromium",
			cmd:     func(root string) []string { return []string{"node", filepath.Join(root, "e2e/clients/dashboard.mjs")} },
			install: "apt-get install -y chromium && npm ci --prefix e2e",
			missing: func(root string) string {
				if m := needCommand("node"); m != "" {
					return m
				}
				if m := needFile(chromiumPath()); m != "" {
					return m
				}
				return needFile(filepath.Join(root, "e2e/node_modules/playwright-core/package.json"))
			},
			version: []string{"sh", "-c", `"$0" --version 2>/dev/null; node -e 'console.log("playwright-core " + require("./e2e/node_modules/playwright-core/package.json").version)'`, chromiumPath()},
			browser: true,
		},
		// The receivers' signature checks that docs/tracking.md quotes.
		{
			name:    "verify-node",
			cmd:     func(root string) []string { return []string{"node", filepath.Join(root, "docs/webhooks/verify.js")} },
			install: "apt-get install -y nodejs",
			missing: func(string) string { return needCommand("node") },
			version: []string{"node", "--version"},
			verify:  true,
		},
		{
			name:    "verify-python",
			cmd:     func(root string) []string { return []string{"python3", filepath.Join(root, "docs/webhooks/verify.py")} },
			install: "apt-get install -y python3",
			missing: func(string) string { return needCommand("python3") },
			version: []string{"python3", "--version"},
			verify:  true,
		},
		{
			name:    "verify-php",
			cmd:     func(root string) []string { return []string{"php", filepath.Join(root, "docs/webhooks/verify.php")} },
			install: "apt-get install -y php-cli",
			missing: func(string) string { return needCommand("php") },
			version: []string{"php", "-r", `echo "PHP ", PHP_VERSION, "\n";`},
			verify:  true,
		},
		{
			name:    "verify-go",
			cmd:     func(string) []string { return []string{verifyGoBin} },
			install: "go build -o BIN ./docs/webhooks (e2e/run.sh does this)",
			missing: func(string) string { return needFile(verifyGoBin) },
			version: []string{"go", "version"},
			verify:  true,
		},
	}
}

// chromiumPath is the browser the dashboard check drives: Debian's
// chromium, or $CHROMIUM.
func chromiumPath() string { return envOr("CHROMIUM", "/usr/bin/chromium") }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func needCommand(name string) string {
	if _, err := exec.LookPath(name); err != nil {
		return name + " is not on PATH"
	}
	return ""
}

func needFile(path string) string {
	if _, err := os.Stat(path); err != nil {
		return path + " is missing"
	}
	return ""
}

// clientRun is the outcome of one client process.
type clientRun struct {
	exitErr  error // nil: exit status 0
	output   string
	elapsed  time.Duration
	timedOut bool
	logFile  string
}

// runClient runs c with env added to the driver's environment, keeping its
// output in logDir/label.log.
func runClient(ctx context.Context, root, logDir, label string, c client, env map[string]string, timeout time.Duration) clientRun {
	return runClientInput(ctx, root, logDir, label, c, env, nil, timeout)
}

// runClientInput is runClient with stdin on the client's standard input.
func runClientInput(ctx context.Context, root, logDir, label string, c client, env map[string]string, stdin []byte, timeout time.Duration) clientRun {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := c.cmd(root)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.WaitDelay = 2 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := clientRun{exitErr: err, output: string(out), elapsed: time.Since(start), timedOut: errors.Is(ctx.Err(), context.DeadlineExceeded)}
	r.logFile = filepath.Join(logDir, label+".log")
	var envDump []string
	for k, v := range env {
		envDump = append(envDump, k+"="+v)
	}
	_ = os.WriteFile(r.logFile, fmt.Appendf(nil, "$ %s\n# %s\n# exit: %v after %s\n%s",
		strings.Join(args, " "), strings.Join(envDump, " "), err, r.elapsed.Round(time.Millisecond), out), 0o644)
	return r
}

// clientVersion runs c.version from root and returns its first line.
func clientVersion(root string, c client) string {
	if len(c.version) == 0 {
		return ""
	}
	cmd := exec.Command(c.version[0], c.version[1:]...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "version unknown: " + truncate(string(out), 80)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
