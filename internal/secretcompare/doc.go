// Package secretcompare holds no code: its test reads the module's Go
// sources and fails where a secret (a MAC, a signature, a key, a digest)
// is compared with == or bytes.Equal instead of in constant time
// (hmac.Equal, subtle.ConstantTimeCompare): CWE-208.
package secretcompare
