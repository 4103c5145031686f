package mgmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Request is one request on the wire.
type Request struct {
	Version int             `json:"v"`
	ID      uint64          `json:"id"`
	Method  Method          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Response is one response on the wire: Result or Error.
type Response struct {
	Version int             `json:"v"`
	ID      uint64          `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// DecodeRequest parses one request line and its parameters. It returns
// the request (with ID, when it could be read, so that an error response
// can name it) and the decoded parameters: a *Filter, *TerminateRequest,
// *ShutdownRequest, *LogLevelRequest, *TraceRequest, or nil for methods
// without parameters. Errors are *Error.
func DecodeRequest(line []byte) (*Request, any, error) {
	var req Request
	if len(line) > MaxRequestSize {
		return &req, nil, Errorf(CodeBadRequest, "request is %d bytes; at most %d", len(line), MaxRequestSize)
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return &req, nil, Errorf(CodeBadRequest, "request is not valid JSON: %v", err)
	}
	if req.Version != ProtocolVersion {
		return &req, nil, Errorf(CodeUnsupportedVersion, "protocol version %d is not supported; this l2tpd speaks version %d (use an l2tpctl of the same release)", req.Version, ProtocolVersion)
	}
	if !req.Method.Valid() {
		return &req, nil, Errorf(CodeUnknownMethod, "unknown method %q", req.Method)
	}
	var p any
	switch req.Method {
	case MethodShowTunnels, MethodShowSessions:
		p = new(Filter)
	case MethodTerminate:
		p = new(TerminateRequest)
	case MethodShutdown:
		p = new(ShutdownRequest)
	case MethodLogLevel:
		p = new(LogLevelRequest)
	case MethodTrace:
		p = new(TraceRequest)
	default:
		if len(bytes.TrimSpace(req.Params)) > 0 && !bytes.Equal(bytes.TrimSpace(req.Params), []byte("null")) && !bytes.Equal(bytes.TrimSpace(req.Params), []byte("{}")) {
			return &req, nil, Errorf(CodeBadRequest, "%s takes no parameters", req.Method)
		}
		return &req, nil, nil
	}
	if len(req.Params) > 0 {
		if err := json.Unmarshal(req.Params, p); err != nil {
			return &req, nil, Errorf(CodeBadRequest, "%s: parameters: %v", req.Method, err)
		}
	}
	switch p := p.(type) {
	case *TerminateRequest:
		if err := p.Validate(); err != nil {
			return &req, nil, err
		}
	case *TraceRequest:
		if err := p.Validate(); err != nil {
			return &req, nil, err
		}
	case *LogLevelRequest:
		if p.Level != "" && !slices.Contains(LogLevels, p.Level) {
			return &req, nil, Errorf(CodeBadRequest, "log level %q: want one of %v", p.Level, LogLevels)
		}
	}
	return &req, p, nil
}

// EncodeRequest builds one request line (with the trailing newline).
func EncodeRequest(id uint64, m Method, params any) ([]byte, error) {
	req := Request{Version: ProtocolVersion, ID: id, Method: m}
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("encoding %s parameters: %w", m, err)
		}
		req.Params = b
	}
	b, err := json.Marshal(&req)
	if err != nil {
		return nil, fmt.Errorf("encoding %s request: %w", m, err)
	}
	return append(b, '\n'), nil
}

// deadline is how long the server gives the backend for one request.
const deadline = 30 * time.Second
