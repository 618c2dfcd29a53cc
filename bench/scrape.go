package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The servers' /metrics are read with a few lines of parsing rather than
// prometheus/common/expfmt, which is not in go.mod: the bench needs only
// sample lines (name, labels, value) of the text exposition format.

const (
	scrapeTimeout = 2 * time.Second
	// maxMetricsBody bounds one /metrics response.
	maxMetricsBody = 16 << 20
	// scrapeEvery is how often servers are scraped during a run (peak RSS).
	scrapeEvery = 5 * time.Second
)

// sample is one line of the text format.
type sample struct {
	name   string
	labels string // raw, without braces: `reason="budget",room="x"`
	value  float64
}

// key names a series: name{labels}.
func (s sample) key() string {
	if s.labels == "" {
		return s.name
	}
	return s.name + "{" + s.labels + "}"
}

// parseMetrics reads the sample lines of a Prometheus text exposition;
// comments, blank and unparsable lines are skipped.
func parseMetrics(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		var s sample
		rest := line
		if i := strings.IndexAny(line, "{ \t"); i < 0 {
			continue
		} else if line[i] == '{' {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.name, s.labels, rest = line[:i], line[i+1:j], line[j+1:]
		} else {
			s.name, rest = line[:i], line[i:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// scrapeOne fetches and parses one endpoint.
func scrapeOne(ctx context.Context, url string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxMetricsBody))
}

// serverWatch follows one server over the run.
type serverWatch struct {
	url         string
	first, last map[string]float64
	firstT      time.Time
	lastT       time.Time
	peakRSS     float64
	err         error
	everReached bool
}

// scraper scrapes every endpoint at the start, periodically and at the end.
type scraper struct {
	mu      sync.Mutex
	servers []*serverWatch
}

func newScraper(urls []string) *scraper {
	s := &scraper{}
	for _, u := range urls {
		s.servers = append(s.servers, &serverWatch{url: u})
	}
	return s
}

// scrape reads every endpoint once, in parallel.
func (s *scraper) scrape(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			samples, err := scrapeOne(ctx, w.url)
			now := time.Now()
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				w.err = err
				return
			}
			m := make(map[string]float64, len(samples))
			for _, x := range samples {
				m[x.key()] = x.value
			}
			if w.first == nil {
				w.first, w.firstT = m, now
			}
			w.last, w.lastT, w.err, w.everReached = m, now, nil, true
			if rss := m["process_resident_memory_bytes"]; rss > w.peakRSS {
				w.peakRSS = rss
			}
		}()
	}
	wg.Wait()
}

// report turns what was scraped into the report's figures: CPU used over
// the run, RSS, every counter whose name holds "drop" (increase over the
// run) and every danmaku_ gauge-like series holding "connections".
func (s *scraper) report() []Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Server
	for _, w := range s.servers {
		f := Server{URL: w.url, Reachable: w.everReached}
		if w.err != nil {
			f.Error = w.err.Error()
		}
		if !w.everReached {
			out = append(out, f)
			continue
		}
		f.CPUSecs = w.last["process_cpu_seconds_total"] - w.first["process_cpu_seconds_total"]
		if d := w.lastT.Sub(w.firstT).Seconds(); d > 0 {
			f.CPUCores = f.CPUSecs / d
		}
		f.RSS, f.PeakRSS = w.last["process_resident_memory_bytes"], w.peakRSS
		for k, v := range w.last {
			name := k
			if i := strings.IndexByte(k, '{'); i >= 0 {
				name = k[:i]
			}
			switch {
			case strings.Contains(name, "drop") && !strings.HasSuffix(name, "_created"):
				if f.Drops == nil {
					f.Drops = map[string]float64{}
				}
				f.Drops[k] = v - w.first[k]
			case strings.HasPrefix(name, "danmaku_") && strings.Contains(name, "connections"):
				if f.Gauges == nil {
					f.Gauges = map[string]float64{}
				}
				f.Gauges[k] = v
			}
		}
		out = append(out, f)
	}
	return out
}
