package mgmt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ListenOptions say who may use the socket.
type ListenOptions struct {
	// Mode of the socket file; 0 means 0600 (root only).
	Mode os.FileMode
	// GID owning the socket; -1 leaves it (root's group).
	GID int
}

// Listen creates the Unix socket at path (and its directory, 0755, if
// missing), replacing a stale socket left by a daemon that died but
// refusing to take over one that still answers.
func Listen(path string, o ListenOptions) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("management socket %s: creating its directory: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("management socket %s: a file that is not a socket is in the way; remove it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("management socket %s: another l2tpd is answering on it; stop it first or set [api] socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("management socket %s: removing the stale socket: %w", path, err)
		}
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o600
	}
	// Create it with no access, then open it up: no window in which a
	// umask-dependent mode lets others in.
	old := syscall.Umask(0o777)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("management socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if o.GID >= 0 {
		if err := os.Chown(path, -1, o.GID); err != nil {
			ln.Close()
			return nil, fmt.Errorf("management socket %s: setting group %d: %w", path, o.GID, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("management socket %s: setting mode %#o: %w", path, mode, err)
	}
	return ln, nil
}

// Server serves a Backend on a listener. Each connection is handled by
// its own goroutine (operators' tools, not subscribers: a handful).
type Server struct {
	b Backend
	// ErrorLog, if set, receives errors that have no client to go to.
	ErrorLog func(error)
	// IdleTimeout closes connections idle this long (default 5 minutes).
	IdleTimeout time.Duration

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server for b.
func NewServer(b Backend) *Server {
	return &Server{b: b, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("management socket: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Close stops accepting, closes open connections and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriter(c)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		line, err := readLine(r, MaxRequestSize)
		if err != nil {
			if errors.Is(err, errTooLong) {
				s.write(c, w, &Response{Version: ProtocolVersion, Error: &Error{Code: CodeBadRequest, Message: err.Error()}})
			}
			return
		}
		resp := s.Handle(line)
		if !s.write(c, w, resp) {
			return
		}
	}
}

func (s *Server) write(c net.Conn, w *bufio.Writer, resp *Response) bool {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(&Response{Version: ProtocolVersion, ID: resp.ID, Error: &Error{Code: CodeInternal, Message: "encoding the response: " + err.Error()}})
	}
	c.SetWriteDeadline(time.Now().Add(time.Minute))
	w.Write(b)
	w.WriteByte('\n')
	if err := w.Flush(); err != nil {
		if s.ErrorLog != nil {
			s.ErrorLog(fmt.Errorf("management socket: writing the response: %w", err))
		}
		return false
	}
	return true
}

var errTooLong = fmt.Errorf("request line longer than %d bytes", MaxRequestSize)

// readLine reads one '\n'-terminated line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > max+1 {
			return nil, errTooLong
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}

// Handle answers one request line. It is what a connection does for each
// line, exported for tests and fuzzing.
func (s *Server) Handle(line []byte) *Response {
	req, params, err := DecodeRequest(line)
	resp := &Response{Version: ProtocolVersion, ID: req.ID}
	if err != nil {
		resp.Error = toError(err)
		return resp
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	result, err := s.dispatch(ctx, req.Method, params)
	if err != nil {
		resp.Error = toError(err)
		return resp
	}
	b, err := json.Marshal(result)
	if err != nil {
		resp.Error = &Error{Code: CodeInternal, Message: fmt.Sprintf("%s: encoding the result: %v", req.Method, err)}
		return resp
	}
	resp.Result = b
	return resp
}

func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Code: e.Code, Message: err.Error()}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

func (s *Server) dispatch(ctx context.Context, m Method, p any) (any, error) {
	switch m {
	case MethodShowTunnels:
		return nonNil(s.b.Tunnels(ctx, *p.(*Filter)))
	case MethodShowSessions:
		return nonNil(s.b.Sessions(ctx, *p.(*Filter)))
	case MethodShowStats:
		return s.b.Stats(ctx)
	case MethodShowPools:
		return nonNil(s.b.Pools(ctx))
	case MethodShowPeers:
		return nonNil(s.b.Peers(ctx))
	case MethodTerminate:
		return s.b.Terminate(ctx, *p.(*TerminateRequest))
	case MethodReload:
		return s.b.Reload(ctx)
	case MethodDrain:
		return s.b.Drain(ctx, true)
	case MethodUndrain:
		return s.b.Drain(ctx, false)
	case MethodShutdown:
		return s.b.Shutdown(ctx, *p.(*ShutdownRequest))
	case MethodLogLevel:
		return s.b.LogLevel(ctx, *p.(*LogLevelRequest))
	case MethodTrace:
		return nonNil(s.b.Trace(ctx, *p.(*TraceRequest)))
	}
	return nil, Errorf(CodeUnknownMethod, "unknown method %q", m)
}

// nonNil turns a nil slice into an empty one so that JSON says [] not null.
func nonNil[T any](v []T, err error) ([]T, error) {
	if v == nil && err == nil {
		v = []T{}
	}
	return v, err
}
