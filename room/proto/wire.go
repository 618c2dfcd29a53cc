package proto

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// Writer appends msgpack to a byte slice. It never fails: every value our
// messages hold has an encoding. Reuse one Writer (B = B[:0]) to encode without
// allocating once B has grown to the largest message.
type Writer struct {
	B []byte
}

// Map starts a map and returns a mark for EndMap. Maps are written with a
// one-byte fixmap header patched in EndMap, so callers need not count fields in
// advance; every map in this protocol has at most 15 keys.
func (w *Writer) Map() int {
	w.B = append(w.B, 0x80)
	return len(w.B) - 1
}

// EndMap patches the header written by Map with the number of key/value pairs.
func (w *Writer) EndMap(mark, n int) {
	if n > 15 {
		panic("proto: map with more than 15 keys") // programmer error, never input
	}
	w.B[mark] = 0x80 | byte(n)
}

// MapLen writes a map header for n pairs (any size).
func (w *Writer) MapLen(n int) {
	switch {
	case n < 16:
		w.B = append(w.B, 0x80|byte(n))
	case n <= math.MaxUint16:
		w.B = append(w.B, 0xde, byte(n>>8), byte(n))
	default:
		w.B = append(w.B, 0xdf)
		w.B = binary.BigEndian.AppendUint32(w.B, uint32(n))
	}
}

// ArrayLen writes an array header for n elements.
func (w *Writer) ArrayLen(n int) {
	switch {
	case n < 16:
		w.B = append(w.B, 0x90|byte(n))
	case n <= math.MaxUint16:
		w.B = append(w.B, 0xdc, byte(n>>8), byte(n))
	default:
		w.B = append(w.B, 0xdd)
		w.B = binary.BigEndian.AppendUint32(w.B, uint32(n))
	}
}

// Str writes a string.
func (w *Writer) Str(s string) {
	n := len(s)
	switch {
	case n < 32:
		w.B = append(w.B, 0xa0|byte(n))
	case n <= math.MaxUint8:
		w.B = append(w.B, 0xd9, byte(n))
	case n <= math.MaxUint16:
		w.B = append(w.B, 0xda, byte(n>>8), byte(n))
	default:
		w.B = append(w.B, 0xdb)
		w.B = binary.BigEndian.AppendUint32(w.B, uint32(n))
	}
	w.B = append(w.B, s...)
}

// Bin writes a byte string.
func (w *Writer) Bin(b []byte) {
	n := len(b)
	switch {
	case n <= math.MaxUint8:
		w.B = append(w.B, 0xc4, byte(n))
	case n <= math.MaxUint16:
		w.B = append(w.B, 0xc5, byte(n>>8), byte(n))
	default:
		w.B = append(w.B, 0xc6)
		w.B = binary.BigEndian.AppendUint32(w.B, uint32(n))
	}
	w.B = append(w.B, b...)
}

// Uint writes an unsigned integer in its shortest form.
func (w *Writer) Uint(u uint64) {
	switch {
	case u < 128:
		w.B = append(w.B, byte(u))
	case u <= math.MaxUint8:
		w.B = append(w.B, 0xcc, byte(u))
	case u <= math.MaxUint16:
		w.B = append(w.B, 0xcd, byte(u>>8), byte(u))
	case u <= math.MaxUint32:
		w.B = append(w.B, 0xce)
		w.B = binary.BigEndian.AppendUint32(w.B, uint32(u))
	default:
		w.B = append(w.B, 0xcf)
		w.B = binary.BigEndian.AppendUint64(w.B, u)
	}
}

// Int writes a signed integer in its shortest form.
func (w *Writer) Int(i int64) {
	switch {
	case i >= 0:
		w.Uint(uint64(i))
	case i >= -32:
		w.B = append(w.B, byte(i))
	case i >= math.MinInt8:
		w.B = append(w.B, 0xd0, byte(i))
	case i >= math.MinInt16:
		w.B = append(w.B, 0xd1, byte(i>>8), byte(i))
	case i >= math.MinInt32:
		w.B = append(w.B, 0xd2)
		w.B = binary.BigEndian.AppendUint32(w.B, uint32(i))
	default:
		w.B = append(w.B, 0xd3)
		w.B = binary.BigEndian.AppendUint64(w.B, uint64(i))
	}
}

