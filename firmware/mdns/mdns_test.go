package mdns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var testAddrs = []netip.Addr{netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("fe80::1")}

func testRecords(t *testing.T) *Records {
	t.Helper()
	r, err := NewRecords("fyr", testAddrs,
		Service{Instance: "Fyr on fyr", Type: "_matrix._tcp", Port: 8448, Text: []string{"server_name=box.example.org"}},
		Service{Instance: "Fyr on fyr", Type: "_https._tcp", Port: 443})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// query builds a query packet.
func query(t *testing.T, id uint16, qs []dnsmessage.Question, known ...dnsmessage.Resource) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id})
	b.StartQuestions()
	for _, q := range qs {
		b.Question(q)
	}
	b.StartAnswers()
	for _, k := range known {
		switch body := k.Body.(type) {
		case *dnsmessage.PTRResource:
			b.PTRResource(k.Header, *body)
		case *dnsmessage.AResource:
			b.AResource(k.Header, *body)
		}
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func q(name string, typ dnsmessage.Type) dnsmessage.Question {
	return dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}
}

// dump renders a message as one line per record: "section name type data ttl=N [flush]".
func dump(t *testing.T, packet []byte) (dnsmessage.Header, []string) {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(packet); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	var out []string
	for _, qq := range m.Questions {
		out = append(out, fmt.Sprintf("question %s %s class=%#x", qq.Name, qq.Type, uint16(qq.Class)))
	}
	for _, sec := range []struct {
		name string
		rs   []dnsmessage.Resource
	}{{"answer", m.Answers}, {"authority", m.Authorities}, {"additional", m.Additionals}} {
		for _, r := range sec.rs {
			flush := ""
			if r.Header.Class&cacheFlush != 0 {
				flush = " flush"
			}
			k := key(r.Header.Name.String(), r.Body)
			out = append(out, fmt.Sprintf("%s %s ttl=%d%s", sec.name, k, r.Header.TTL, flush))
		}
	}
	return m.Header, out
}

