package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/danmaku/danmaku/fanout"
	"github.com/danmaku/danmaku/media"
	"github.com/danmaku/danmaku/room/manager"
	"github.com/danmaku/danmaku/room/proto"
)

// The admin API (docs/OPERATIONS.md has every route with curl examples):
// Bearer --admin-key, JSON in and out, errors as {"code","message"}.
// Actions (sanctions, kicks, policy, notices, drains) go through
// fanout.Node.Control, so they take effect on every node of the cluster.
// Listings are cluster-wide: the node asked surveys every node over NATS
// (fanout.Node.Survey, answers gathered for surveyWait) and merges what they
// report; ?local=1 answers for the asked node alone.
func (n *node) adminRoutes(mux *http.ServeMux) {
	admin := n.bearer(n.cfg.HTTP.AdminKey, "admin key")
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, admin(f)) }
	h("GET /api/v1/admin/rooms", n.adminRooms)
	h("GET /api/v1/admin/rooms/{room}", n.adminRoom)
	h("PUT /api/v1/admin/rooms/{room}/policy", n.adminPolicy)
	h("POST /api/v1/admin/rooms/{room}/close", n.adminClose)
	h("POST /api/v1/admin/users/{user}/{action}", n.adminUser)
	h("POST /api/v1/admin/notice", n.adminNotice)
	h("GET /api/v1/admin/nodes", n.adminNodes)
	h("POST /api/v1/admin/nodes/{node}/drain", n.adminDrain)
}

// roomView is one room in the admin API.
type roomView struct {
	Room    string            `json:"room"`
	Owner   string            `json:"owner"`            // owner node, "" = none known
	Owned   bool              `json:"owned_here"`       // this node runs the room's manager
	Members bool              `json:"members_here"`     // this node has viewers of the room
	Online  int64             `json:"online"`           // cluster-wide viewers
	Live    *media.StreamInfo `json:"stream,omitempty"` // the live stream on this node
	// Nodes with viewers of the room (cluster-wide listings only).
	Nodes []string `json:"nodes,omitempty"`
	// Only when owned here (ask the owner node for the rest):
	Epoch        string            `json:"epoch,omitempty"`
	Seq          uint64            `json:"seq,omitempty"`
	InboundRate  float64           `json:"inbound_per_s"`
	OutboundRate float64           `json:"outbound_per_s"`
	Dropped      map[string]uint64 `json:"dropped,omitempty"`
	Policy       *policyView       `json:"policy,omitempty"`
	Budget       int               `json:"budget,omitempty"`
	Tick         string            `json:"tick,omitempty"`
}

// policyView is a room policy as JSON (durations as Go strings, "5s").
type policyView struct {
	Title    string `json:"title"`
	Budget   int    `json:"budget"`    // chat msgs/s, 0 = the server default
	Tick     string `json:"tick"`      // batch interval, "" or "0s" = default
	SlowMode string `json:"slow_mode"` // "" or "0s" = off
	VIPOnly  bool   `json:"vip_only"`
	Closed   bool   `json:"closed"`
}

func viewPolicy(p manager.Policy) *policyView {
	return &policyView{Title: p.Title, Budget: p.Budget, Tick: p.Tick.String(), SlowMode: p.SlowMode.String(),
		VIPOnly: p.VIPOnly, Closed: p.Closed}
}

func (v policyView) policy() (manager.Policy, error) {
	p := manager.Policy{Title: v.Title, Budget: v.Budget, VIPOnly: v.VIPOnly, Closed: v.Closed}
	var err error
	if v.Tick != "" {
		if p.Tick, err = time.ParseDuration(v.Tick); err != nil {
			return p, err
		}
	}
	if v.SlowMode != "" {
		p.SlowMode, err = time.ParseDuration(v.SlowMode)
	}
	return p, err
}

func (n *node) roomViews() []roomView {
	local := map[string]manager.RoomStats{}
	for _, s := range n.mgr.Rooms() {
		local[s.Room] = s
	}
	var out []roomView // unordered: mergeRooms sorts
	for _, ri := range n.bus.Rooms() {
		v := roomView{Room: ri.Room, Owner: ri.Owner, Owned: ri.Owned, Members: ri.Watched, Online: ri.Online}
		if s, ok := local[ri.Room]; ok {
			v.Epoch, v.Seq, v.InboundRate, v.OutboundRate = s.Epoch, s.Seq, s.InboundRate, s.OutboundRate
			v.Dropped, v.Policy, v.Budget, v.Tick = s.Dropped, viewPolicy(s.Policy), s.Budget, s.TickInterval.String()
			if v.Online == 0 && s.Online > 0 {
				v.Online = s.Online
			}
		}
		if st, ok := n.media.Stream(ri.Room); ok {
			v.Live = &st
		}
		out = append(out, v)
	}
	return out
}

