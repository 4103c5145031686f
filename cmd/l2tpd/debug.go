package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// startDebug serves Go's runtime profiles (net/http/pprof) on addr, for
// profiling a running daemon (`go tool pprof http://ADDR/debug/pprof/profile`).
// Off unless --debug-listen is given; it exposes internals, so bind it to
// loopback.
func startDebug(addr string, log *zap.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Warn("debug listener stopped", zap.String("addr", addr), zap.Error(err))
		}
	}()
	log.Warn("serving Go runtime profiles: keep this address private", zap.Stringer("addr", ln.Addr()))
	return srv, nil
}
