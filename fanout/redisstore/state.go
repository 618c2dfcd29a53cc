package redisstore

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// globalTag is the hash tag of sanctions that apply in every room. "global"
// is a valid room id, so the tag holds a '~', which room ids cannot: the
// global hash never collides with a room's.
const globalTag = "{~global}"

// Backlog returns the room's newest chat entries (≤ BacklogSize, oldest
// first). An entry that does not decode is skipped and counted.
func (s *Store) Backlog(ctx context.Context, room string) ([]proto.Entry, error) {
	if err := checkRoom("backlog", room); err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	raw, err := s.rdb.LRange(ctx, s.key(room, "backlog"), int64(-s.cfg.BacklogSize), -1).Result()
	if err != nil {
		return nil, s.fail("backlog", room, err)
	}
	out := make([]proto.Entry, 0, len(raw))
	for _, b := range raw {
		e, err := proto.DecodeEntry([]byte(b))
		if err != nil {
			s.m.dropped.WithLabelValues("corrupt_backlog_entry").Inc()
			s.log.Warn("redis store skipped a corrupt backlog entry", "room", room, "err", err)
			continue
		}
		out = append(out, e)
	}
	s.ok("backlog", "ok")
	return out, nil
}

// SaveBacklog replaces the room's backlog with the newest BacklogSize of
// entries (oldest first), atomically: a reader sees the old or the new one.
func (s *Store) SaveBacklog(ctx context.Context, room string, entries []proto.Entry) error {
	if err := checkRoom("save_backlog", room); err != nil {
		return err
	}
	if n := len(entries) - s.cfg.BacklogSize; n > 0 {
		entries = entries[n:]
	}
	vals := make([]any, len(entries))
	var w proto.Writer
	for i := range entries {
		start := len(w.B)
		entries[i].AppendTo(&w)
		vals[i] = w.B[start:len(w.B):len(w.B)]
	}
	key := s.key(room, "backlog")
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(vals) > 0 {
			p.RPush(ctx, key, vals...)
			if s.cfg.LedgerTTL > 0 {
				p.PExpire(ctx, key, s.cfg.LedgerTTL)
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("save_backlog", room, err)
	}
	s.ok("save_backlog", "ok")
	return nil
}

// sanctionsKey is the hash of room's sanctions, or the global one for "".
func (s *Store) sanctionsKey(room string) string {
	if room == "" {
		return s.cfg.Prefix + ":" + globalTag + ":sanctions"
	}
	return s.key(room, "sanctions")
}

// Sanctions returns the active sanctions of room plus the global ones; expired
// ones are deleted on the way.
func (s *Store) Sanctions(ctx context.Context, room string) ([]manager.Sanction, error) {
	if err := checkRoom("sanctions", room); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var out []manager.Sanction
	// The two hashes live in two Cluster slots: one script call each. Sanctions
	// are read when a room loads, not per message, so two round trips are fine.
	for _, r := range [...]string{room, ""} {
		v, err := sanctionsScript.Run(ctx, s.rdb, []string{s.sanctionsKey(r)}, now).Result()
		if err != nil {
			return nil, s.fail("sanctions", room, err)
		}
		if out, err = appendSanctions(out, r, v); err != nil {
			return nil, s.corrupt("sanctions", room, err)
		}
	}
	s.ok("sanctions", "ok")
	return out, nil
}

// appendSanctions parses sanctionsScript's {field, until, …} reply.
func appendSanctions(out []manager.Sanction, room string, v any) ([]manager.Sanction, error) {
	a, ok := v.([]any)
	if !ok || len(a)%2 != 0 {
		return out, fmt.Errorf("sanctions reply: %T of odd length", v)
	}
	for i := 0; i < len(a); i += 2 {
		field, _ := a[i].(string)
		until, _ := a[i+1].(string)
		sn, err := parseSanction(room, field, until)
		if err != nil {
			return out, err
		}
		out = append(out, sn)
	}
	return out, nil
}

// sanctionField is the hash field of a mute or ban of user.
func sanctionField(user string, ban bool) string {
	if ban {
		return "ban:" + user
	}
	return "mute:" + user
}

// parseSanction reads one field ("mute:<user>" or "ban:<user>") and its value
// (until, Unix ms; 0 = permanent).
func parseSanction(room, field, until string) (manager.Sanction, error) {
	kind, user, found := strings.Cut(field, ":")
	if !found || user == "" || (kind != "mute" && kind != "ban") {
		return manager.Sanction{}, fmt.Errorf("sanction field %q, want mute:<user> or ban:<user>", field)
	}
	ms, err := strconv.ParseInt(until, 10, 64)
	if err != nil || ms < 0 {
		return manager.Sanction{}, fmt.Errorf("sanction %q: until %q is not Unix ms", field, until)
	}
	sn := manager.Sanction{Room: room, User: user, Ban: kind == "ban"}
	if ms != 0 {
		sn.Until = time.UnixMilli(ms)
	}
	return sn, nil
}

func checkSanction(op, room, user string) error {
	if room != "" {
		if err := checkRoom(op, room); err != nil {
			return err
		}
	}
	if user == "" || len(user) > maxUserLen {
		return fmt.Errorf("redis %s room %q: user id of %d bytes: %w", op, room, len(user), proto.CodeBadRequest)
	}
	return nil
}

// SetSanction stores sn, replacing an earlier one of the same room, user and
// kind. Room "" is global; a zero Until is permanent.
func (s *Store) SetSanction(ctx context.Context, sn manager.Sanction) error {
	if err := checkSanction("set_sanction", sn.Room, sn.User); err != nil {
		return err
	}
	var until int64
	if !sn.Until.IsZero() {
		until = max(sn.Until.UnixMilli(), 1) // 0 would mean permanent
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.rdb.HSet(ctx, s.sanctionsKey(sn.Room), sanctionField(sn.User, sn.Ban), until).Err(); err != nil {
		return s.fail("set_sanction", sn.Room, err)
	}
	s.ok("set_sanction", "ok")
	return nil
}

// LiftSanction removes a mute (ban false) or ban of user in room ("" global).
func (s *Store) LiftSanction(ctx context.Context, room, user string, ban bool) error {
	if err := checkSanction("lift_sanction", room, user); err != nil {
		return err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.rdb.HDel(ctx, s.sanctionsKey(room), sanctionField(user, ban)).Err(); err != nil {
		return s.fail("lift_sanction", room, err)
	}
	s.ok("lift_sanction", "ok")
	return nil
}

// Policy hash fields.
const (
	policyTitle  = "title"
	policyBudget = "budget"
	policyTick   = "tick_ms"
	policySlow   = "slow_ms"
	policyVIP    = "vip"
	policyClosed = "closed"
)

// Policy returns the room's policy (the zero value when none was set).
func (s *Store) Policy(ctx context.Context, room string) (manager.Policy, error) {
	if err := checkRoom("policy", room); err != nil {
		return manager.Policy{}, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	h, err := s.rdb.HGetAll(ctx, s.key(room, "policy")).Result()
	if err != nil {
		return manager.Policy{}, s.fail("policy", room, err)
	}
	p, err := parsePolicy(h)
	if err != nil {
		return manager.Policy{}, s.corrupt("policy", room, err)
	}
	s.ok("policy", "ok")
	return p, nil
}

// SetPolicy replaces the room's policy atomically; zero fields are not stored.
func (s *Store) SetPolicy(ctx context.Context, room string, p manager.Policy) error {
	if err := checkRoom("set_policy", room); err != nil {
		return err
	}
	if p.Budget < 0 || p.Budget > math.MaxInt32 || p.Tick < 0 || p.SlowMode < 0 ||
		p.Tick.Milliseconds() > maxPolicyMillis || p.SlowMode.Milliseconds() > maxPolicyMillis {
		return fmt.Errorf("redis set_policy room %q: budget, tick or slow mode out of range: %w", room, proto.CodeBadRequest)
	}
	fields := policyFields(p)
	key := s.key(room, "policy")
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Del(ctx, key)
		if len(fields) > 0 {
			pl.HSet(ctx, key, fields...)
		}
		return nil
	})
	if err != nil {
		return s.fail("set_policy", room, err)
	}
	s.ok("set_policy", "ok")
	return nil
}

// policyFields returns p's non-zero fields as HSET arguments.
func policyFields(p manager.Policy) []any {
	var f []any
	if p.Title != "" {
		f = append(f, policyTitle, p.Title)
	}
	if p.Budget != 0 {
		f = append(f, policyBudget, p.Budget)
	}
	if p.Tick != 0 {
		f = append(f, policyTick, p.Tick.Milliseconds())
	}
	if p.SlowMode != 0 {
		f = append(f, policySlow, p.SlowMode.Milliseconds())
	}
	if p.VIPOnly {
		f = append(f, policyVIP, "1")
	}
	if p.Closed {
		f = append(f, policyClosed, "1")
	}
	return f
}

// parsePolicy reads the policy hash; unknown fields are ignored (a newer
// version may add some).
func parsePolicy(h map[string]string) (manager.Policy, error) {
	var p manager.Policy
	for k, v := range h {
		var err error
		switch k {
		case policyTitle:
			p.Title = v
		case policyBudget:
			var n int64
			n, err = strconv.ParseInt(v, 10, 32)
			p.Budget = int(n)
			if n < 0 {
				err = fmt.Errorf("negative")
			}
		case policyTick:
			p.Tick, err = parseMillis(v)
		case policySlow:
			p.SlowMode, err = parseMillis(v)
		case policyVIP:
			p.VIPOnly, err = strconv.ParseBool(v)
		case policyClosed:
			p.Closed, err = strconv.ParseBool(v)
		}
		if err != nil {
			return manager.Policy{}, fmt.Errorf("policy field %s=%q: %w", k, v, err)
		}
	}
	return p, nil
}

// maxPolicyMillis bounds a stored duration: a day is beyond any tick or slow
// mode, and keeps the conversion to time.Duration far from overflow.
const maxPolicyMillis = 24 * 60 * 60 * 1000

func parseMillis(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > maxPolicyMillis {
		return 0, fmt.Errorf("%d ms out of [0, %d]", n, maxPolicyMillis)
	}
	return time.Duration(n) * time.Millisecond, nil
}