// surveyWait is how long a cluster-wide listing waits for the nodes' answers.
const surveyWait = 300 * time.Millisecond

// maxReportRooms bounds the rooms one node reports in a survey answer.
const maxReportRooms = 2000

// nodeReport is one node's answer to an admin survey.
type nodeReport struct {
	Node      nodeView   `json:"node"`
	Rooms     []roomView `json:"rooms"`
	Truncated bool       `json:"truncated,omitempty"` // more than maxReportRooms rooms
}

func (n *node) report() nodeReport {
	rep := nodeReport{Node: n.nodeView(), Rooms: n.roomViews()}
	if len(rep.Rooms) > maxReportRooms {
		rep.Rooms, rep.Truncated = rep.Rooms[:maxReportRooms], true
	}
	return rep
}

// answerSurvey is this node's fanout.SurveyFunc.
func (n *node) answerSurvey() []byte {
	b, _ := json.Marshal(n.report())
	return b
}

// reports surveys the cluster (or only this node with ?local=1).
func (n *node) reports(r *http.Request) ([]nodeReport, error) {
	if r.URL.Query().Get("local") != "" {
		return []nodeReport{n.report()}, nil
	}
	answers, err := n.bus.Survey(r.Context(), surveyWait)
	if err != nil {
		return nil, err
	}
	reps := make([]nodeReport, 0, len(answers))
	for _, a := range answers {
		var rep nodeReport
		if json.Unmarshal(a, &rep) == nil {
			reps = append(reps, rep)
		}
	}
	sort.Slice(reps, func(i, j int) bool { return reps[i].Node.Node < reps[j].Node.Node })
	return reps, nil
}

// mergeRooms folds the nodes' views into one per room: the owner's view
// (rates, drops, policy) with the list of nodes that have viewers there.
func mergeRooms(reps []nodeReport) []roomView {
	byRoom := map[string]*roomView{}
	var order []string
	for _, rep := range reps {
		for _, v := range rep.Rooms {
			m, ok := byRoom[v.Room]
			if !ok {
				cp := v
				cp.Nodes = nil
				m, byRoom[v.Room] = &cp, &cp
				order = append(order, v.Room)
			} else if v.Owned && !m.Owned {
				nodes, stream := m.Nodes, m.Live
				*m = v
				m.Nodes = nodes
				if m.Live == nil {
					m.Live = stream
				}
			} else if m.Live == nil {
				m.Live = v.Live
			}
			if v.Members {
				m.Nodes = append(m.Nodes, rep.Node.Node)
			}
			m.Online = max(m.Online, v.Online)
		}
	}
	sort.Strings(order)
	out := make([]roomView, 0, len(order))
	for _, room := range order {
		v := *byRoom[room]
		v.Members = len(v.Nodes) > 0
		out = append(out, v)
	}
	return out
}

func (n *node) adminRooms(w http.ResponseWriter, r *http.Request) {
	reps, err := n.reports(r)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, string(proto.CodeUnavailable), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": len(reps), "rooms": mergeRooms(reps)})
}

func (n *node) adminRoom(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	reps, err := n.reports(r)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, string(proto.CodeUnavailable), "%v", err)
		return
	}
	for _, v := range mergeRooms(reps) {
		if v.Room == room {
			writeJSON(w, http.StatusOK, v)
			return
		}
	}
	writeErr(w, http.StatusNotFound, "not_found", "room %q is not active on any node that answered", room)
}

func validRoom(w http.ResponseWriter, room string) bool {
	if !proto.ValidRoom(room) {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "room id %q: want 1-64 of [A-Za-z0-9_-]", room)
		return false
	}
	return true
}

// control runs one cluster-wide action and answers {"ok":true} or the error.
func (n *node) control(w http.ResponseWriter, r *http.Request, ev fanout.ControlEvent) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := n.bus.Control(ctx, ev); err != nil {
		c := codeOf(err)
		writeErr(w, statusOf(c), string(c), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (n *node) adminPolicy(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !validRoom(w, room) {
		return
	}
	var v policyView
	if err := decodeBody(r, &v); err != nil {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "%v", err)
		return
	}
	p, err := v.policy()
	if err != nil || p.Budget < 0 || p.Tick < 0 || p.SlowMode < 0 {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "policy: durations like \"5s\", nothing negative (%v)", err)
		return
	}
	n.control(w, r, fanout.ControlEvent{Kind: fanout.ControlPolicy, Room: room, Policy: p})
}

