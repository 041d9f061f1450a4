// Package deliver hands queued messages to destination mail servers: MX
// lookup through a configured resolver, DKIM signing, SMTP transfer with
// opportunistic STARTTLS, and the classification of replies into delivered,
// retry and bounce.
package deliver
