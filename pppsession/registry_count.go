package pppsession

// CountByState returns how many registered sessions are in each state,
// without copying their snapshots (for metrics at scrape time).
func (r *Registry) CountByState() map[State]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[State]int, len(stateNames))
	for _, e := range r.byID {
		out[e.snap.State]++
	}
	return out
}