// adminClose closes a room: its policy says closed (nobody joins or sends)
// and every member is disconnected with room_closed.
func (n *node) adminClose(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !validRoom(w, room) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	p, err := n.store.Policy(ctx, room)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, string(proto.CodeUnavailable), "read policy of %q: %v", room, err)
		return
	}
	p.Closed = true
	if err := n.bus.Control(ctx, fanout.ControlEvent{Kind: fanout.ControlPolicy, Room: room, Policy: p}); err != nil {
		writeErr(w, statusOf(codeOf(err)), string(codeOf(err)), "%v", err)
		return
	}
	n.control(w, r, fanout.ControlEvent{Kind: fanout.ControlKick, Room: room})
}

// userAction is the body of POST /api/v1/admin/users/{user}/{action}.
type userAction struct {
	Room     string `json:"room"`     // "" = every room
	Duration string `json:"duration"` // mute/ban length, "" = permanent
}

func (n *node) adminUser(w http.ResponseWriter, r *http.Request) {
	user, action := r.PathValue("user"), r.PathValue("action")
	var a userAction
	if r.ContentLength != 0 {
		if err := decodeBody(r, &a); err != nil {
			writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "%v", err)
			return
		}
	}
	if a.Room != "" && !validRoom(w, a.Room) {
		return
	}
	ev := fanout.ControlEvent{Kind: fanout.ControlSanction, Room: a.Room, User: user}
	switch action {
	case "mute", "ban":
		ev.Ban = action == "ban"
		if a.Duration != "" {
			d, err := time.ParseDuration(a.Duration)
			if err != nil || d <= 0 {
				writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "duration %q: want a positive Go duration like \"10m\"", a.Duration)
				return
			}
			ev.Until = time.Now().Add(d)
		}
	case "unmute", "unban":
		ev.Ban, ev.Lifted = action == "unban", true
	case "kick":
		ev = fanout.ControlEvent{Kind: fanout.ControlKick, Room: a.Room, User: user}
	default:
		writeErr(w, http.StatusNotFound, "not_found", "action %q: want mute, unmute, ban, unban or kick", action)
		return
	}
	n.control(w, r, ev)
}

func (n *node) adminNotice(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Room  string `json:"room"` // "" = every room
		Text  string `json:"text"`
		Level string `json:"level"` // info (default), warn, critical
	}
	if err := decodeBody(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, string(proto.CodeBadRequest), "%v", err)
		return
	}
	if req.Room != "" && !validRoom(w, req.Room) {
		return
	}
	if req.Level == "" {
		req.Level = "info"
	}
	n.control(w, r, fanout.ControlEvent{Kind: fanout.ControlNotice, Room: req.Room, Text: req.Text, Level: req.Level})
}

// nodeView is this node in GET /api/v1/admin/nodes.
type nodeView struct {
	Node        string            `json:"node"`
	Draining    bool              `json:"draining"`
	Conns       int64             `json:"connections"`
	ConnsTCP    int64             `json:"connections_tcp"`
	ConnsWS     int64             `json:"connections_ws"`
	MaxConns    int               `json:"max_connections"`
	Rooms       int               `json:"rooms_with_members"`
	OwnedRooms  int               `json:"rooms_owned"`
	ActiveRooms int64             `json:"rooms_active"`
	Members     int64             `json:"memberships"`
	Rejects     map[string]uint64 `json:"rejects,omitempty"`
	Drops       map[string]uint64 `json:"drops,omitempty"`
	Streams     int               `json:"streams"`
}

func (n *node) nodeView() nodeView {
	st := n.edge.Stats()
	owned := 0
	for _, ri := range n.bus.Rooms() {
		if ri.Owned {
			owned++
		}
	}
	v := nodeView{Node: n.cfg.NodeID, Draining: n.edge.Draining(), Conns: st.Conns, ConnsTCP: st.ConnsTCP,
		ConnsWS: st.ConnsWS, MaxConns: st.MaxConns, Rooms: st.Rooms, OwnedRooms: owned,
		ActiveRooms: n.mgr.Counters().ActiveRooms, Members: st.Members, Rejects: st.Rejects, Drops: st.Drops,
		Streams: len(n.media.Streams())}
	return v
}

func (n *node) adminNodes(w http.ResponseWriter, r *http.Request) {
	reps, err := n.reports(r)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, string(proto.CodeUnavailable), "%v", err)
		return
	}
	views := make([]nodeView, len(reps))
	for i, rep := range reps {
		views[i] = rep.Node
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": views})
}

func (n *node) adminDrain(w http.ResponseWriter, r *http.Request) {
	n.control(w, r, fanout.ControlEvent{Kind: fanout.ControlDrain, Node: r.PathValue("node")})
}