// Bool writes true or false.
func (w *Writer) Bool(b bool) {
	if b {
		w.B = append(w.B, 0xc3)
	} else {
		w.B = append(w.B, 0xc2)
	}
}

// Nil writes nil.
func (w *Writer) Nil() { w.B = append(w.B, 0xc0) }

// Raw appends already-encoded msgpack.
func (w *Writer) Raw(b []byte) { w.B = append(w.B, b...) }

// maxDepth bounds nesting when skipping unknown values, so a hostile frame of
// nested arrays cannot exhaust the stack. Our own messages nest at most 4 deep.
const maxDepth = 16

// Reader decodes msgpack from a byte slice without copying: StrBytes returns
// sub-slices of the input. Any malformed or truncated input yields
// CodeBadFrame, never a panic.
type Reader struct {
	b   []byte
	off int
	d   *Decoder // for interning room ids; nil in a bare Reader
}

// NewReader returns a reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset points the reader at b.
func (r *Reader) Reset(b []byte) { r.b, r.off = b, 0 }

// Len is the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) - r.off }

func (r *Reader) byte1() (byte, error) {
	if r.off >= len(r.b) {
		return 0, CodeBadFrame
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *Reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, CodeBadFrame
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *Reader) uintN(n int) (uint64, error) {
	p, err := r.take(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	default:
		return binary.BigEndian.Uint64(p), nil
	}
}

// MapLen reads a map header. A nil reads as an empty map.
func (r *Reader) MapLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xc0:
		return 0, nil
	case c == 0xde:
		n, err = r.uintN(2)
	case c == 0xdf:
		n, err = r.uintN(4)
	default:
		return 0, CodeBadFrame
	}
	if err != nil {
		return 0, err
	}
	// Each pair takes at least two bytes: a larger count is a lie.
	if n > uint64(r.Len()/2) {
		return 0, CodeBadFrame
	}
	return int(n), nil
}

// ArrayLen reads an array header. A nil reads as an empty array.
func (r *Reader) ArrayLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xc0:
		return 0, nil
	case c == 0xdc:
		n, err = r.uintN(2)
	case c == 0xdd:
		n, err = r.uintN(4)
	default:
		return 0, CodeBadFrame
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.Len()) {
		return 0, CodeBadFrame
	}
	return int(n), nil
}

// StrBytes reads a string (or binary) without copying. A nil reads as "".
func (r *Reader) StrBytes() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xc0:
		return nil, nil
	case c == 0xd9, c == 0xc4:
		n, err = r.uintN(1)
	case c == 0xda, c == 0xc5:
		n, err = r.uintN(2)
	case c == 0xdb, c == 0xc6:
		n, err = r.uintN(4)
	default:
		return nil, CodeBadFrame
	}
	if err != nil {
		return nil, err
	}
	if n > uint64(r.Len()) {
		return nil, CodeBadFrame
	}
	return r.take(int(n))
}

// Str reads a string, which must be valid UTF-8 (CodeInvalidText otherwise).
func (r *Reader) Str() (string, error) {
	b, err := r.StrBytes()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", CodeInvalidText
	}
	return string(b), nil
}

// Bin reads a binary (or string) and copies it.
func (r *Reader) Bin() ([]byte, error) {
	b, err := r.StrBytes()
	if err != nil || b == nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// Int reads any msgpack integer as int64 (CodeBadFrame if it does not fit).
func (r *Reader) Int() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c == 0xc0:
		return 0, nil
	}
	var u uint64
	switch c {
	case 0xcc:
		u, err = r.uintN(1)
	case 0xcd:
		u, err = r.uintN(2)
	case 0xce:
		u, err = r.uintN(4)
	case 0xcf:
		u, err = r.uintN(8)
		if err == nil && u > math.MaxInt64 {
			return 0, CodeBadFrame
		}
	case 0xd0:
		u, err = r.uintN(1)
		return int64(int8(u)), err
	case 0xd1:
		u, err = r.uintN(2)
		return int64(int16(u)), err
	case 0xd2:
		u, err = r.uintN(4)
		return int64(int32(u)), err
	case 0xd3:
		u, err = r.uintN(8)
		return int64(u), err
	default:
		return 0, CodeBadFrame
	}
	return int64(u), err
}

