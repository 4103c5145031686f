package endpoint

import "sync"

// maxQueued bounds the items waiting for one tunnel goroutine.
const maxQueued = 1024

// mailbox is a tunnel goroutine's queue of inbound items: control
// messages, PPP frames and early data messages from the tunnel's reader,
// the listener and the data plane. Producers append under a mutex; the
// tunnel goroutine swaps the whole slice out and handles everything in it
// before one pass (Tick, drivers, output). The notify channel is signalled
// only when the box goes from empty to non-empty (or a held batch is
// released), so a burst costs the tunnel goroutine one wake-up, not one per
// item.
//
// The tunnel's own reader holds the box while it adds the datagrams of one
// read (and the PPP frames the data plane hands back while it does): take
// returns nothing while the box is held, so one read reaches the core in
// one pass. Items beyond maxQueued are refused; the reader (add with
// wait) releases the box and waits for the tunnel goroutine to take what is
// there — backpressure on its own socket, not on other tunnels.
type mailbox struct {
	mu    sync.Mutex
	items []inbound
	spare []inbound // the slice the tunnel goroutine gave back last time
	held  bool
	// waiting: the reader waits for room (space is signalled by take).
	waiting bool
	notify  chan struct{} // cap 1: there are items to take
	space   chan struct{} // cap 1: take emptied a full box
}

func newMailbox() mailbox {
	return mailbox{notify: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func (m *mailbox) signal() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// post appends it unless the box is full; it never blocks (the listener,
// the data plane's frame handler).
func (m *mailbox) post(it inbound) bool {
	m.mu.Lock()
	if len(m.items) >= maxQueued {
		m.mu.Unlock()
		return false
	}
	m.items = append(m.items, it)
	wake := !m.held && len(m.items) == 1
	m.mu.Unlock()
	if wake {
		m.signal()
	}
	return true
}

// hold starts a batch: items added until release are taken together.
func (m *mailbox) hold() {
	m.mu.Lock()
	m.held = true
	m.mu.Unlock()
}

// release ends a batch and wakes the tunnel goroutine if there is anything
// to take.
func (m *mailbox) release() {
	m.mu.Lock()
	m.held = false
	wake := len(m.items) > 0
	m.mu.Unlock()
	if wake {
		m.signal()
	}
}

// addWait appends it for the tunnel's own reader, which holds the box:
// when the box is full it releases it, waits until the tunnel goroutine
// has taken the items (or done is closed: false) and holds it again.
func (m *mailbox) addWait(it inbound, done <-chan struct{}) bool {
	for {
		m.mu.Lock()
		if len(m.items) < maxQueued {
			m.items = append(m.items, it)
			wake := !m.held && len(m.items) == 1
			m.mu.Unlock()
			if wake {
				m.signal()
			}
			return true
		}
		m.held = false
		m.waiting = true
		m.mu.Unlock()
		m.signal()
		select {
		case <-m.space:
		case <-done:
			return false
		}
		m.hold()
	}
}

// take moves every queued item to the caller (nothing while the reader
// holds a batch). The returned slice belongs to the caller until the next
// take, which reuses it.
func (m *mailbox) take() []inbound {
	m.mu.Lock()
	if m.held || len(m.items) == 0 {
		m.mu.Unlock()
		return nil
	}
	out := m.items
	clear(m.spare) // drop the packets of the previous batch
	m.items = m.spare[:0]
	if cap(m.items) > 4*max(len(out), 32) {
		m.items = nil // a burst is over: do not keep its size per tunnel
	}
	m.spare = out
	waiting := m.waiting
	m.waiting = false
	m.mu.Unlock()
	if waiting {
		select {
		case m.space <- struct{}{}:
		default:
		}
	}
	return out
}

// queued is how many items wait (tests).
func (m *mailbox) queued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}
