// Package mdns makes a Fyr box findable on its LAN without DNS: a small Multicast DNS
// responder (RFC 6762) that answers for <host>.local (A and AAAA) and announces the box's
// services through DNS-SD (RFC 6763): PTR, SRV and TXT records for, say, _matrix._tcp and
// _https._tcp, so clients and browsers on the office network reach https://fyr.local/.
//
// It answers only for its own names; it is not a resolver, nor a browser of other hosts'
// services. Probing (RFC 6762 section 8) renames the host to host-2, host-3 … when another
// machine on the link already answers for the name.
package mdns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Port and groups of Multicast DNS.
const (
	Port = 5353
)

var (
	GroupV4 = netip.MustParseAddr("224.0.0.251")
	GroupV6 = netip.MustParseAddr("ff02::fb")
)

// TTLs as RFC 6762 section 10 recommends: records naming a host (A, AAAA, SRV) live two
// minutes, the others 75 minutes. Legacy unicast answers are capped at ten seconds.
const (
	HostTTL      = 120 * time.Second
	OtherTTL     = 75 * time.Minute
	legacyTTL    = 10 * time.Second
	cacheFlush   = 0x8000 // the top bit of a record's class: this is the whole RRset
	unicastReply = 0x8000 // the top bit of a question's class: reply by unicast (QU)
	maxPacket    = 9000   // RFC 6762 section 17
)

// Service is one DNS-SD service the box offers.
type Service struct {
	// Instance names this box's instance of the service, e.g. "Fyr on fyr". Dots become
	// hyphens: the instance is one DNS label.
	Instance string
	// Type is the service type with its protocol, e.g. "_matrix._tcp" or "_https._tcp".
	Type string
	Port uint16
	// Text are the TXT record's key=value strings, e.g. "server_name=example.org".
	Text []string
}

// Records is the set of records one responder owns. Build it with NewRecords.
type Records struct {
	host     string
	services []Service
	addrs    []netip.Addr
}

// NewRecords checks and holds what a responder announces: host is one label (e.g. "fyr",
// announced as fyr.local), addrs its addresses.
func NewRecords(host string, addrs []netip.Addr, services ...Service) (*Records, error) {
	host = strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(host), "."), ".local")
	if host == "" || strings.Contains(host, ".") || len(host) > 63 {
		return nil, fmt.Errorf("mdns: host %q is not one DNS label", host)
	}
	for i, s := range services {
		s.Instance = strings.ReplaceAll(s.Instance, ".", "-")
		if s.Instance == "" || len(s.Instance) > 63 {
			return nil, fmt.Errorf("mdns: service instance %q must be 1–63 bytes", s.Instance)
		}
		parts := strings.Split(s.Type, ".")
		if len(parts) != 2 || !strings.HasPrefix(parts[0], "_") || (parts[1] != "_tcp" && parts[1] != "_udp") {
			return nil, fmt.Errorf("mdns: service type %q is not _name._tcp or _name._udp", s.Type)
		}
		services[i] = s
	}
	return &Records{host: host, services: services, addrs: addrs}, nil
}

// Host is the host name announced, with ".local.".
func (r *Records) Host() string { return r.host + ".local." }

func (r *Records) typeName(s Service) string     { return s.Type + ".local." }
func (r *Records) instanceName(s Service) string { return s.Instance + "." + s.Type + ".local." }

const servicesName = "_services._dns-sd._udp.local."

// record is one resource record the responder owns.
type record struct {
	name string
	typ  dnsmessage.Type
	// unique records carry the cache-flush bit: nobody else may hold them.
	unique bool
	ttl    time.Duration
	body   dnsmessage.ResourceBody
}

// key identifies a record by name, type and data, for known-answer suppression and
// conflict detection; "" for types the responder never owns.
func key(name string, body dnsmessage.ResourceBody) string {
	var data string
	switch b := body.(type) {
	case *dnsmessage.AResource:
		data = netip.AddrFrom4(b.A).String()
	case *dnsmessage.AAAAResource:
		data = netip.AddrFrom16(b.AAAA).String()
	case *dnsmessage.PTRResource:
		data = strings.ToLower(b.PTR.String())
	case *dnsmessage.SRVResource:
		data = fmt.Sprintf("%d %d %d %s", b.Priority, b.Weight, b.Port, strings.ToLower(b.Target.String()))
	case *dnsmessage.TXTResource:
		data = strings.Join(b.TXT, "\x00")
	default:
		return ""
	}
	return strings.ToLower(name) + " " + typeOf(body).String() + " " + data
}

