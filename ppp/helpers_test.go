package ppp

import "time"

type timeT = time.Time

const second = time.Second

var testNow = time.Unix(1_000_000, 0)
