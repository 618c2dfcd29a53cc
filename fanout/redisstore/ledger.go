package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

const (
	// maxSeq is the first seq the scripts cannot represent exactly (they
	// compute in doubles); 2^53 appends are ~285 years at a million a second.
	// A client's resume point above it is clamped (and is never complete).
	maxSeq = 1 << 53
	// maxReplay bounds one Since call: the entry count one frame may carry.
	maxReplay = proto.MaxEntries
	// tryTTL is how long the record of an append without a key lives: longer
	// than any retry of one call (OpTimeout ≤ maxOpTimeout).
	tryTTL = time.Minute
)

// Append assigns the next seq to e and stores it, atomically with the
// idempotency check of key (if not ""). e.Seq is ignored; e.ServerTS is set to
// now when zero. Duplicate is true when an earlier call stored the key: the
// stored entry and its epoch are returned, nothing is written.
//
// An Append that failed (e.g. timed out) may still have been stored: a retry
// with the same key then returns Duplicate with the original seq.
//
// On the path of every gift: one script round trip; it must not hold a lock
// across I/O (the floor map is locked only before and after the call).
func (s *Store) Append(ctx context.Context, room, key string, e proto.Entry) (manager.Appended, error) {
	start := time.Now()
	defer func() { s.m.appendSeconds.Observe(time.Since(start).Seconds()) }()
	if err := checkRoom("append", room); err != nil {
		return manager.Appended{}, err
	}
	if len(key) > proto.MaxKeyLen {
		return manager.Appended{}, fmt.Errorf("redis append room %q: key of %d bytes, limit %d: %w",
			room, len(key), proto.MaxKeyLen, proto.CodeBadRequest)
	}
	if !e.Kind.Reliable() {
		return manager.Appended{}, fmt.Errorf("redis append room %q: kind %q is not reliable: %w",
			room, e.Kind, proto.CodeBadRequest)
	}
	e.Seq = 0 // the stream ID carries the seq
	if e.ServerTS == 0 {
		e.ServerTS = start.UnixMilli()
	}
	w := proto.Writer{B: make([]byte, 0, 256)}
	e.AppendTo(&w)
	if len(w.B) > maxEntryBytes {
		return manager.Appended{}, fmt.Errorf("redis append room %q: entry of %d bytes, limit %d: %w",
			room, len(w.B), maxEntryBytes, proto.CodeBadRequest)
	}

	nonce := newNonce()
	idem, idemTTL := s.key(room, "idem:"+key), s.cfg.IdempotencyTTL
	if key == "" {
		idem, idemTTL = s.key(room, "try:"+nonce), tryTTL
	}
	f := s.floorOf(room)
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	v, err := appendScript.Run(ctx, s.rdb,
		[]string{s.key(room, "epoch"), s.key(room, "seq"), s.key(room, "log"), idem, s.key(room, "owner")},
		newEpoch(), f.epoch, f.seq, s.cfg.LedgerTTL.Milliseconds(),
		w.B, nonce, idemTTL.Milliseconds(), s.cfg.Retention, s.cfg.FenceNode,
	).Result()
	if err != nil {
		return manager.Appended{}, s.fail("append", room, err)
	}
	r, err := parseAppendReply(v)
	if err != nil {
		return manager.Appended{}, s.corrupt("append", room, err)
	}
	s.rotated(room, f, r.epoch, r.why)
	if r.state == appendDuplicate {
		stored, err := proto.DecodeEntry([]byte(r.body))
		if err != nil {
			return manager.Appended{}, s.corrupt("append", room, fmt.Errorf("idempotency record of key %q: %w", key, err))
		}
		stored.Seq = r.seq
		s.ok("append", "duplicate")
		return manager.Appended{Entry: stored, Epoch: r.epoch, Duplicate: true}, nil
	}
	s.raiseFloor(room, r.epoch, r.seq)
	e.Seq = r.seq
	s.ok("append", "ok")
	return manager.Appended{Entry: e, Epoch: r.epoch}, nil
}

