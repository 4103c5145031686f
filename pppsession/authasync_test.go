package pppsession

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
)

// fakeAsync is an auth.AsyncAuthenticator over the local authenticator:
// it answers inside AuthenticateAsync (sync) or when the test calls
// answer (from any goroutine); cancel answers with context.Canceled if
// no answer was given, as the contract says.
type fakeAsync struct {
	a    *local.Authenticator
	sync bool

	mu       sync.Mutex
	calls    int
	cancels  int
	done     func(*auth.Result, error)
	req      *auth.Request
	answered bool
}

func (f *fakeAsync) Authenticate(ctx context.Context, req *auth.Request) (*auth.Result, error) {
	return nil, errors.New("the driver must use AuthenticateAsync")
}

func (f *fakeAsync) AuthenticateAsync(req *auth.Request, done func(*auth.Result, error)) func() {
	f.mu.Lock()
	f.calls++
	f.done, f.req = done, req
	f.mu.Unlock()
	if f.sync {
		f.answer()
	}
	return func() {
		f.mu.Lock()
		f.cancels++
		first := !f.answered
		f.answered = true
		f.mu.Unlock()
		if first {
			done(nil, context.Canceled)
		}
	}
}

// answer gives the local authenticator's answer, once.
func (f *fakeAsync) answer() {
	f.mu.Lock()
	if f.answered {
		f.mu.Unlock()
		return
	}
	f.answered = true
	done, req := f.done, f.req
	f.mu.Unlock()
	res, err := f.a.Authenticate(context.Background(), req)
	done(res, err)
}

// An answer given inside AuthenticateAsync (on the tunnel goroutine) is
// handled at once, without posting to the tunnel goroutine (which could
// block it on its own queue).
func TestAsyncAuthAnsweredInsideTheCall(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	fa := &fakeAsync{a: h.authn.a, sync: true}
	h.env.cfg.Auth = fa
	ns, d, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(10*time.Second, ns, cs)
	if fa.calls != 1 || !d.Address().IsValid() || h.tryPosts != 0 || h.authn.calls != 0 {
		t.Fatalf("async calls %d, address %v, posts %d, Authenticate calls %d", fa.calls, d.Address(), h.tryPosts, h.authn.calls)
	}
}

// An answer from another goroutine reaches the driver through the
// non-blocking post; the subscriber comes up.
func TestAsyncAuthAnsweredLater(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	fa := &fakeAsync{a: h.authn.a}
	h.env.cfg.Auth = fa
	ns, d, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(time.Second, ns, cs)
	if fa.calls != 1 || d.Address().IsValid() {
		t.Fatalf("before the answer: calls %d, address %v", fa.calls, d.Address())
	}
	answered := make(chan struct{})
	go func() { fa.answer(); close(answered) }()
	<-answered
	h.run(10*time.Second, ns, cs)
	if !d.Address().IsValid() || h.tryPosts != 1 {
		t.Fatalf("after the answer: address %v, non-blocking posts %d (want 1)", d.Address(), h.tryPosts)
	}
}

// A session that ends while its authentication is outstanding cancels
// it; the cancellation's own answer is not posted.
func TestAsyncAuthCanceledOnClose(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	fa := &fakeAsync{a: h.authn.a}
	h.env.cfg.Auth = fa
	ns, d, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(time.Second, ns, cs)
	if fa.calls != 1 {
		t.Fatalf("calls %d, want 1", fa.calls)
	}
	d.Close(h.now, "test")
	if fa.cancels != 1 || h.tryPosts != 0 || len(h.posts) != 0 {
		t.Fatalf("cancels %d, posts %d/%d: want 1 cancel and nothing posted", fa.cancels, h.tryPosts, len(h.posts))
	}
	fa.answer() // too late: ignored
	if h.tryPosts != 0 {
		t.Fatal("an answer after cancel was posted")
	}
}
