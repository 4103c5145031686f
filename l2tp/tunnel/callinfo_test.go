package tunnel

import (
	"bytes"
	"testing"

	"github.com/l2tpd/l2tpd/l2tp"
)

// TestCallInfoCopiedOut: the numbers of an ICRQ and the proxy AVPs of an
// ICCN are kept right, and do not alias the received datagram (which the
// caller reuses).
func TestCallInfoCopiedOut(t *testing.T) {
	icrq := &l2tp.Message{Type: l2tp.MsgICRQ}
	icrq.AddUint32(l2tp.AVPCallSerialNumber, true, 9)
	icrq.AddString(l2tp.AVPCalledNumber, true, "called")
	icrq.AddString(l2tp.AVPCallingNumber, true, "calling")
	icrq.AddString(l2tp.AVPSubAddress, true, "sub")
	body, err := l2tp.AppendMessage(nil, icrq, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m l2tp.Message
	if err := m.Decode(body, nil); err != nil {
		t.Fatal(err)
	}
	ci := readCallInfo(&m)

	iccn := &l2tp.Message{Type: l2tp.MsgICCN}
	iccn.AddUint32(l2tp.AVPTxConnectSpeed, true, 1000)
	iccn.AddBytes(l2tp.AVPInitialReceivedLCPConfReq, false, []byte{1, 4, 5, 0xdc})
	iccn.AddUint16(l2tp.AVPProxyAuthenType, false, 2)
	iccn.AddString(l2tp.AVPProxyAuthenName, false, "user")
	iccn.AddBytes(l2tp.AVPProxyAuthenResponse, false, []byte{0xaa, 0xbb})
	body2, err := l2tp.AppendMessage(nil, iccn, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Decode(body2, nil); err != nil {
		t.Fatal(err)
	}
	readConnectInfo(&m, &ci)
	clear(body) // the caller's buffers are reused
	clear(body2)

	if ci.SerialNumber != 9 || ci.CallingNumber != "calling" || ci.CalledNumber != "called" || ci.SubAddress != "sub" || ci.TxConnectSpeed != 1000 {
		t.Fatalf("call info %+v", ci)
	}
	want := []l2tp.AVP{
		{Type: l2tp.AVPInitialReceivedLCPConfReq, Value: []byte{1, 4, 5, 0xdc}},
		{Type: l2tp.AVPProxyAuthenType, Value: []byte{0, 2}},
		{Type: l2tp.AVPProxyAuthenName, Value: []byte("user")},
		{Type: l2tp.AVPProxyAuthenResponse, Value: []byte{0xaa, 0xbb}},
	}
	if len(ci.Proxy) != len(want) {
		t.Fatalf("proxy AVPs %+v, want %+v", ci.Proxy, want)
	}
	for i, a := range ci.Proxy {
		if a.Type != want[i].Type || a.Mandatory || !bytes.Equal(a.Value, want[i].Value) || cap(a.Value) != len(a.Value) {
			t.Errorf("proxy AVP %d: %+v, want %+v (capacity limited)", i, a, want[i])
		}
	}
	// No numbers: empty strings, nothing kept.
	if err := m.Decode(body2[:0:0], nil); err == nil {
		t.Fatal("Decode of an empty body succeeded")
	}
	bare := &l2tp.Message{Type: l2tp.MsgICRQ}
	if ci := readCallInfo(bare); ci.CallingNumber != "" || ci.CalledNumber != "" || ci.SubAddress != "" {
		t.Fatalf("bare ICRQ call info %+v", ci)
	}
}
