package local

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/l2tpd/l2tpd/auth"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 2759 section 9.2.
const (
	rfcUser      = "User"
	rfcPassword  = "clientPass"
	rfcAuthChal  = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28"
	rfcPeerChal  = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E"
	rfcNTResp    = "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF"
	rfcAuthResp  = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
	rfcZero8     = "00 00 00 00 00 00 00 00"
	rfcFlagsZero = "00"
)

func testSubs() []Subscriber {
	return []Subscriber{
		{Name: "alice", Password: "secret", Address: netip.MustParseAddr("10.0.0.7"), Pool: "gold"},
		{Name: "bob", Password: "hunter2", Disabled: true},
		{Name: rfcUser, Password: rfcPassword, Pool: "vpn"},
	}
}

func chapResp(id byte, secret string, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

func TestAuthenticate(t *testing.T) {
	a, err := New(testSubs())
	if err != nil {
		t.Fatal(err)
	}
	challenge := []byte("0123456789abcdef")
	msResp := unhex(t, rfcPeerChal+rfcZero8+rfcNTResp+rfcFlagsZero)
	badMS := append([]byte(nil), msResp...)
	badMS[30] ^= 1
	flagged := append([]byte(nil), msResp...)
	flagged[48] = 1

	type want struct {
		accept   bool
		reason   Reason
		msg      string
		framedIP netip.Addr
		pool     string
		msAuth   string
	}
	failed := want{reason: ReasonBadPassword, msg: MsgFailed}
	unknown := want{reason: ReasonUnknownUser, msg: MsgFailed}
	tests := []struct {
		name string
		req  auth.Request
		want want
	}{
		{"pap ok", auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("secret")},
			want{accept: true, reason: ReasonAccepted, framedIP: netip.MustParseAddr("10.0.0.7"), pool: "gold"}},
		{"pap wrong", auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("secreT")}, failed},
		{"pap prefix", auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("secre")}, failed},
		{"pap empty", auth.Request{Method: auth.MethodPAP, Username: "alice"}, failed},
		{"pap unknown", auth.Request{Method: auth.MethodPAP, Username: "mallory", Password: []byte("secret")}, unknown},
		{"pap disabled", auth.Request{Method: auth.MethodPAP, Username: "bob", Password: []byte("hunter2")},
			want{reason: ReasonDisabled, msg: MsgDisabled}},
		{"pap disabled wrong", auth.Request{Method: auth.MethodPAP, Username: "bob", Password: []byte("x")}, failed},

		{"chap ok", auth.Request{Method: auth.MethodCHAPMD5, Username: "alice", ID: 7, Challenge: challenge, Response: chapResp(7, "secret", challenge)},
			want{accept: true, reason: ReasonAccepted, framedIP: netip.MustParseAddr("10.0.0.7"), pool: "gold"}},
		{"chap wrong id", auth.Request{Method: auth.MethodCHAPMD5, Username: "alice", ID: 8, Challenge: challenge, Response: chapResp(7, "secret", challenge)}, failed},
		{"chap wrong", auth.Request{Method: auth.MethodCHAPMD5, Username: "alice", ID: 7, Challenge: challenge, Response: chapResp(7, "Secret", challenge)}, failed},
		{"chap unknown", auth.Request{Method: auth.MethodCHAPMD5, Username: "eve", ID: 7, Challenge: challenge, Response: chapResp(7, "secret", challenge)}, unknown},
		{"chap disabled", auth.Request{Method: auth.MethodCHAPMD5, Username: "bob", ID: 1, Challenge: challenge, Response: chapResp(1, "hunter2", challenge)},
			want{reason: ReasonDisabled, msg: MsgDisabled}},
		{"chap short", auth.Request{Method: auth.MethodCHAPMD5, Username: "alice", ID: 7, Challenge: challenge, Response: []byte{1, 2}},
			want{reason: ReasonMalformed, msg: MsgFailed}},

		{"mschapv2 rfc vector", auth.Request{Method: auth.MethodMSCHAPv2, Username: rfcUser, Challenge: unhex(t, rfcAuthChal), Response: msResp},
			want{accept: true, reason: ReasonAccepted, pool: "vpn", msAuth: rfcAuthResp}},
		{"mschapv2 wrong", auth.Request{Method: auth.MethodMSCHAPv2, Username: rfcUser, Challenge: unhex(t, rfcAuthChal), Response: badMS}, failed},
		{"mschapv2 unknown", auth.Request{Method: auth.MethodMSCHAPv2, Username: "user", Challenge: unhex(t, rfcAuthChal), Response: msResp}, unknown},
		{"mschapv2 flags", auth.Request{Method: auth.MethodMSCHAPv2, Username: rfcUser, Challenge: unhex(t, rfcAuthChal), Response: flagged},
			want{reason: ReasonMalformed, msg: MsgFailed}},
		{"mschapv2 short challenge", auth.Request{Method: auth.MethodMSCHAPv2, Username: rfcUser, Challenge: challenge[:8], Response: msResp},
			want{reason: ReasonMalformed, msg: MsgFailed}},
		{"unknown method", auth.Request{Method: 0, Username: "alice", Password: []byte("secret")},
			want{reason: ReasonBadMethod, msg: MsgFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, reason := a.Decide(&tt.req)
			got := want{accept: res.Accept, reason: reason, msg: res.Message, framedIP: res.FramedIP, pool: res.Pool, msAuth: res.MSCHAPv2AuthResponse}
			if got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
			res2, err := a.Authenticate(context.Background(), &tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if res2.Accept != res.Accept || res2.Message != res.Message {
				t.Errorf("Authenticate = %+v, Decide = %+v", res2, res)
			}
			// DecideInto overwrites every field of a Result already used.
			into := &auth.Result{Accept: !res.Accept, Message: "stale", MSCHAPError: "stale", Pool: "stale", MTU: 9,
				FramedIP: netip.MustParseAddr("192.0.2.9"), Class: [][]byte{{1}}}
			if why := a.DecideInto(&tt.req, into); why != reason || !reflect.DeepEqual(into, res) {
				t.Errorf("DecideInto = %+v, %v; Decide = %+v, %v", into, why, res, reason)
			}
		})
	}
}

