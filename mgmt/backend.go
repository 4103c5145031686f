package mgmt

import "context"

// Backend is what the daemon implements for the management API. Every
// method must be safe for concurrent use and return promptly (it is
// called with a deadline). Errors may be *Error to pick a code.
//
// Client implements Backend as well, over the socket.
type Backend interface {
	// Tunnels lists tunnels passing the filter, sorted by ID.
	Tunnels(ctx context.Context, f Filter) ([]Tunnel, error)
	// Sessions lists sessions passing the filter, sorted by tunnel and
	// session ID.
	Sessions(ctx context.Context, f Filter) ([]Session, error)
	Stats(ctx context.Context) (*Stats, error)
	Pools(ctx context.Context) ([]Pool, error)
	Peers(ctx context.Context) ([]Peer, error)
	// Terminate ends what the request selects (validated by the server)
	// and returns at once; the teardown continues in the background.
	// Nothing matching is an error with CodeNotFound.
	Terminate(ctx context.Context, r TerminateRequest) (TerminateResult, error)
	// Reload re-reads the configuration file: new tunnels and sessions
	// get the new settings, established ones are untouched. An invalid
	// file is refused (CodeInvalidConfig) and the old config stays.
	Reload(ctx context.Context) (ReloadResult, error)
	// Drain stops (on) or resumes (!on) accepting new tunnels and
	// sessions; established ones continue.
	Drain(ctx context.Context, on bool) (Status, error)
	// Shutdown exits the daemon: at once (StopCCN everything), or, when
	// soft, after draining and once the last session has gone. It
	// returns before the daemon exits.
	Shutdown(ctx context.Context, r ShutdownRequest) (Status, error)
	// LogLevel sets (or with an empty Level, reads) the global level.
	LogLevel(ctx context.Context, r LogLevelRequest) (LogLevelResult, error)
	// Trace turns per-user/per-peer debug tracing on or off and returns
	// the traces active afterwards.
	Trace(ctx context.Context, r TraceRequest) ([]Trace, error)
}
