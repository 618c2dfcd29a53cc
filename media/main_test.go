package media

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if goroutines outlive the tests: every relay,
// session, pion peer connection and ffmpeg watcher must be gone. goleak
// retries for a while, which covers pion's goroutines that exit just
// after Close returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
