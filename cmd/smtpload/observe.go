package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Server-side observation: CPU time and peak RSS of the server's processes
// (from /proc), delivered count at a downstream sink (its stats file) and the
// gateway's delivery queue depth (its Prometheus /metrics).

// userHZ is the unit of utime/stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

type procWatch struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// CPU time (utime+stime of all threads) during the load, and from the
	// start of the load until the drain wait ended (delivery included).
	CPUSWindow      float64 `json:"cpu_s_window"`
	CPUMsPerMsg     float64 `json:"cpu_ms_per_msg_window"`
	CPUSWithDrain   float64 `json:"cpu_s_with_drain"`
	CPUMsPerMsgAll  float64 `json:"cpu_ms_per_msg_with_drain"`
	CPUPctOfOneCore float64 `json:"cpu_pct_of_one_core_window"`
	// VmHWM after the run. HWMReset says whether it was reset (clear_refs)
	// before the run; if not, it is the peak since the process started.
	VmHWMKB  int64  `json:"vmhwm_kb"`
	VmRSSKB  int64  `json:"vmrss_kb"`
	HWMReset bool   `json:"hwm_reset"`
	Err      string `json:"error,omitempty"`

	t0, t1, t2 float64
}

type deliveryReport struct {
	SinkStats          string           `json:"sink_stats_file,omitempty"`
	SinkBefore         int64            `json:"sink_before"`
	DeliveredAtLoadEnd int64            `json:"delivered_at_load_end"`
	Delivered          int64            `json:"delivered"`
	Drained            bool             `json:"drained"`
	DrainS             float64          `json:"drain_s"`
	QueueDepth         map[string]int64 `json:"queue_depth,omitempty"`
	// QueueDepthMax is the largest queued+retrying seen while the load ran
	// (scraped once a second and as it ended).
	QueueDepthMax int64  `json:"queue_depth_max_during_load"`
	MetricsErr    string `json:"metrics_error,omitempty"`
}

type serverReport struct {
	Procs    []*procWatch    `json:"procs,omitempty"`
	Delivery *deliveryReport `json:"delivery,omitempty"`
}

// cpuSeconds returns utime+stime of pid in seconds.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return float64(ut+st) / userHZ, nil
}

// memKB returns VmHWM and VmRSS of pid in kB.
func memKB(pid int) (hwm, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss, sc.Err()
}

// parsePIDs reads "name=PID" or "PID".
func parsePIDs(specs []string) ([]*procWatch, error) {
	var out []*procWatch
	for _, s := range specs {
		name, p, ok := strings.Cut(s, "=")
		if !ok {
			name, p = "server", s
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad -pid %q (want name=PID)", s)
		}
		out = append(out, &procWatch{Name: name, PID: pid})
	}
	return out, nil
}

func (p *procWatch) start() {
	// Writing 5 to clear_refs resets the peak RSS (Linux >= 4.0).
	p.HWMReset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.PID), []byte("5"), 0) == nil
	var err error
	if p.t0, err = cpuSeconds(p.PID); err != nil {
		p.Err = err.Error()
	}
}

func (p *procWatch) loadEnd() { p.t1, _ = cpuSeconds(p.PID) }

func (p *procWatch) drainEnd() {
	var err error
	if p.t2, err = cpuSeconds(p.PID); err != nil {
		p.Err = err.Error()
	}
}

func (p *procWatch) finish(accepted int, wall time.Duration) {
	if p.Err != "" {
		return
	}
	p.CPUSWindow = round(p.t1-p.t0, 2)
	p.CPUSWithDrain = round(p.t2-p.t0, 2)
	p.CPUPctOfOneCore = round(100*(p.t1-p.t0)/wall.Seconds(), 1)
	if accepted > 0 {
		p.CPUMsPerMsg = round(1000*(p.t1-p.t0)/float64(accepted), 3)
		p.CPUMsPerMsgAll = round(1000*(p.t2-p.t0)/float64(accepted), 3)
	}
	p.VmHWMKB, p.VmRSSKB, _ = memKB(p.PID)
}

// sinkCount reads the "messages" counter of a sink stats file (this tool's
// -sink mode and /work/shared/bench/sink write the same format).
func sinkCount(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	var m struct {
		Messages int64 `json:"messages"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return -1, err
	}
	return m.Messages, nil
}

// waitDrain waits until the sink holds want more messages than before, at
// most timeout.
func (d *deliveryReport) waitDrain(accepted int, timeout time.Duration) {
	start := time.Now()
	for {
		n, _ := sinkCount(d.SinkStats)
		d.Delivered = n - d.SinkBefore
		if d.Delivered >= int64(accepted) {
			d.Drained = true
			break
		}
		if time.Since(start) > timeout {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.DrainS = round(time.Since(start).Seconds(), 2)
}

// watchQueue scrapes url once a second and once more when stop is closed,
// and returns the largest queued+retrying depth seen.
func watchQueue(url string, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			stopped := false
			select {
			case <-stop:
				stopped = true // one last scrape: the depth as the load ends (the gauge lags up to 1 s)
			case <-t.C:
			}
			if d, err := queueDepth(url); err == nil {
				peak = max(peak, d["queued"]+d["retrying"])
			}
			if stopped {
				out <- peak
				return
			}
		}
	}()
	return out
}

// queueDepth scrapes pigeonpost_delivery_queue_depth{state=...} from url.
func queueDepth(url string) (map[string]int64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "pigeonpost_delivery_queue_depth")
		if !ok {
			continue
		}
		state := "total"
		if lbl, after, ok := strings.Cut(rest, "}"); ok {
			if _, v, ok := strings.Cut(lbl, `state="`); ok {
				state = strings.TrimSuffix(v, `"`)
			}
			rest = after
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			out[state] = int64(v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("pigeonpost_delivery_queue_depth not found")
	}
	return out, sc.Err()
}

func (s *serverReport) summary(accepted int) string {
	var parts []string
	for _, p := range s.Procs {
		if p.Err != "" {
			parts = append(parts, fmt.Sprintf("%s pid %d: %s", p.Name, p.PID, p.Err))
			continue
		}
		hwm := "peak RSS"
		if !p.HWMReset {
			hwm = "peak RSS since start"
		}
		parts = append(parts, fmt.Sprintf("%s cpu %.2f ms/msg (%.0f%% of 1 core; %.2f ms/msg incl. drain), %s %.1f MB",
			p.Name, p.CPUMsPerMsg, p.CPUPctOfOneCore, p.CPUMsPerMsgAll, hwm, float64(p.VmHWMKB)/1024))
	}
	if d := s.Delivery; d != nil {
		if d.SinkStats != "" {
			st := "kept up"
			if !d.Drained {
				st = "DID NOT DRAIN"
			}
			parts = append(parts, fmt.Sprintf("delivered %d/%d (%d at load end, drain %.1fs: %s)",
				d.Delivered, accepted, d.DeliveredAtLoadEnd, d.DrainS, st))
		}
		if d.QueueDepth != nil {
			parts = append(parts, fmt.Sprintf("queue depth at end queued=%d retrying=%d (max %d during load)",
				d.QueueDepth["queued"], d.QueueDepth["retrying"], d.QueueDepthMax))
		} else if d.MetricsErr != "" {
			parts = append(parts, "queue depth: "+d.MetricsErr)
		}
	}
	return "  server: " + strings.Join(parts, " | ")
}