func typeOf(body dnsmessage.ResourceBody) dnsmessage.Type {
	switch body.(type) {
	case *dnsmessage.AResource:
		return dnsmessage.TypeA
	case *dnsmessage.AAAAResource:
		return dnsmessage.TypeAAAA
	case *dnsmessage.PTRResource:
		return dnsmessage.TypePTR
	case *dnsmessage.SRVResource:
		return dnsmessage.TypeSRV
	case *dnsmessage.TXTResource:
		return dnsmessage.TypeTXT
	}
	return 0
}

// hostRecords are the A and AAAA records of the host.
func (r *Records) hostRecords() []record {
	var out []record
	for _, a := range r.addrs {
		a = a.Unmap()
		if a.Is4() {
			out = append(out, record{r.Host(), dnsmessage.TypeA, true, HostTTL, &dnsmessage.AResource{A: a.As4()}})
		} else if a.Is6() {
			out = append(out, record{r.Host(), dnsmessage.TypeAAAA, true, HostTTL, &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	return out
}

// serviceRecords are one service's PTR, SRV and TXT records.
func (r *Records) serviceRecords(s Service) (ptr, enum, srv, txt record) {
	inst := mustName(r.instanceName(s))
	text := s.Text
	if len(text) == 0 {
		text = []string{""} // a TXT record holds at least one string (RFC 6763 section 6.1)
	}
	ptr = record{r.typeName(s), dnsmessage.TypePTR, false, OtherTTL, &dnsmessage.PTRResource{PTR: inst}}
	enum = record{servicesName, dnsmessage.TypePTR, false, OtherTTL, &dnsmessage.PTRResource{PTR: mustName(r.typeName(s))}}
	srv = record{r.instanceName(s), dnsmessage.TypeSRV, true, HostTTL, &dnsmessage.SRVResource{Port: s.Port, Target: mustName(r.Host())}}
	txt = record{r.instanceName(s), dnsmessage.TypeTXT, true, OtherTTL, &dnsmessage.TXTResource{TXT: text}}
	return ptr, enum, srv, txt
}

// all is every record, for announcements.
func (r *Records) all() []record {
	out := r.hostRecords()
	for _, s := range r.services {
		ptr, enum, srv, txt := r.serviceRecords(s)
		out = append(out, ptr, srv, txt, enum)
	}
	return out
}

// lookup answers one question: the records that answer it, and the additional records
// RFC 6763 section 12 suggests sending along.
func (r *Records) lookup(q dnsmessage.Question) (answers, additional []record) {
	name := strings.ToLower(q.Name.String())
	match := func(t dnsmessage.Type) bool { return q.Type == t || q.Type == dnsmessage.TypeALL }
	if name == r.Host() {
		for _, rec := range r.hostRecords() {
			if match(rec.typ) {
				answers = append(answers, rec)
			}
		}
		return answers, nil
	}
	for _, s := range r.services {
		ptr, enum, srv, txt := r.serviceRecords(s)
		switch name {
		case servicesName:
			if match(dnsmessage.TypePTR) {
				answers = append(answers, enum)
			}
		case strings.ToLower(r.typeName(s)):
			if match(dnsmessage.TypePTR) {
				answers = append(answers, ptr)
				additional = append(additional, srv, txt)
				additional = append(additional, r.hostRecords()...)
			}
		case strings.ToLower(r.instanceName(s)):
			if match(dnsmessage.TypeSRV) {
				answers = append(answers, srv)
				additional = append(additional, r.hostRecords()...)
			}
			if match(dnsmessage.TypeTXT) {
				answers = append(answers, txt)
			}
		}
	}
	return answers, additional
}

// Response is a reply Answer built.
type Response struct {
	// Packet is the encoded reply.
	Packet []byte
	// Unicast: send Packet back to the querier's address, not to the group.
	Unicast bool
}

// ErrNotQuery: the packet is a response or malformed; it is not answered.
var ErrNotQuery = errors.New("mdns: not a query")

// Answer builds the reply to one received packet from a querier on srcPort, or nil when
// nothing in it is ours. Answers the querier already listed as known (with at least half
// their TTL left) are left out (RFC 6762 section 7.1). A query from a port other than 5353
// is a legacy unicast query: it gets a conventional DNS reply, by unicast, with the question
// echoed, its ID and short TTLs (section 6.7). Questions that all carry the QU bit get a
// unicast reply (section 5.4).
func (r *Records) Answer(packet []byte, srcPort int) (*Response, error) {
	var p dnsmessage.Parser
	h, err := p.Start(packet)
	if err != nil || h.Response || h.OpCode != 0 {
		return nil, ErrNotQuery
	}
	questions, err := p.AllQuestions()
	if err != nil {
		return nil, ErrNotQuery
	}
	known := map[string]uint32{}
	for {
		res, err := p.Answer()
		if err != nil {
			break // the end of the section, or a record we cannot read: stop looking
		}
		if k := key(res.Header.Name.String(), res.Body); k != "" {
			known[k] = res.Header.TTL
		}
	}
	legacy := srcPort != Port
	allQU := true
	var answers, additional []record
	seen := map[string]bool{}
	for _, q := range questions {
		if c := q.Class &^ unicastReply; c != dnsmessage.ClassINET && c != dnsmessage.ClassANY {
			continue
		}
		allQU = allQU && q.Class&unicastReply != 0
		ans, add := r.lookup(q)
		for _, rec := range ans {
			k := key(rec.name, rec.body)
			if ttl, ok := known[k]; seen[k] || ok && time.Duration(ttl)*time.Second >= rec.ttl/2 {
				continue
			}
			seen[k] = true
			answers = append(answers, rec)
		}
		additional = append(additional, add...)
	}
	if len(answers) == 0 {
		return nil, nil
	}
	var extra []record
	for _, rec := range additional {
		if k := key(rec.name, rec.body); !seen[k] {
			seen[k] = true
			extra = append(extra, rec)
		}
	}
	hdr := dnsmessage.Header{Response: true, Authoritative: true}
	var echo []dnsmessage.Question
	if legacy {
		hdr.ID = h.ID
		echo = questions
	}
	b, err := build(hdr, echo, answers, extra, nil, func(rec record) (dnsmessage.Class, uint32) {
		if legacy {
			return dnsmessage.ClassINET, uint32(min(rec.ttl, legacyTTL) / time.Second)
		}
		return rec.class(), uint32(rec.ttl / time.Second)
	})
	if err != nil {
		return nil, err
	}
	return &Response{Packet: b, Unicast: legacy || allQU}, nil
}

// class is the record's class with the cache-flush bit for unique records.
func (rec record) class() dnsmessage.Class {
	if rec.unique {
		return dnsmessage.ClassINET | cacheFlush
	}
	return dnsmessage.ClassINET
}

// Announcement is the unsolicited response that announces every record (section 8.3), or
// with goodbye set, withdraws them all with TTL 0 (section 10.1).
func (r *Records) Announcement(goodbye bool) ([]byte, error) {
	return build(dnsmessage.Header{Response: true, Authoritative: true}, nil, r.all(), nil, nil,
		func(rec record) (dnsmessage.Class, uint32) {
			if goodbye {
				return rec.class(), 0
			}
			return rec.class(), uint32(rec.ttl / time.Second)
		})
}

// Probe is the query that asks whether anyone else holds the names: a question of type ANY
// for each unique name, with the records proposed for them in the authority section
// (section 8.1).
func (r *Records) Probe() ([]byte, error) {
	names := []string{r.Host()}
	var proposed []record
	proposed = append(proposed, r.hostRecords()...)
	for _, s := range r.services {
		_, _, srv, txt := r.serviceRecords(s)
		names = append(names, r.instanceName(s))
		proposed = append(proposed, srv, txt)
	}
	var qs []dnsmessage.Question
	for _, n := range names {
		qs = append(qs, dnsmessage.Question{Name: mustName(n), Type: dnsmessage.TypeALL, Class: dnsmessage.ClassINET | unicastReply})
	}
	return build(dnsmessage.Header{}, qs, nil, nil, proposed, func(rec record) (dnsmessage.Class, uint32) {
		return dnsmessage.ClassINET, uint32(rec.ttl / time.Second)
	})
}

// Conflicts reports whether packet is another responder's claim on one of our unique names:
// a response holding a record for the name whose data is not ours. Our own announcements,
// heard back, are no conflict.
func (r *Records) Conflicts(packet []byte) bool {
	var p dnsmessage.Parser
	h, err := p.Start(packet)
	if err != nil || !h.Response {
		return false
	}
	if p.SkipAllQuestions() != nil {
		return false
	}
	unique := map[string]bool{strings.ToLower(r.Host()): true}
	for _, s := range r.services {
		unique[strings.ToLower(r.instanceName(s))] = true
	}
	ours := map[string]bool{}
	for _, rec := range r.all() {
		ours[key(rec.name, rec.body)] = true
	}
	check := func(res dnsmessage.Resource) bool {
		name := strings.ToLower(res.Header.Name.String())
		k := key(name, res.Body)
		return unique[name] && k != "" && !ours[k]
	}
	for {
		res, err := p.Answer()
		if err != nil {
			break
		}
		if check(res) {
			return true
		}
	}
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return false
	}
	for {
		res, err := p.Additional()
		if err != nil {
			return false
		}
		if check(res) {
			return true
		}
	}
}

// renamed returns the records with "-n" added to the host and " (n)" to every instance,
// the way out of a conflict (section 9).
func (r *Records) renamed(n int) *Records {
	out := &Records{host: fmt.Sprintf("%s-%d", r.host, n), addrs: r.addrs}
	for _, s := range r.services {
		s.Instance = fmt.Sprintf("%s (%d)", s.Instance, n)
		out.services = append(out.services, s)
	}
	return out
}

// build encodes a message. classTTL gives each answer and additional record its class and
// TTL; authority records are proposed records of a probe and carry no cache-flush bit.
func build(h dnsmessage.Header, questions []dnsmessage.Question, answers, additional, authority []record,
	classTTL func(record) (dnsmessage.Class, uint32)) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, q := range questions {
		if err := b.Question(q); err != nil {
			return nil, err
		}
	}
	sections := []struct {
		start   func() error
		records []record
		ct      func(record) (dnsmessage.Class, uint32)
	}{
		{b.StartAnswers, answers, classTTL},
		{b.StartAuthorities, authority, func(rec record) (dnsmessage.Class, uint32) {
			return dnsmessage.ClassINET, uint32(rec.ttl / time.Second)
		}},
		{b.StartAdditionals, additional, classTTL},
	}
	for _, sec := range sections {
		if err := sec.start(); err != nil {
			return nil, err
		}
		for _, rec := range sec.records {
			class, ttl := sec.ct(rec)
			rh := dnsmessage.ResourceHeader{Name: mustName(rec.name), Class: class, TTL: ttl}
			var err error
			switch body := rec.body.(type) {
			case *dnsmessage.AResource:
				err = b.AResource(rh, *body)
			case *dnsmessage.AAAAResource:
				err = b.AAAAResource(rh, *body)
			case *dnsmessage.PTRResource:
				err = b.PTRResource(rh, *body)
			case *dnsmessage.SRVResource:
				err = b.SRVResource(rh, *body)
			case *dnsmessage.TXTResource:
				err = b.TXTResource(rh, *body)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	out, err := b.Finish()
	if err == nil && len(out) > maxPacket {
		err = fmt.Errorf("mdns: a %d-byte message is over the %d bytes mDNS allows", len(out), maxPacket)
	}
	return out, err
}

// mustName converts a name the package built itself; NewRecords bounds every part.
func mustName(s string) dnsmessage.Name {
	n, err := dnsmessage.NewName(s)
	if err != nil {
		panic(fmt.Sprintf("mdns: name %q: %v", s, err))
	}
	return n
}
