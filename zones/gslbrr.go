package zones

import (
	"errors"
	"strings"

	"github.com/miekg/dns"
)

// TypeGSLB is the private-use RR type (RFC 6895 §3.1) under which miekg/dns's
// zone parser reads GSLB records, so a whole zone file goes through one
// parser. It never appears on the wire: GSLB records are answered as A, AAAA
// or CNAME records.
const TypeGSLB uint16 = 65300

func init() {
	dns.PrivateHandle("GSLB", TypeGSLB, func() dns.PrivateRdata { return new(gslbRdata) })
}

// gslbRdata is the text of a GSLB record: the policy and its key=value options.
type gslbRdata struct {
	fields []string
}

func (r *gslbRdata) String() string { return strings.Join(r.fields, " ") }

func (r *gslbRdata) Parse(tokens []string) error {
	if len(tokens) == 0 {
		return errors.New("GSLB record needs a policy")
	}
	r.fields = append([]string(nil), tokens...)
	return nil
}

func (r *gslbRdata) Pack(buf []byte) (int, error) {
	s := r.String()
	if len(buf) < len(s) {
		return 0, dns.ErrBuf
	}
	return copy(buf, s), nil
}

func (r *gslbRdata) Unpack(buf []byte) (int, error) {
	r.fields = strings.Fields(string(buf))
	return len(buf), nil
}

func (r *gslbRdata) Copy(dst dns.PrivateRdata) error {
	d, ok := dst.(*gslbRdata)
	if !ok {
		return dns.ErrRdata
	}
	d.fields = append([]string(nil), r.fields...)
	return nil
}

func (r *gslbRdata) Len() int { return len(r.String()) }