// Head returns the room's epoch and last seq, creating the epoch if the room
// has none.
func (s *Store) Head(ctx context.Context, room string) (manager.Head, error) {
	if err := checkRoom("head", room); err != nil {
		return manager.Head{}, err
	}
	f := s.floorOf(room)
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	v, err := headScript.Run(ctx, s.rdb,
		[]string{s.key(room, "epoch"), s.key(room, "seq"), s.key(room, "log")},
		newEpoch(), f.epoch, f.seq, s.cfg.LedgerTTL.Milliseconds(),
	).Result()
	if err != nil {
		return manager.Head{}, s.fail("head", room, err)
	}
	h, why, _, err := parseHeadReply(v, false)
	if err != nil {
		return manager.Head{}, s.corrupt("head", room, err)
	}
	s.rotated(room, f, h.Epoch, why)
	s.raiseFloor(room, h.Epoch, h.Seq)
	s.ok("head", "ok")
	return h, nil
}

// Since returns up to limit entries after seq `after` of epoch, with the
// room's head (created if the room has none). A limit ≤ 0 or above
// proto.MaxEntries means proto.MaxEntries. Complete is true when the epoch is current and the entries
// follow `after` without a gap: none are missing between `after` and the last
// one returned. When the last returned seq is below Head.Seq, more remain
// (the limit cut them): call again from there.
func (s *Store) Since(ctx context.Context, room, epoch string, after uint64, limit int) (manager.Replay, error) {
	if err := checkRoom("since", room); err != nil {
		return manager.Replay{}, err
	}
	if limit <= 0 || limit > maxReplay {
		limit = maxReplay
	}
	first := uint64(maxSeq) // nothing is stored from there on
	if after < maxSeq {
		first = after + 1
	}
	f := s.floorOf(room)
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	v, err := sinceScript.Run(ctx, s.rdb,
		[]string{s.key(room, "epoch"), s.key(room, "seq"), s.key(room, "log")},
		newEpoch(), f.epoch, f.seq, s.cfg.LedgerTTL.Milliseconds(),
		epoch, first, limit,
	).Result()
	if err != nil {
		return manager.Replay{}, s.fail("since", room, err)
	}
	h, why, raw, err := parseHeadReply(v, true)
	if err != nil {
		return manager.Replay{}, s.corrupt("since", room, err)
	}
	s.rotated(room, f, h.Epoch, why)
	s.raiseFloor(room, h.Epoch, h.Seq)
	entries, err := parseLog(raw)
	if err != nil {
		return manager.Replay{}, s.corrupt("since", room, err)
	}
	s.ok("since", "ok")
	return manager.Replay{Head: h, Entries: entries, Complete: complete(epoch, after, h, entries)}, nil
}

// complete reports whether entries are, without a gap, the ones following
// `after` in the asked epoch.
func complete(epoch string, after uint64, h manager.Head, entries []proto.Entry) bool {
	switch {
	case epoch != h.Epoch || after > h.Seq:
		return false
	case after == h.Seq:
		return len(entries) == 0
	case len(entries) == 0:
		return false // retention (or LedgerTTL) dropped them
	}
	for i := range entries {
		if entries[i].Seq != after+1+uint64(i) {
			return false
		}
	}
	return true
}

// rotated logs and counts a new epoch the script started over existing data.
func (s *Store) rotated(room string, before floor, epoch string, why int64) {
	var reason string
	switch why {
	case 0:
		return
	case 1:
		if before.epoch == "" {
			return // a new room, or one whose loss this process cannot tell
		}
		reason = "missing"
	case 2:
		reason = "lost_writes"
	default:
		reason = "log_ahead"
	}
	s.m.rotations.WithLabelValues(reason).Inc()
	s.log.Warn("redis store started a new epoch: the room's ledger was lost (or expired, with LedgerTTL)",
		"room", room, "reason", reason, "old_epoch", before.epoch, "old_seq", before.seq, "epoch", epoch)
}

// Append reply states (see appendScript).
const (
	appendNew       = 0
	appendDuplicate = 1
	appendOwnRetry  = 2
)

type appendReply struct {
	seq        uint64
	epoch      string
	body       string
	state, why int64
}

