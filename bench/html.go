package bench

import (
	"bytes"
	"fmt"
	"html/template"
	"os"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/types"
)

// echartsJS is the ECharts build the charts need: go-echarts' assets host.
// Opening the report needs it reachable (or a local copy at that path).
const echartsJS = "https://go-echarts.github.io/go-echarts-assets/assets/echarts.min.js"

// WriteHTML writes the report as one HTML page: the verdict and checks, the
// main figures, and charts of latency, connections and deliveries over time.
func (r *Report) WriteHTML(path string) error {
	var page bytes.Buffer
	if err := r.renderHTML(&page); err != nil {
		return fmt.Errorf("render html report: %w", err)
	}
	if err := os.WriteFile(path, page.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

func (r *Report) renderHTML(buf *bytes.Buffer) error {
	s := r.Series
	xs := make([]string, len(s.T))
	for i, t := range s.T {
		xs[i] = fmt.Sprintf("%.0fs", t)
	}
	latency := line("End-to-end latency (p99 per second, ms)", "ms", xs,
		series{"chat p50", s.LossyP50}, series{"chat p99", s.LossyP99}, series{"reliable p99", s.ReliableP99})
	conns := line("Connections", "viewers", xs,
		series{"connected", ints(s.Connected)}, series{"joined", ints(s.Joined)})
	deliveries := line("Deliveries per second", "per s", xs,
		series{"chat entries", s.LossyPerSec}, series{"reliable entries", s.ReliablePerSec},
		series{"batches", s.BatchesPerSec}, series{"chats sent", s.ChatsPerSec})
	var cs []template.HTML
	for _, c := range []*charts.Line{latency, conns, deliveries} {
		sn := c.RenderSnippet()
		cs = append(cs, template.HTML(sn.Element+sn.Script)) // go-echarts' own markup
	}
	var summary bytes.Buffer
	r.WriteSummary(&summary)
	return pageTpl.Execute(buf, map[string]any{"R": r, "Charts": cs, "JS": echartsJS, "Summary": summary.String()})
}

type series struct {
	name string
	data []float64
}

func ints(v []int64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func line(title, unit string, xs []string, ss ...series) *charts.Line {
	l := charts.NewLine()
	l.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{Width: "1000px", Height: "360px", Theme: types.ThemeWesteros}),
		charts.WithTitleOpts(opts.Title{Title: title}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "30px"}),
		charts.WithYAxisOpts(opts.YAxis{Name: unit}),
		charts.WithDataZoomOpts(opts.DataZoom{Type: "inside"}),
	)
	l.SetXAxis(xs)
	for _, s := range ss {
		data := make([]opts.LineData, len(s.data))
		for i, v := range s.data {
			data[i] = opts.LineData{Value: v}
		}
		l.AddSeries(s.name, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
	}
	return l
}

var pageTpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>danmaku bench: {{.R.Scenario}}</title>
<script src="{{.JS}}"></script>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
.pass{color:#080;font-weight:bold}.fail{color:#b00;font-weight:bold}pre{background:#f6f6f6;padding:1em;overflow-x:auto}
</style></head><body>
<h1>danmaku bench: {{.R.Scenario}} —
{{if .R.Interrupted}}<span class="fail">interrupted</span>{{else if .R.Passed}}<span class="pass">PASS</span>{{else}}<span class="fail">FAIL</span>{{end}}</h1>
{{if .R.Description}}<p>{{.R.Description}}</p>{{end}}
<p>Run {{.R.RunID}} · {{.R.Started.Format "2006-01-02 15:04:05 MST"}} · {{printf "%.1f" .R.Elapsed}} s · {{.R.Workers}} workers · targets {{range .R.Targets}}<code>{{.}}</code> {{end}}</p>
<table><tr><th>check</th><th>target</th><th>actual</th><th>result</th><th>detail</th></tr>
{{range .R.Checks}}<tr><td>{{.Name}}</td><td>{{.Target}}</td><td>{{.Actual}}</td><td>{{if .Pass}}<span class="pass">ok</span>{{else}}<span class="fail">missed</span>{{end}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>
{{range .Charts}}<div>{{.}}</div>{{end}}
<h2>Summary</h2><pre>{{.Summary}}</pre>
</body></html>
`))