func TestAnswerHost(t *testing.T) {
	r := testRecords(t)
	for _, c := range []struct {
		question dnsmessage.Question
		want     []string
	}{
		{q("fyr.local.", dnsmessage.TypeA), []string{"answer fyr.local. TypeA 192.168.1.10 ttl=120 flush"}},
		{q("FYR.Local.", dnsmessage.TypeAAAA), []string{"answer fyr.local. TypeAAAA fe80::1 ttl=120 flush"}},
		{q("fyr.local.", dnsmessage.TypeALL), []string{"answer fyr.local. TypeA 192.168.1.10 ttl=120 flush", "answer fyr.local. TypeAAAA fe80::1 ttl=120 flush"}},
	} {
		resp, err := r.Answer(query(t, 0, []dnsmessage.Question{c.question}), Port)
		if err != nil || resp == nil {
			t.Fatalf("Answer(%v) = %v, %v", c.question, resp, err)
		}
		h, got := dump(t, resp.Packet)
		if !h.Response || !h.Authoritative || h.ID != 0 || resp.Unicast {
			t.Errorf("Answer(%v) header %+v, unicast %v", c.question, h, resp.Unicast)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Answer(%v):\n%s\nwant:\n%s", c.question, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
	for _, other := range []dnsmessage.Question{q("other.local.", dnsmessage.TypeA), q("fyr.local.", dnsmessage.TypeMX),
		q("_ipp._tcp.local.", dnsmessage.TypePTR)} {
		if resp, err := r.Answer(query(t, 0, []dnsmessage.Question{other}), Port); resp != nil || err != nil {
			t.Errorf("Answer(%v) = %v, %v; want silence", other, resp, err)
		}
	}
}

func TestAnswerServices(t *testing.T) {
	r := testRecords(t)
	resp, err := r.Answer(query(t, 0, []dnsmessage.Question{q("_matrix._tcp.local.", dnsmessage.TypePTR)}), Port)
	if err != nil || resp == nil {
		t.Fatalf("Answer(PTR) = %v, %v", resp, err)
	}
	_, got := dump(t, resp.Packet)
	want := []string{
		"answer _matrix._tcp.local. TypePTR fyr on fyr._matrix._tcp.local. ttl=4500",
		"additional fyr on fyr._matrix._tcp.local. TypeSRV 0 0 8448 fyr.local. ttl=120 flush",
		"additional fyr on fyr._matrix._tcp.local. TypeTXT server_name=box.example.org ttl=4500 flush",
		"additional fyr.local. TypeA 192.168.1.10 ttl=120 flush",
		"additional fyr.local. TypeAAAA fe80::1 ttl=120 flush",
	}
	if !slices.Equal(got, want) {
		t.Errorf("browse answer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	resp, _ = r.Answer(query(t, 0, []dnsmessage.Question{q("_services._dns-sd._udp.local.", dnsmessage.TypePTR)}), Port)
	_, got = dump(t, resp.Packet)
	want = []string{
		"answer _services._dns-sd._udp.local. TypePTR _matrix._tcp.local. ttl=4500",
		"answer _services._dns-sd._udp.local. TypePTR _https._tcp.local. ttl=4500",
	}
	if !slices.Equal(got, want) {
		t.Errorf("service enumeration:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	resp, _ = r.Answer(query(t, 0, []dnsmessage.Question{q("Fyr on fyr._https._tcp.local.", dnsmessage.TypeSRV)}), Port)
	_, got = dump(t, resp.Packet)
	if len(got) != 3 || got[0] != "answer fyr on fyr._https._tcp.local. TypeSRV 0 0 443 fyr.local. ttl=120 flush" {
		t.Errorf("SRV answer:\n%s", strings.Join(got, "\n"))
	}
}

func TestKnownAnswerSuppression(t *testing.T) {
	r := testRecords(t)
	ptr := func(ttl uint32) dnsmessage.Resource {
		return dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("_matrix._tcp.local."), Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: ttl},
			Body:   &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName("Fyr on fyr._matrix._tcp.local.")},
		}
	}
	browse := []dnsmessage.Question{q("_matrix._tcp.local.", dnsmessage.TypePTR)}
	if resp, _ := r.Answer(query(t, 0, browse, ptr(4000)), Port); resp != nil {
		t.Error("answered although the querier knows the PTR with most of its TTL left")
	}
	if resp, _ := r.Answer(query(t, 0, browse, ptr(100)), Port); resp == nil {
		t.Error("silent although the querier's copy of the PTR is about to expire")
	}
}

func TestLegacyAndUnicastQueries(t *testing.T) {
	r := testRecords(t)
	resp, err := r.Answer(query(t, 4321, []dnsmessage.Question{q("fyr.local.", dnsmessage.TypeA)}), 53211)
	if err != nil || resp == nil || !resp.Unicast {
		t.Fatalf("legacy query: %+v, %v; want a unicast reply", resp, err)
	}
	h, got := dump(t, resp.Packet)
	want := []string{"question fyr.local. TypeA class=0x1", "answer fyr.local. TypeA 192.168.1.10 ttl=10"}
	if h.ID != 4321 || !slices.Equal(got, want) {
		t.Errorf("legacy reply ID %d:\n%s\nwant ID 4321:\n%s", h.ID, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	qu := q("fyr.local.", dnsmessage.TypeA)
	qu.Class |= unicastReply
	resp, _ = r.Answer(query(t, 0, []dnsmessage.Question{qu}), Port)
	if resp == nil || !resp.Unicast {
		t.Errorf("QU question: %+v; want a unicast reply", resp)
	}

	ann, _ := r.Announcement(false)
	if resp, err := r.Answer(ann, Port); resp != nil || err != ErrNotQuery {
		t.Errorf("Answer(a response) = %v, %v; want ErrNotQuery", resp, err)
	}
	if resp, err := r.Answer([]byte{1, 2, 3}, Port); resp != nil || err != ErrNotQuery {
		t.Errorf("Answer(garbage) = %v, %v; want ErrNotQuery", resp, err)
	}
}

func TestAnnouncementProbeAndConflicts(t *testing.T) {
	r := testRecords(t)
	ann, err := r.Announcement(false)
	if err != nil {
		t.Fatal(err)
	}
	_, got := dump(t, ann)
	if len(got) != 2+2*4 {
		t.Errorf("announcement holds %d records, want 10:\n%s", len(got), strings.Join(got, "\n"))
	}
	bye, _ := r.Announcement(true)
	_, got = dump(t, bye)
	for _, l := range got {
		if !strings.Contains(l, " ttl=0") {
			t.Errorf("goodbye record with a TTL: %s", l)
		}
	}

	probe, _ := r.Probe()
	h, got := dump(t, probe)
	if h.Response || !slices.Contains(got, "question fyr.local. TypeALL class=0x8001") ||
		!slices.Contains(got, "authority fyr.local. TypeA 192.168.1.10 ttl=120") {
		t.Errorf("probe:\n%s", strings.Join(got, "\n"))
	}

	if r.Conflicts(ann) {
		t.Error("our own announcement counts as a conflict")
	}
	if r.Conflicts(probe) {
		t.Error("a query counts as a conflict")
	}
	other, _ := NewRecords("fyr", []netip.Addr{netip.MustParseAddr("192.168.1.99")})
	theirs, _ := other.Announcement(false)
	if !r.Conflicts(theirs) {
		t.Error("another host announcing fyr.local is no conflict")
	}
	unrelated, _ := NewRecords("printer", []netip.Addr{netip.MustParseAddr("192.168.1.99")})
	if b, _ := unrelated.Announcement(false); r.Conflicts(b) {
		t.Error("printer.local conflicts with fyr.local")
	}
	if got := r.renamed(2).Host(); got != "fyr-2.local." {
		t.Errorf("renamed host = %s", got)
	}
}

func TestNewRecordsRefusals(t *testing.T) {
	for _, c := range []struct {
		host string
		svc  Service
	}{
		{"fyr.example", Service{Instance: "x", Type: "_matrix._tcp"}},
		{"", Service{Instance: "x", Type: "_matrix._tcp"}},
		{"fyr", Service{Instance: "x", Type: "matrix"}},
		{"fyr", Service{Instance: "x", Type: "_matrix._sctp"}},
		{"fyr", Service{Instance: "", Type: "_matrix._tcp"}},
	} {
		if _, err := NewRecords(c.host, nil, c.svc); err == nil {
			t.Errorf("NewRecords(%q, %+v) succeeded", c.host, c.svc)
		}
	}
	r, err := NewRecords("FYR.local", nil, Service{Instance: "Fyr on box.example.org", Type: "_matrix._tcp", Port: 1})
	if err != nil || r.Host() != "fyr.local." || r.services[0].Instance != "Fyr on box-example-org" {
		t.Errorf("NewRecords = %+v, %v", r, err)
	}
}

// fakeConn is a socket whose traffic the test sees and injects.
type fakeConn struct {
	in   chan []byte
	out  chan []byte
	done chan struct{}
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 8), out: make(chan []byte, 64), done: make(chan struct{})}
}

func (f *fakeConn) read(b []byte) (int, int, netip.AddrPort, error) {
	select {
	case p := <-f.in:
		return copy(b, p), 1, netip.MustParseAddrPort("192.168.1.20:5353"), nil
	case <-f.done:
		return 0, 0, netip.AddrPort{}, context.Canceled
	}
}

func (f *fakeConn) send(b []byte, _ int, _ netip.AddrPort) error {
	f.out <- append([]byte(nil), b...)
	return nil
}

func (f *fakeConn) interfaces() []int { return []int{1} }
func (f *fakeConn) close() error      { close(f.done); return nil }

// next waits for the responder's next packet.
func (f *fakeConn) next(t *testing.T) (dnsmessage.Header, []string) {
	t.Helper()
	select {
	case p := <-f.out:
		return dump(t, p)
	case <-time.After(10 * time.Second):
		t.Fatal("the responder sent nothing")
	}
	return dnsmessage.Header{}, nil
}

func TestResponderRun(t *testing.T) {
	fc := newFakeConn()
	rs := &Responder{Host: "fyr", Addrs: func(int) []netip.Addr { return testAddrs[:1] },
		Services: []Service{{Instance: "Fyr", Type: "_matrix._tcp", Port: 8448}},
		listen:   func() ([]conn, error) { return []conn{fc}, nil }, probeWait: time.Millisecond, announceWait: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rs.Run(ctx) }()

	// The first probe; another host claims fyr.local, so the responder moves to fyr-2.
	if h, got := fc.next(t); h.Response || !slices.Contains(got, "question fyr.local. TypeALL class=0x8001") {
		t.Fatalf("first packet is not a probe for fyr.local:\n%s", strings.Join(got, "\n"))
	}
	other, _ := NewRecords("fyr", []netip.Addr{netip.MustParseAddr("192.168.1.99")})
	claim, _ := other.Announcement(false)
	fc.in <- claim
	var got []string
	for {
		var h dnsmessage.Header
		h, got = fc.next(t)
		if h.Response {
			break // the announcement, after three clean probes for the new name
		}
		if !slices.Contains(got, "question fyr.local. TypeALL class=0x8001") && !slices.Contains(got, "question fyr-2.local. TypeALL class=0x8001") {
			t.Fatalf("unexpected query:\n%s", strings.Join(got, "\n"))
		}
	}
	if !slices.Contains(got, "answer fyr-2.local. TypeA 192.168.1.10 ttl=120 flush") {
		t.Fatalf("announcement is not for fyr-2.local:\n%s", strings.Join(got, "\n"))
	}
	if rs.Name() != "fyr-2.local." {
		t.Errorf("Name() = %s", rs.Name())
	}
	fc.next(t) // the second announcement

	fc.in <- query(t, 0, []dnsmessage.Question{q("fyr-2.local.", dnsmessage.TypeA)})
	if _, got := fc.next(t); !slices.Equal(got, []string{"answer fyr-2.local. TypeA 192.168.1.10 ttl=120 flush"}) {
		t.Errorf("answer:\n%s", strings.Join(got, "\n"))
	}

	cancel()
	if _, got := fc.next(t); len(got) == 0 || !strings.Contains(got[0], "ttl=0") {
		t.Errorf("no goodbye on shutdown:\n%s", strings.Join(got, "\n"))
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
