package mgmt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Client talks to a daemon's management socket. It implements Backend.
// Requests on one Client are serialised; it is safe for concurrent use.
type Client struct {
	path string
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	id   uint64
}

var _ Backend = (*Client)(nil)

// Dial connects to the management socket at path. Its errors say what to
// do: whether the daemon is not running, or the caller lacks permission.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(path, err)
	}
	return &Client{path: path, conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func dialError(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("no management socket at %s: is l2tpd running? (systemctl status l2tpd; if it uses another [api] socket, pass --socket PATH): %w", path, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing answers on the management socket %s: l2tpd is not running or has just stopped (systemctl status l2tpd): %w", path, err)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("permission denied on the management socket %s: run l2tpctl as root, or as a member of the group set by [api] socket_group: %w", path, err)
	}
	return fmt.Errorf("cannot connect to the management socket %s: %w", path, err)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Call sends one request and decodes the result into out (may be nil).
// An error response is returned as *Error.
func (c *Client) Call(ctx context.Context, m Method, params, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id++
	line, err := EncodeRequest(c.id, m, params)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(line); err != nil {
		return c.ioError(ctx, m, err)
	}
	b, err := readLine(c.r, MaxResponseSize)
	if err != nil {
		return c.ioError(ctx, m, err)
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("%s: the daemon's response is not valid JSON: %w", m, err)
	}
	if resp.ID != c.id {
		return fmt.Errorf("%s: response to request %d arrived for request %d", m, resp.ID, c.id)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return fmt.Errorf("%s: decoding the result: %w", m, err)
		}
	}
	return nil
}

func (c *Client) ioError(ctx context.Context, m Method, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: no answer from l2tpd on %s: %w", m, c.path, ctx.Err())
	}
	return fmt.Errorf("%s: l2tpd closed the management connection on %s (did it stop?): %w", m, c.path, err)
}

func (c *Client) Tunnels(ctx context.Context, f Filter) ([]Tunnel, error) {
	var out []Tunnel
	return out, c.Call(ctx, MethodShowTunnels, f, &out)
}

func (c *Client) Sessions(ctx context.Context, f Filter) ([]Session, error) {
	var out []Session
	return out, c.Call(ctx, MethodShowSessions, f, &out)
}

func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	out := new(Stats)
	if err := c.Call(ctx, MethodShowStats, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) Pools(ctx context.Context) ([]Pool, error) {
	var out []Pool
	return out, c.Call(ctx, MethodShowPools, nil, &out)
}

func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var out []Peer
	return out, c.Call(ctx, MethodShowPeers, nil, &out)
}

func (c *Client) Terminate(ctx context.Context, r TerminateRequest) (TerminateResult, error) {
	var out TerminateResult
	return out, c.Call(ctx, MethodTerminate, r, &out)
}

func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var out ReloadResult
	return out, c.Call(ctx, MethodReload, nil, &out)
}

func (c *Client) Drain(ctx context.Context, on bool) (Status, error) {
	var out Status
	m := MethodDrain
	if !on {
		m = MethodUndrain
	}
	return out, c.Call(ctx, m, nil, &out)
}

func (c *Client) Shutdown(ctx context.Context, r ShutdownRequest) (Status, error) {
	var out Status
	return out, c.Call(ctx, MethodShutdown, r, &out)
}

func (c *Client) LogLevel(ctx context.Context, r LogLevelRequest) (LogLevelResult, error) {
	var out LogLevelResult
	return out, c.Call(ctx, MethodLogLevel, r, &out)
}

func (c *Client) Trace(ctx context.Context, r TraceRequest) ([]Trace, error) {
	var out []Trace
	return out, c.Call(ctx, MethodTrace, r, &out)
}
