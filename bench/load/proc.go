package load

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// rssBytes reads the process's resident set size from /proc (Linux); 0
// where that is not available.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// CPUSeconds is the user and system CPU time this process used.
func CPUSeconds() float64 { return cpuSeconds() }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// MaxConnsPerWorker is the most connections one worker process may hold:
// the configured cap, lowered to what the open-files limit allows after
// the worker's own files.
func MaxConnsPerWorker(configured int) int {
	if fl := openFilesLimit(); fl > 0 {
		return max(1, min(configured, fl-fdHeadroom))
	}
	return configured
}