func TestAuthenticateCancelled(t *testing.T) {
	a, _ := New(testSubs())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Authenticate(ctx, &auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("secret")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestReplace(t *testing.T) {
	a, err := New(testSubs())
	if err != nil {
		t.Fatal(err)
	}
	pap := func(user, pw string) bool {
		res, _ := a.Decide(&auth.Request{Method: auth.MethodPAP, Username: user, Password: []byte(pw)})
		return res.Accept
	}
	for _, bad := range [][]Subscriber{
		{{Name: "x"}, {Name: "x"}},
		{{Password: "nameless"}},
		{{Name: "v6", Address: netip.MustParseAddr("2001:db8::1")}},
	} {
		if err := a.Replace(bad); err == nil {
			t.Errorf("Replace(%+v) accepted", bad)
		}
	}
	if !pap("alice", "secret") || a.Len() != 3 {
		t.Fatal("a failed Replace changed the list")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // concurrent readers during the swap (run with -race)
		defer wg.Done()
		for range 1000 {
			pap("alice", "secret")
		}
	}()
	if err := a.Replace([]Subscriber{{Name: "carol", Password: "pw"}}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if pap("alice", "secret") || !pap("carol", "pw") || a.Len() != 1 {
		t.Fatal("Replace did not take effect")
	}
	// The caller's slice is copied.
	subs := []Subscriber{{Name: "dave", Password: "pw"}}
	if err := a.Replace(subs); err != nil {
		t.Fatal(err)
	}
	subs[0].Password = "changed"
	if !pap("dave", "pw") {
		t.Fatal("Replace kept a reference to the caller's slice")
	}
}

func TestReasonString(t *testing.T) {
	for r := ReasonAccepted; r <= ReasonBadMethod; r++ {
		if s := r.String(); s == "" || strings.HasPrefix(s, "Reason(") {
			t.Errorf("Reason %d has no name", r)
		}
	}
	if got := Reason(200).String(); got != "Reason(200)" {
		t.Errorf("String = %q", got)
	}
}
