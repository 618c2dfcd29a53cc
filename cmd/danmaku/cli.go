package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/danmaku/danmaku/room/client"
	"github.com/danmaku/danmaku/room/proto"
)

// Exit codes of `danmaku listen` and `danmaku send` (scripts read them).
const (
	exitOK      = 0
	exitFailed  = 1 // send: the ack carried an error code; listen: timeout before --count entries
	exitUsage   = 2
	exitConnect = 3 // could not connect, join or send (network, token, server)
)

// commonFlags are the flags both listen and send take.
type commonFlags struct {
	url, token, room string
	timeout          time.Duration
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", os.Getenv("DANMAKU_URL"), "edge URL, ws://host:port/ws or tcp://host:port (env DANMAKU_URL)")
	fs.StringVar(&c.token, "token", os.Getenv("DANMAKU_TOKEN"), "client token, from `danmaku token` (env DANMAKU_TOKEN)")
	fs.StringVar(&c.room, "room", "", "room id, required")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "give up after this long")
}

func (c *commonFlags) check(cmd string) error {
	if c.url == "" || c.room == "" {
		return fmt.Errorf("danmaku %s: --url and --room are required", cmd)
	}
	return nil
}

// listenLine is one line of `danmaku listen --json`.
type listenLine struct {
	Room     string     `json:"room"`
	Kind     string     `json:"kind"` // chat, gift, like, notice, state, mod, enter, online
	Seq      uint64     `json:"seq,omitempty"`
	MsgID    uint64     `json:"msg_id,omitempty"`
	User     string     `json:"user,omitempty"`
	Name     string     `json:"name,omitempty"`
	Role     proto.Role `json:"role,omitempty"`
	Text     string     `json:"text,omitempty"`
	Gift     string     `json:"gift,omitempty"`
	Count    uint64     `json:"count,omitempty"`
	Level    string     `json:"level,omitempty"`
	Data     string     `json:"data,omitempty"`
	Color    uint32     `json:"color,omitempty"`
	Mode     proto.Mode `json:"mode,omitempty"`
	TS       int64      `json:"ts"` // server time, Unix ms
	ClientTS int64      `json:"client_ts,omitempty"`
	Replay   bool       `json:"replay,omitempty"` // recovered by a resume
	Online   int64      `json:"online,omitempty"`
}

func entryLine(room string, e proto.Entry, replay bool) listenLine {
	return listenLine{Room: room, Kind: string(e.Kind), Seq: e.Seq, MsgID: e.MsgID, User: e.User, Name: e.Name,
		Role: e.Role, Text: e.Text, Gift: e.Gift, Count: uint64(e.Count), Level: e.Level, Data: e.Data,
		Color: e.Color, Mode: e.Mode, TS: e.ServerTS, ClientTS: e.ClientTS, Replay: replay}
}

func (l listenLine) human() string {
	switch l.Kind {
	case "chat":
		return fmt.Sprintf("[%s] %s: %s", l.Room, l.Name, l.Text)
	case "gift":
		return fmt.Sprintf("[%s] #%d %s sent %d × %s", l.Room, l.Seq, l.Name, l.Count, l.Gift)
	case "like":
		return fmt.Sprintf("[%s] +%d likes", l.Room, l.Count)
	case "online":
		return fmt.Sprintf("[%s] %d online", l.Room, l.Online)
	case "notice":
		return fmt.Sprintf("[%s] #%d notice (%s): %s", l.Room, l.Seq, l.Level, l.Text)
	case "enter":
		return fmt.Sprintf("[%s] %s entered", l.Room, l.Name)
	default:
		return fmt.Sprintf("[%s] #%d %s %s %s", l.Room, l.Seq, l.Kind, l.Text, l.Data)
	}
}

func runListen(args []string) int {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	var c commonFlags
	c.register(fs)
	count := fs.Int("count", 0, "exit 0 after this many entries (chat, gift, like, notice, state, mod; enter and online lines are printed but not counted); 0 = until --timeout")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	backlog := fs.Bool("backlog", false, "also print the join backlog (the room's newest chat entries)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: danmaku listen --url URL --token T --room R [--count N] [--timeout 10s] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := c.check("listen"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return listen(ctx, c, *count, *asJSON, *backlog, os.Stdout, os.Stderr)
}

func listen(ctx context.Context, c commonFlags, count int, asJSON, backlog bool, out, errOut io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := client.Dial(ctx, c.url, c.token)
	if err != nil {
		fmt.Fprintf(errOut, "danmaku listen: %v\n", err)
		return exitConnect
	}
	defer cl.Close()
	st, err := join(ctx, cl, c.room)
	if err != nil {
		fmt.Fprintf(errOut, "danmaku listen: join %q: %v\n", c.room, err)
		return exitConnect
	}
	fmt.Fprintf(errOut, "joined %s: %d online, epoch %s, seq %d, live %v\n", c.room, st.Online, st.Epoch, st.Seq, st.Live)
	enc := json.NewEncoder(out)
	seen := 0
	emit := func(l listenLine) bool {
		if asJSON {
			_ = enc.Encode(l)
		} else {
			fmt.Fprintln(out, l.human())
		}
		if l.Kind != "online" && l.Kind != "enter" { // presence lines do not count
			seen++
		}
		return count > 0 && seen >= count
	}
	if backlog {
		for _, e := range st.Backlog {
			if emit(entryLine(c.room, e, true)) {
				return exitOK
			}
		}
	}
	online := st.Online
	for {
		var ev client.Event
		select {
		case <-ctx.Done():
			if count == 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return exitOK // listening for --timeout was the request
			}
			fmt.Fprintf(errOut, "danmaku listen: %d of %d entries before the timeout\n", seen, count)
			return exitFailed
		case ev = <-cl.Events():
		}
		switch ev.Kind {
		case client.EventBatch:
			b := ev.Batch
			for _, e := range b.Reliable {
				if emit(entryLine(b.Room, e, ev.Replay)) {
					return exitOK
				}
			}
			for _, e := range b.Lossy {
				if emit(entryLine(b.Room, e, ev.Replay)) {
					return exitOK
				}
			}
			if b.Likes > 0 && emit(listenLine{Room: b.Room, Kind: "like", Count: b.Likes, TS: b.ServerTS}) {
				return exitOK
			}
			if b.HasOnline && b.Online != online {
				online = b.Online
				emit(listenLine{Room: b.Room, Kind: "online", Online: b.Online, TS: b.ServerTS})
			}
		case client.EventNotice:
			if emit(listenLine{Room: ev.Notice.Room, Kind: "notice", Text: ev.Notice.Text, Level: ev.Notice.Level, TS: time.Now().UnixMilli()}) {
				return exitOK
			}
		case client.EventDisconnected, client.EventReconnecting, client.EventReconnected, client.EventReconnectRequested,
			client.EventLeft, client.EventError, client.EventResumed:
			fmt.Fprintf(errOut, "%s %s %v\n", ev.Kind, ev.Room, ev.Err)
		case client.EventClosed:
			fmt.Fprintf(errOut, "danmaku listen: connection closed: %v\n", ev.Err)
			return exitConnect
		}
	}
}

