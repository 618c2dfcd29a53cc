// Package proto is the danmaku room protocol, version 1: the wire types a client
// and the edge exchange, their msgpack encoding, the TCP framing and the closed
// set of error codes. Apps embed it through the Go SDK (room/client); the edge,
// the room manager and the bench all speak it.
//
// The encoder and decoder are hand-written over a minimal msgpack subset (maps
// with string keys, arrays, strings, binaries, integers, booleans, nil): they are
// on the hot path of every message and every batch. Their output is plain
// msgpack, checked against github.com/vmihailenco/msgpack/v5 in the tests, so a
// client in any language decodes it with an ordinary msgpack library.
//
// The package imports nothing from the rest of the module. The spec a third
// party writes a client from is docs/PROTOCOL.md.
package proto
