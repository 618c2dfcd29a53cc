package manager

import "sync"

// queue is a bounded many-producer, one-consumer FIFO. Producers never block:
// push reports full or closed instead. The consumer takes everything at once
// (drain), so a busy room pays one lock per burst, not per message, and an idle
// room holds no buffer: the slices grow with use and shrink after a burst.
//
// Hot path (push is called by Submit for every message): one uncontended lock,
// no allocation once the slice has grown.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	max    int
	closed bool
	wake   chan struct{} // capacity 1: "something arrived", shared with the consumer
}

type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushClosed
)

// shrinkAbove is the capacity (items) above which a drained buffer is dropped
// instead of kept, so a room back from a burst does not hold its peak memory.
const shrinkAbove = 4096

func (q *queue[T]) push(v T) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return pushFull
	}
	q.items = append(q.items, v)
	first := len(q.items) == 1
	q.mu.Unlock()
	if first {
		signal(q.wake)
	}
	return pushed
}

// drain returns everything queued, swapping in spare (the previous drain's
// slice, already consumed) so the two buffers alternate without allocating.
func (q *queue[T]) drain(spare []T) []T {
	clear(spare)
	if cap(spare) > shrinkAbove {
		spare = nil
	}
	q.mu.Lock()
	out := q.items
	q.items = spare[:0]
	q.mu.Unlock()
	return out
}

// close stops further pushes; what is queued stays for the consumer.
func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	signal(q.wake)
}

// closeIfEmpty closes the queue only when nothing is waiting in it.
func (q *queue[T]) closeIfEmpty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 {
		return false
	}
	q.closed = true
	return true
}

// closedAndEmpty reports that the consumer has taken everything it will get.
func (q *queue[T]) closedAndEmpty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && len(q.items) == 0
}

func (q *queue[T]) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// signal wakes a consumer without blocking: one pending wake is enough.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