// Uint reads a non-negative integer (CodeBadFrame if negative).
func (r *Reader) Uint() (uint64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return uint64(c), nil
	case c == 0xc0:
		return 0, nil
	}
	switch c {
	case 0xcc:
		return r.uintN(1)
	case 0xcd:
		return r.uintN(2)
	case 0xce:
		return r.uintN(4)
	case 0xcf:
		return r.uintN(8)
	case 0xd0, 0xd1, 0xd2, 0xd3:
		r.off--
		i, err := r.Int()
		if err != nil || i < 0 {
			return 0, CodeBadFrame
		}
		return uint64(i), nil
	}
	return 0, CodeBadFrame
}

// Uint32 reads a non-negative integer that fits 32 bits.
func (r *Reader) Uint32() (uint32, error) {
	u, err := r.Uint()
	if err != nil {
		return 0, err
	}
	if u > math.MaxUint32 {
		return 0, CodeBadFrame
	}
	return uint32(u), nil
}

// Bool reads a boolean. A nil reads as false.
func (r *Reader) Bool() (bool, error) {
	c, err := r.byte1()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc3:
		return true, nil
	case 0xc2, 0xc0:
		return false, nil
	}
	return false, CodeBadFrame
}

// IsNil consumes a nil if one is next and reports whether it did.
func (r *Reader) IsNil() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

// Skip consumes one value of any type, so unknown keys can be ignored.
func (r *Reader) Skip() error { return r.skip(0) }

func (r *Reader) skip(depth int) error {
	if depth > maxDepth {
		return CodeBadFrame
	}
	c, err := r.byte1()
	if err != nil {
		return err
	}
	var n uint64
	switch {
	case c < 0x80, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		return nil
	case c&0xe0 == 0xa0:
		_, err = r.take(int(c & 0x1f))
		return err
	case c&0xf0 == 0x90:
		return r.skipN(int(c&0x0f), depth)
	case c&0xf0 == 0x80:
		return r.skipN(2*int(c&0x0f), depth)
	}
	switch c {
	case 0xcc, 0xd0:
		_, err = r.take(1)
	case 0xcd, 0xd1:
		_, err = r.take(2)
	case 0xce, 0xd2, 0xca:
		_, err = r.take(4)
	case 0xcf, 0xd3, 0xcb:
		_, err = r.take(8)
	case 0xd4:
		_, err = r.take(2)
	case 0xd5:
		_, err = r.take(3)
	case 0xd6:
		_, err = r.take(5)
	case 0xd7:
		_, err = r.take(9)
	case 0xd8:
		_, err = r.take(17)
	case 0xc4, 0xd9:
		n, err = r.uintN(1)
		if err == nil {
			_, err = r.take(int(n))
		}
	case 0xc5, 0xda:
		n, err = r.uintN(2)
		if err == nil {
			_, err = r.take(int(n))
		}
	case 0xc6, 0xdb:
		n, err = r.uintN(4)
		if err == nil {
			if n > uint64(r.Len()) {
				return CodeBadFrame
			}
			_, err = r.take(int(n))
		}
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32: length, type byte, data
		n, err = r.uintN(1 << (c - 0xc7)) // 1, 2 or 4 length bytes
		if err == nil {
			if n > uint64(r.Len()) {
				return CodeBadFrame
			}
			_, err = r.take(int(n) + 1)
		}
	case 0xdc:
		n, err = r.uintN(2)
		if err == nil {
			err = r.skipN(int(n), depth)
		}
	case 0xdd:
		n, err = r.uintN(4)
		if err == nil {
			if n > uint64(r.Len()) {
				return CodeBadFrame
			}
			err = r.skipN(int(n), depth)
		}
	case 0xde:
		n, err = r.uintN(2)
		if err == nil {
			err = r.skipN(2*int(n), depth)
		}
	case 0xdf:
		n, err = r.uintN(4)
		if err == nil {
			if n > uint64(r.Len()) {
				return CodeBadFrame
			}
			err = r.skipN(2*int(n), depth)
		}
	default: // 0xc1 is never used
		return CodeBadFrame
	}
	return err
}

func (r *Reader) skipN(n, depth int) error {
	if n > r.Len() {
		return CodeBadFrame
	}
	for i := 0; i < n; i++ {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}
