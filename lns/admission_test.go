package lns

import "testing"

type fakeTunnel struct{ name string }

func (f *fakeTunnel) RetryDeferred(func(int)) bool { return true }

func TestAdmissionFirstComeFirstServed(t *testing.T) {
	a, b, c := &fakeTunnel{"a"}, &fakeTunnel{"b"}, &fakeTunnel{"c"}
	var adm admission
	if !adm.mayAdmit(a) {
		t.Fatal("empty queue refuses a call")
	}
	adm.enqueue(a)
	adm.enqueue(b)
	adm.enqueue(a) // already queued: stays first, once
	if len(adm.queue) != 2 {
		t.Fatalf("queue %d, want 2", len(adm.queue))
	}
	if adm.mayAdmit(c) || adm.mayAdmit(a) {
		t.Fatal("a call took a slot owed to a waiting tunnel")
	}
	if r := adm.next(0); r != nil {
		t.Fatal("woke a tunnel with no free slot")
	}
	if r := adm.next(1); r != a {
		t.Fatalf("woke %v, want a", r)
	}
	if r := adm.next(5); r != nil {
		t.Fatal("second wake while one is under way")
	}
	if !adm.mayAdmit(a) || adm.mayAdmit(b) || adm.mayAdmit(c) {
		t.Fatal("only the tunnel being woken may take slots")
	}
	adm.enqueue(a)  // its own new call while woken: not queued twice
	adm.woken(a, 2) // slots ran out: a goes back to the front
	if r := adm.next(1); r != a {
		t.Fatalf("after a partial wake woke %v, want a again", r)
	}
	adm.woken(a, 0)
	if r := adm.next(1); r != b {
		t.Fatalf("woke %v, want b", r)
	}
	adm.woken(b, 0)
	if len(adm.queue) != 0 || adm.waking != nil || len(adm.queued) != 0 || !adm.mayAdmit(c) {
		t.Fatalf("not empty at the end: %+v", adm)
	}
}

func TestAdmissionRemove(t *testing.T) {
	a, b := &fakeTunnel{"a"}, &fakeTunnel{"b"}
	var adm admission
	adm.enqueue(a)
	adm.enqueue(b)
	adm.remove(a)
	if r := adm.next(1); r != b {
		t.Fatalf("woke %v, want b", r)
	}
	adm.remove(b) // down while being woken
	if adm.waking != nil || !adm.mayAdmit(a) {
		t.Fatal("a removed tunnel still blocks admission")
	}
}
