package main

import "github.com/danmaku/danmaku/room/web"

// The demo room page and the JS SDK bundle, served at / on the HTTP port.
func init() { webHandler = web.Handler }
