package load

import (
	"github.com/danmaku/danmaku/room/proto"
)

// The batch is the one message every viewer reads many times a second, so
// viewers read it in place instead of decoding it into a proto.Batch: string
// fields stay sub-slices of the frame body and entries are visited one by one
// with an iterator. Everything else goes through proto.Decoder.
//
// Hot path: scanBatch and entryIter.next must not allocate.

// batchView is a batch read in place; byte slices point into the body.
type batchView struct {
	Room, Epoch []byte
	Tick        uint64
	ServerTS    int64
	Likes       uint64
	Dropped     uint32
	rel, los    []byte // the raw msgpack arrays of entries; nil when absent
}

// scanBatch reads the top level of a batch body (whose "t" the caller
// checked): key order does not matter and unknown keys are skipped. Errors
// are proto codes, as proto.Decode's.
func scanBatch(body []byte, b *batchView) error {
	*b = batchView{}
	var r proto.Reader
	r.Reset(body)
	n, err := r.MapLen()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		k, err := r.StrBytes()
		if err != nil {
			return err
		}
		switch string(k) {
		case "r":
			b.Room, err = r.StrBytes()
		case "e":
			b.Epoch, err = r.StrBytes()
		case "tk":
			b.Tick, err = r.Uint()
		case "st":
			b.ServerTS, err = r.Int()
		case "lk":
			b.Likes, err = r.Uint()
		case "dr":
			b.Dropped, err = r.Uint32()
		case "rel", "los":
			start := len(body) - r.Len()
			err = r.Skip()
			raw := body[start : len(body)-r.Len()]
			if string(k) == "rel" {
				b.rel = raw
			} else {
				b.los = raw
			}
		default:
			err = r.Skip()
		}
		if err != nil {
			return err
		}
	}
	if r.Len() != 0 {
		return proto.CodeBadFrame
	}
	return nil
}

// entryView is the part of an entry the bench uses.
type entryView struct {
	Kind     []byte
	Seq      uint64
	ClientTS int64
	User     []byte
}

// entryIter walks a raw entry array.
type entryIter struct {
	r    proto.Reader
	left int
}

// init points the iterator at a raw array (nil is an empty one).
func (it *entryIter) init(raw []byte) error {
	it.left = 0
	if raw == nil {
		return nil
	}
	it.r.Reset(raw)
	n, err := it.r.ArrayLen()
	if err != nil {
		return err
	}
	if n > proto.MaxEntries {
		return proto.CodeTooLarge
	}
	it.left = n
	return nil
}

// next reads the next entry into e; false at the end.
func (it *entryIter) next(e *entryView) (bool, error) {
	if it.left == 0 {
		return false, nil
	}
	it.left--
	*e = entryView{}
	n, err := it.r.MapLen()
	if err != nil {
		return false, err
	}
	for i := 0; i < n; i++ {
		k, err := it.r.StrBytes()
		if err != nil {
			return false, err
		}
		switch string(k) {
		case "k":
			e.Kind, err = it.r.StrBytes()
		case "s":
			e.Seq, err = it.r.Uint()
		case "ct":
			e.ClientTS, err = it.r.Int()
		case "u":
			e.User, err = it.r.StrBytes()
		default:
			err = it.r.Skip()
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}
