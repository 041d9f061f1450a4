package config

import "net/url"

// redacted is the placeholder Redacted puts in place of secrets.
const redacted = "REDACTED"

// Redacted returns a copy of c safe to log: auth.bootstrap_key,
// tracking.secret, redis.password and the password in redis.url (including a "password"
// query parameter) are replaced by "REDACTED". Empty secrets stay empty, so
// the log still shows whether one was set. A redis.url that does not parse
// is replaced entirely.
func (c Config) Redacted() Config {
	if c.Auth.BootstrapKey != "" {
		c.Auth.BootstrapKey = redacted
	}
	if c.Tracking.Secret != "" {
		c.Tracking.Secret = redacted
	}
	if c.Redis.URL != "" {
		c.Redis.URL = redactURL(c.Redis.URL)
	}
	if c.Redis.Password != "" {
		c.Redis.Password = redacted
	}
	return c
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redacted)
		u.RawQuery = q.Encode()
	}
	return u.String()
}
