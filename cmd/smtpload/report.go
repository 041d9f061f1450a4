package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// printReport writes a markdown table of the JSON reports in files, one row
// each (`smtpload -report a.json b.json …`).
func printReport(w io.Writer, files []string) error {
	var rs []*result
	var names []string
	ceiling := map[string]float64{} // workload → msgs/s of the row labelled ceiling/<workload>
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		lbl := r.Config.Label
		if lbl == "" {
			lbl = f
		}
		if wl, ok := strings.CutPrefix(lbl, "ceiling/"); ok {
			ceiling[wl] = r.MsgsPerS
		}
		rs, names = append(rs, &r), append(names, lbl)
	}
	fmt.Fprintln(w, "| run | msgs/s | × ceiling | MB/s | dot→250 p50 / p99 ms | setup p50 / p99 ms | server CPU ms/msg (load / incl. drain) | peak RSS MB | delivered / accepted (at load end) | queue depth at end | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for i, r := range rs {
		lbl := names[i]
		ratio := "-"
		if _, wl, ok := strings.Cut(lbl, "/"); ok && ceiling[wl] > 0 {
			ratio = fmt.Sprintf("%.2f", r.MsgsPerS/ceiling[wl])
		}
		cpu, rss, deliv, depth := "-", "-", "-", "-"
		if s := r.Server; s != nil {
			var c, m []string
			for _, p := range s.Procs {
				if p.Err != "" {
					c = append(c, p.Name+" ?")
					continue
				}
				c = append(c, fmt.Sprintf("%s %.2f / %.2f", p.Name, p.CPUMsPerMsg, p.CPUMsPerMsgAll))
				star := ""
				if !p.HWMReset {
					star = "*"
				}
				m = append(m, fmt.Sprintf("%s %.0f%s", p.Name, float64(p.VmHWMKB)/1024, star))
			}
			if len(c) > 0 {
				cpu, rss = strings.Join(c, "; "), strings.Join(m, "; ")
			}
			if d := s.Delivery; d != nil {
				if d.SinkStats != "" {
					deliv = fmt.Sprintf("%d / %d (%d)", d.Delivered, r.Accepted, d.DeliveredAtLoadEnd)
					if !d.Drained {
						deliv += fmt.Sprintf(" NOT DRAINED after %.0fs", d.DrainS)
					}
				}
				if d.QueueDepth != nil {
					depth = fmt.Sprintf("%d queued, %d retrying (max %d during load)", d.QueueDepth["queued"], d.QueueDepth["retrying"], d.QueueDepthMax)
				}
			}
		}
		timedOut := ""
		if r.TimedOut {
			timedOut = " (time limit hit)"
		}
		fmt.Fprintf(w, "| %s | %.1f%s | %s | %.2f | %.2f / %.2f | %.1f / %.1f | %s | %s | %s | %s | %d |\n",
			lbl, r.MsgsPerS, timedOut, ratio, r.MBPerS, r.DataLat.P50, r.DataLat.P99, r.SetupLat.P50, r.SetupLat.P99,
			cpu, rss, deliv, depth, r.ErrorCount)
	}
	return nil
}
