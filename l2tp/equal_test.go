package l2tp

import (
	"bytes"
	"fmt"
)

// equalMessages compares type and AVPs (flags, vendor, type, value),
// treating nil and empty values as equal.
func equalMessages(a, b *Message) error {
	if (a == nil) != (b == nil) {
		return fmt.Errorf("one message is nil: %v vs %v", a, b)
	}
	if a == nil {
		return nil
	}
	if a.Type != b.Type {
		return fmt.Errorf("type %v vs %v", a.Type, b.Type)
	}
	if len(a.AVPs) != len(b.AVPs) {
		return fmt.Errorf("%d AVPs vs %d", len(a.AVPs), len(b.AVPs))
	}
	for i := range a.AVPs {
		x, y := a.AVPs[i], b.AVPs[i]
		if x.Mandatory != y.Mandatory || x.Hidden != y.Hidden || x.Vendor != y.Vendor || x.Type != y.Type || !bytes.Equal(x.Value, y.Value) {
			return fmt.Errorf("AVP %d: %+v vs %+v", i, x, y)
		}
	}
	return nil
}
