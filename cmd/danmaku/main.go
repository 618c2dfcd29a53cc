// Command danmaku is the one binary: the server and its operator tools.
//
//	danmaku serve    run a node (edge, room managers, NATS, HTTP)
//	danmaku token    mint a client token
//	danmaku listen   join a room and print what arrives
//	danmaku send     send one chat, like or gift and print the ack
//	danmaku bench    run a load scenario and say pass or fail
//
// This package only wires the others together.
package main

import (
	"fmt"
	"os"

	"github.com/danmaku/danmaku/bench"
)

type command struct {
	name string
	help string
	run  func(args []string) int
}

func commands() []command {
	return []command{
		{"serve", "run a node: edge, room managers, NATS, HTTP", runServe},
		{"token", "mint a client token (HS256 JWT)", runToken},
		{"listen", "join a room and print what arrives", runListen},
		{"send", "send one chat, like or gift and print the ack", runSend},
		{"bench", "run a load scenario and say pass or fail", bench.Main},
	}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// The bench re-executes this binary as its load workers.
	if len(args) > 0 && args[0] == "bench-worker" {
		return bench.WorkerMain(args[1:])
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return 2
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "danmaku: unknown command %q\n", args[0])
	usage()
	return 2
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: danmaku <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.help)
	}
	fmt.Fprintln(os.Stderr, "\nrun 'danmaku <command> -h' for its flags")
}
