package fault

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func panicky() {
	panic("test: a bug")
}

// A recovered panic is counted and logged once, with the panic value and
// a stack that still shows where it was raised.
func TestRecovered(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	log := zap.New(core)
	before := Total()
	func() {
		defer func() {
			if r := recover(); r != nil {
				Recovered(log, "internal error in a test", r, zap.Uint32("session", 7))
			}
		}()
		panicky()
	}()
	Recovered(nil, "not logged", "r") // counted only
	if n := Total() - before; n != 2 {
		t.Fatalf("Total grew by %d, want 2", n)
	}
	all := logs.All()
	if len(all) != 1 {
		t.Fatalf("%d lines logged, want 1", len(all))
	}
	e := all[0]
	m := e.ContextMap()
	if !strings.HasPrefix(e.Message, "internal error in a test") || m["panic"] != "test: a bug" || m["session"] != uint32(7) {
		t.Fatalf("logged %q %v", e.Message, m)
	}
	if st, _ := m["stack"].(string); !strings.Contains(st, "fault.panicky") {
		t.Fatalf("stack does not show where the panic was raised:\n%s", st)
	}
}