// join joins room, retrying while the answer is unavailable (the room's
// owner is moving: a node died or drains) until ctx is done.
func join(ctx context.Context, cl *client.Client, room string) (*proto.RoomState, error) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		st, err := cl.Join(ctx, room)
		if err == nil || !errors.Is(err, proto.CodeUnavailable) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// sendResult is what `danmaku send` prints: the ack, as JSON.
type sendResult struct {
	OK         bool   `json:"ok"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	Room       string `json:"room"`
	Kind       string `json:"kind"`
	MsgID      uint64 `json:"msg_id,omitempty"`
	Seq        uint64 `json:"seq,omitempty"`
	Epoch      string `json:"epoch,omitempty"`
	Key        string `json:"key,omitempty"`
	SampledOut bool   `json:"sampled_out,omitempty"`
	Duplicate  bool   `json:"duplicate,omitempty"`
	RetryAfter int    `json:"retry_after_ms,omitempty"`
}

func runSend(args []string) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var c commonFlags
	c.register(fs)
	gift := fs.String("gift", "", "send this gift id instead of a chat")
	count := fs.Uint("count", 1, "gift count")
	key := fs.String("key", "", "gift idempotency key (default: a fresh one); the same key again returns the original ack")
	like := fs.Uint("like", 0, "send this many likes instead of a chat")
	color := fs.Uint("color", 0, "chat colour, 0xRRGGBB")
	mode := fs.String("mode", "", "chat mode: scroll (default), top or bottom")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: danmaku send --url URL --token T --room R [--gift ID --count N --key K] [--like N] [TEXT]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := c.check("send"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitUsage
	}
	text := strings.Join(fs.Args(), " ")
	kinds := 0
	for _, set := range []bool{*gift != "", *like > 0, text != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		fmt.Fprintln(os.Stderr, "danmaku send: give exactly one of TEXT, --gift or --like")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := client.Dial(ctx, c.url, c.token, client.WithGiftDeadline(c.timeout))
	if err != nil {
		fmt.Fprintf(os.Stderr, "danmaku send: %v\n", err)
		return exitConnect
	}
	defer cl.Close()
	if _, err := join(ctx, cl, c.room); err != nil {
		fmt.Fprintf(os.Stderr, "danmaku send: join %q: %v\n", c.room, err)
		return exitConnect
	}
	res := sendResult{Room: c.room}
	var ack *proto.Ack
	switch {
	case *gift != "":
		res.Kind, res.Key = "gift", *key
		if res.Key == "" {
			res.Key = client.NewKey()
		}
		ack, err = cl.GiftWithKey(ctx, c.room, *gift, uint32(*count), res.Key)
	case *like > 0:
		res.Kind = "like"
		ack, err = cl.Like(ctx, c.room, uint32(*like))
	default:
		res.Kind = "chat"
		var opts []client.ChatOption
		if *color != 0 {
			opts = append(opts, client.WithColor(uint32(*color)))
		}
		switch *mode {
		case "", "scroll":
		case "top":
			opts = append(opts, client.WithMode(proto.ModeTop))
		case "bottom":
			opts = append(opts, client.WithMode(proto.ModeBottom))
		default:
			fmt.Fprintf(os.Stderr, "danmaku send: --mode %q: want scroll, top or bottom\n", *mode)
			return exitUsage
		}
		ack, err = cl.Chat(ctx, c.room, text, opts...)
	}
	var ge *client.GiftError
	if ack == nil && errors.As(err, &ge) && ge.Ack != nil {
		ack = ge.Ack
	}
	if ack == nil {
		var code proto.Code
		if !errors.As(err, &code) { // no answer at all: network, deadline, closed
			fmt.Fprintf(os.Stderr, "danmaku send: %s: %v\n", res.Kind, err)
			return exitConnect
		}
		ack = &proto.Ack{Code: code, Message: err.Error()} // refused before sending (text checks)
	}
	res.OK, res.Code, res.Message = ack.Code == proto.CodeOK, string(ack.Code), ack.Message
	res.MsgID, res.Seq, res.Epoch = ack.MsgID, ack.Seq, ack.Epoch
	res.SampledOut, res.Duplicate, res.RetryAfter = ack.SampledOut, ack.Duplicate, ack.RetryAfter
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	if !res.OK {
		return exitFailed
	}
	return exitOK
}
