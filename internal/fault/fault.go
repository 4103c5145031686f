// Package fault counts the panics l2tpd recovers from, wherever they are
// recovered (a tunnel or session, a reader, a listener, a worker's Up, an
// authenticator, the RADIUS reply reader), and logs each with its stack.
// The count is the metric l2tpd_internal_errors_total: one number for the
// process, because a bug is a bug wherever it fires.
package fault

import (
	"runtime/debug"
	"sync/atomic"

	"go.uber.org/zap"
)

var recovered atomic.Uint64

// Recovered records the recovered panic r: it counts it and, when log is
// not nil, logs msg at error level with r, fields and the stack. Call it
// from the deferred function that recovered r, so that the stack is still
// the panic's.
func Recovered(log *zap.Logger, msg string, r any, fields ...zap.Field) {
	recovered.Add(1)
	if log == nil {
		return
	}
	fields = append(fields, zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
	log.Error(msg+". Please report this with the stack", fields...)
}

// Total is the number of panics recovered since the process started.
func Total() uint64 { return recovered.Load() }
