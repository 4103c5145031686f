package local

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/ppp/chap"
)

func benchSubscribers(n int) []Subscriber {
	subs := make([]Subscriber, n)
	for i := range subs {
		subs[i] = Subscriber{Name: fmt.Sprintf("user%06d", i), Password: fmt.Sprintf("secret-%06d", i)}
		if i%2 == 0 {
			subs[i].Pool = "pool-a"
		}
		if i%10 == 0 {
			subs[i].Address = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		}
	}
	return subs
}

// BenchmarkTable reports the heap the subscriber table costs per
// configured subscriber (20,000 of them), beyond the configuration's own
// strings.
func BenchmarkTable(b *testing.B) {
	const n = 20000
	subs := benchSubscribers(n)
	b.ReportAllocs()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a, err := New(subs)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/subscriber")
		runtime.KeepAlive(a)
	}
}

// BenchmarkDecideCHAP is one CHAP-MD5 check against a 20,000-entry table.
func BenchmarkDecideCHAP(b *testing.B) {
	subs := benchSubscribers(20000)
	a, err := New(subs)
	if err != nil {
		b.Fatal(err)
	}
	ch := []byte("0123456789abcdef")
	resp := chap.CHAPMD5(7, []byte(subs[1234].Password), ch)
	req := &auth.Request{Method: auth.MethodCHAPMD5, Username: subs[1234].Name, ID: 7, Challenge: ch, Response: resp[:]}
	b.ReportAllocs()
	for b.Loop() {
		res, why := a.Decide(req)
		if !res.Accept {
			b.Fatal(why)
		}
	}
}
