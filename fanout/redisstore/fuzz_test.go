package redisstore

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/danmaku/danmaku/room/proto"
)

// The decoders of values read back from Redis: a foreign or corrupt value
// must give an error, never a panic, and whatever decodes re-encodes to the
// same thing.

func FuzzDecodeLogEntry(f *testing.F) {
	var w proto.Writer
	g := gift(3)
	g.Data = `{"combo":3}`
	g.AppendTo(&w)
	f.Add("7-0", "b", w.B)
	f.Add("1-0", "b", []byte{0x80})
	f.Add("0-0", "b", []byte{0x80})
	f.Add("9007199254740992-0", "b", []byte{0x80})
	f.Add("3-1", "b", []byte{0x80})
	f.Add("x", "c", []byte{0xc1})
	f.Fuzz(func(t *testing.T, id, field string, body []byte) {
		e, err := decodeLogEntry(id, []any{field, string(body)})
		if err != nil {
			return
		}
		if e.Seq == 0 || e.Seq >= maxSeq {
			t.Fatalf("id %q decoded as seq %d", id, e.Seq)
		}
		var w proto.Writer
		e.AppendTo(&w)
		again, err := decodeLogEntry(id, []any{"b", string(w.B)})
		if err != nil || again != e {
			t.Fatalf("re-encoded entry %+v decodes as %+v, %v", e, again, err)
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("Final", "200", "50", "3000", "1", "0")
	f.Add("", "-1", "x", "99999999999", "true", "maybe")
	f.Add("t", "2147483648", "", "", "", "")
	f.Fuzz(func(t *testing.T, title, budget, tick, slow, vip, closed string) {
		h := map[string]string{}
		for k, v := range map[string]string{policyTitle: title, policyBudget: budget, policyTick: tick,
			policySlow: slow, policyVIP: vip, policyClosed: closed} {
			if v != "" {
				h[k] = v
			}
		}
		p, err := parsePolicy(h)
		if err != nil {
			return
		}
		back := map[string]string{}
		fields := policyFields(p)
		for i := 0; i < len(fields); i += 2 {
			back[fields[i].(string)] = fmt.Sprint(fields[i+1])
		}
		if q, err := parsePolicy(back); err != nil || q != p {
			t.Fatalf("policy %+v stored as %v reads back as %+v, %v", p, back, q, err)
		}
	})
}

func FuzzParseSanction(f *testing.F) {
	f.Add("mute:alice", "0")
	f.Add("ban:bob:smith", "1795333651406")
	f.Add("kick:bob", "1")
	f.Add("ban:", "-5")
	f.Add("mute:x", "+7")
	f.Fuzz(func(t *testing.T, field, until string) {
		sn, err := parseSanction("r1", field, until)
		if err != nil {
			return
		}
		if sanctionField(sn.User, sn.Ban) != field || sn.User == "" {
			t.Fatalf("field %q parsed as %+v", field, sn)
		}
		if ms, _ := strconv.ParseInt(until, 10, 64); sn.Until.IsZero() != (ms == 0) || (ms != 0 && sn.Until.UnixMilli() != ms) {
			t.Fatalf("until %q parsed as %v", until, sn.Until)
		}
	})
}

func FuzzParseAppendReply(f *testing.F) {
	f.Add("1", "0123456789abcdef", "", int64(0), int64(0))
	f.Add("18446744073709551615", "e", "\x80", int64(1), int64(3))
	f.Add("0", "", "", int64(9), int64(-1))
	f.Fuzz(func(t *testing.T, seq, epoch, body string, state, why int64) {
		r, err := parseAppendReply([]any{seq, epoch, body, state, why})
		if err != nil {
			return
		}
		if r.seq == 0 || r.seq >= maxSeq || r.epoch == "" || r.state < appendNew || r.state > appendOwnRetry {
			t.Fatalf("accepted reply %+v", r)
		}
	})
}
