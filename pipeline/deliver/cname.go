package deliver

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// LookupCNAME returns the target (no trailing dot, lower case) of name's
// CNAME record, for tracking domain verification. Only the first link of a
// chain is returned: the owner of name must point it at our tracking host
// itself. A name without a CNAME gives "" and no error; NXDOMAIN is a
// permanent *Error {5,1,2}, failures are temporary {4,4,3}.
func (r *Resolver) LookupCNAME(ctx context.Context, name string) (string, error) {
	qname, err := normalizeName(name)
	if err != nil {
		return "", err
	}
	if r.Addr == "" {
		target, err := net.DefaultResolver.LookupCNAME(ctx, qname)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				return "", nil
			}
			return "", dnsTempError(qname, err)
		}
		target = strings.ToLower(strings.TrimSuffix(target, "."))
		if target == qname { // the system resolver answers the name itself when there is no CNAME
			return "", nil
		}
		return target, nil
	}
	msg, err := r.query(ctx, qname, dns.TypeCNAME)
	if err != nil {
		return "", err
	}
	for _, rr := range msg.Answer {
		if c, ok := rr.(*dns.CNAME); ok && dns.CanonicalName(c.Hdr.Name) == dns.CanonicalName(qname) {
			return strings.ToLower(strings.TrimSuffix(c.Target, ".")), nil
		}
	}
	return "", nil
}
