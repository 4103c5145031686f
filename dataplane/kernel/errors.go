package kernel

import (
	"github.com/l2tpd/l2tpd/dataplane"
)

// unsupported wraps dataplane.ErrUnsupported together with the cause.
type unsupported struct{ cause error }

func (u *unsupported) Error() string   { return u.cause.Error() }
func (u *unsupported) Unwrap() []error { return []error{dataplane.ErrUnsupported, u.cause} }

func errUnsupported(cause error) error { return &unsupported{cause: cause} }
