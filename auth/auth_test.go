package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/internal/fault"
)

// blocking answers only when its context ends.
type blocking struct{ started chan struct{} }

func (b blocking) Authenticate(ctx context.Context, req *Request) (*Result, error) {
	close(b.started)
	<-ctx.Done()
	return &Result{Accept: true}, nil // a late answer that must not be delivered
}

type instant struct{}

func (instant) Authenticate(context.Context, *Request) (*Result, error) {
	return &Result{Accept: true}, nil
}

// Async over a plain Authenticator: done once with the answer; a cancel
// delivers context.Canceled at once and the late answer never.
func TestAsyncFallback(t *testing.T) {
	got := make(chan error, 2)
	cancel := Async(instant{}, &Request{Username: "a"}, func(r *Result, err error) {
		if err == nil && (r == nil || !r.Accept) {
			err = errors.New("not accepted")
		}
		got <- err
	})
	if err := <-got; err != nil {
		t.Fatalf("answer: %v", err)
	}
	cancel() // after done: nothing more
	select {
	case err := <-got:
		t.Fatalf("second answer: %v", err)
	default:
	}

	b := blocking{started: make(chan struct{})}
	calls := 0
	cancel = Async(b, &Request{Username: "b"}, func(r *Result, err error) {
		calls++
		got <- err
	})
	<-b.started
	cancel()
	if calls != 1 {
		t.Fatalf("done called %d times by the time cancel returned, want 1", calls)
	}
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("answer after cancel: %v, want context.Canceled", err)
	}
	cancel()
	if calls != 1 {
		t.Fatalf("done called %d times, want 1", calls)
	}
}

type panicking struct{}

func (panicking) Authenticate(context.Context, *Request) (*Result, error) {
	panic("test: a bug in the authenticator")
}

// A panic in a plain Authenticator run by Async fails that request with
// an error; the process goes on.
func TestAsyncAuthenticatorPanics(t *testing.T) {
	before := fault.Total()
	got := make(chan error, 1)
	Async(panicking{}, &Request{Username: "a"}, func(r *Result, err error) { got <- err })
	if err := <-got; err == nil || !strings.Contains(err.Error(), "internal error in the authenticator") {
		t.Fatalf("answer: %v, want an internal error", err)
	}
	if n := fault.Total() - before; n != 1 {
		t.Fatalf("%d panics counted, want 1", n)
	}
}
