package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/danmaku/danmaku/room/auth"
	"github.com/danmaku/danmaku/room/proto"
)

// runToken prints a token on stdout and nothing else, so scripts can capture it.
func runToken(args []string) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	secret := fs.String("secret", os.Getenv("DANMAKU_SECRET"), "JWT signing key, shared with `danmaku serve` (env DANMAKU_SECRET)")
	user := fs.String("user", "", "user id (the token's sub), required")
	name := fs.String("name", "", "display name (default: the user id)")
	role := fs.String("role", "viewer", "viewer, vip, moderator, streamer or admin")
	room := fs.String("room", "", "comma-separated rooms the token allows (default: any room)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime; 0 means no expiry")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *secret == "" || *user == "" {
		fmt.Fprintln(os.Stderr, "danmaku token: --secret and --user are required")
		return 2
	}
	var rooms []string
	if *room != "" {
		rooms = strings.Split(*room, ",")
	}
	tok, err := auth.Sign([]byte(*secret), *user, *name, proto.Role(*role), rooms, *ttl)
	if err != nil {
		fmt.Fprintf(os.Stderr, "danmaku token: %v\n", err)
		return 2
	}
	fmt.Println(tok)
	return 0
}