// parseAppendReply reads appendScript's reply.
func parseAppendReply(v any) (appendReply, error) {
	var r appendReply
	a, ok := v.([]any)
	if !ok || len(a) != 5 {
		return r, fmt.Errorf("append reply: want 5 elements, got %T", v)
	}
	var err error
	if r.seq, err = parseSeq(a[0]); err != nil {
		return r, err
	}
	r.epoch, ok = a[1].(string)
	if !ok || r.epoch == "" {
		return r, fmt.Errorf("append reply: epoch %v", a[1])
	}
	if r.body, ok = a[2].(string); !ok {
		return r, fmt.Errorf("append reply: body %T", a[2])
	}
	r.state, ok = a[3].(int64)
	if !ok || r.state < appendNew || r.state > appendOwnRetry {
		return r, fmt.Errorf("append reply: state %v", a[3])
	}
	if r.why, ok = a[4].(int64); !ok {
		return r, fmt.Errorf("append reply: rotation %v", a[4])
	}
	if r.seq == 0 {
		return r, errors.New("append reply: seq 0")
	}
	return r, nil
}

// parseHeadReply reads headScript's {epoch, seq, why} or sinceScript's
// {epoch, seq, why, entries}; raw is the entries element.
func parseHeadReply(v any, since bool) (h manager.Head, why int64, raw any, err error) {
	want := 3
	if since {
		want = 4
	}
	a, ok := v.([]any)
	if !ok || len(a) != want {
		return h, 0, nil, fmt.Errorf("head reply: want %d elements, got %T", want, v)
	}
	h.Epoch, ok = a[0].(string)
	if !ok || h.Epoch == "" {
		return h, 0, nil, fmt.Errorf("head reply: epoch %v", a[0])
	}
	if h.Seq, err = parseSeq(a[1]); err != nil {
		return h, 0, nil, err
	}
	if why, ok = a[2].(int64); !ok {
		return h, 0, nil, fmt.Errorf("head reply: rotation %v", a[2])
	}
	if since {
		raw = a[3]
	}
	return h, why, raw, nil
}

// parseSeq reads a seq the scripts return as a decimal string.
func parseSeq(v any) (uint64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("seq %T, want a string", v)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n >= maxSeq {
		return 0, fmt.Errorf("seq %q out of range", s)
	}
	return n, nil
}

// parseLog reads an XRANGE reply: [[id, [field, value, …]], …]. Each entry's
// seq is its ID's first part.
func parseLog(v any) ([]proto.Entry, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("log: %T, want an array", v)
	}
	if len(a) == 0 {
		return nil, nil
	}
	out := make([]proto.Entry, 0, len(a))
	for _, item := range a {
		pair, ok := item.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("log entry: %T, want [id, fields]", item)
		}
		id, ok := pair[0].(string)
		if !ok {
			return nil, fmt.Errorf("log entry id: %T", pair[0])
		}
		e, err := decodeLogEntry(id, pair[1])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeLogEntry decodes one stream entry: ID "<seq>-0", fields ["b", body].
func decodeLogEntry(id string, fields any) (proto.Entry, error) {
	seqPart, rest, found := strings.Cut(id, "-")
	if !found || rest != "0" {
		return proto.Entry{}, fmt.Errorf("log entry id %q, want <seq>-0", id)
	}
	seq, err := parseSeq(seqPart)
	if err != nil || seq == 0 {
		return proto.Entry{}, fmt.Errorf("log entry id %q: bad seq", id)
	}
	f, ok := fields.([]any)
	if !ok || len(f) != 2 || f[0] != "b" {
		return proto.Entry{}, fmt.Errorf("log entry %s: fields %v, want [b body]", id, fields)
	}
	body, ok := f[1].(string)
	if !ok {
		return proto.Entry{}, fmt.Errorf("log entry %s: body %T", id, f[1])
	}
	e, err := proto.DecodeEntry([]byte(body))
	if err != nil {
		return proto.Entry{}, fmt.Errorf("log entry %s: %w", id, err)
	}
	e.Seq = seq
	return e, nil
}
