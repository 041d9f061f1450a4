package main

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type latStats struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// stats sorts d and returns its summary in milliseconds (nearest-rank
// percentiles, as loadgen computes them).
func stats(d []time.Duration) latStats {
	if len(d) == 0 {
		return latStats{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return math.Round(float64(x)/1e3) / 1e3 }
	pct := func(p float64) float64 {
		i := max(int(math.Ceil(p*float64(len(d))))-1, 0)
		return ms(d[i])
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return latStats{N: len(d), Mean: ms(sum / time.Duration(len(d))), P50: pct(.50), P95: pct(.95), P99: pct(.99), Max: ms(d[len(d)-1])}
}

// result is the JSON report. The fields up to Env have the names and
// meanings of loadgen's report; Server is smtpload's addition.
type result struct {
	Config        *config           `json:"config"`
	MessageBytes  int               `json:"message_bytes"`
	Started       string            `json:"started"`
	WallS         float64           `json:"wall_s"`
	Attempted     int64             `json:"attempted"`
	Accepted      int               `json:"accepted"`
	Failed        int               `json:"failed"`
	MsgsPerS      float64           `json:"msgs_per_s"`
	MBPerS        float64           `json:"mb_per_s"`
	DataLat       latStats          `json:"data_latency"`
	TxnLat        latStats          `json:"txn_latency"`
	SetupLat      latStats          `json:"setup_latency"`
	ConnectLat    latStats          `json:"setup_connect_latency"`
	TLSLat        latStats          `json:"setup_starttls_latency"`
	AuthLat       latStats          `json:"setup_auth_latency"`
	RsetLat       latStats          `json:"rset_latency"`
	QuitLat       latStats          `json:"quit_latency"`
	Connections   int               `json:"connections"`
	SetupFailures int               `json:"setup_failures"`
	ReplyCodes    map[string]int    `json:"reply_codes"`
	Errors        map[string]int    `json:"errors"`
	ErrorCount    int               `json:"error_count"`
	ErrorSamples  []string          `json:"error_samples,omitempty"`
	TimedOut      bool              `json:"timed_out"`
	CPU           map[string]any    `json:"cpu"`
	Env           map[string]string `json:"env"`
	Server        *serverReport     `json:"server,omitempty"`
}

type cpuTimes struct{ busy, total uint64 }

// readProcStat returns the machine's busy and total jiffies.
func readProcStat() (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTimes{}, false
	}
	var t cpuTimes
	for i, s := range f[1:] {
		if i >= 8 {
			break
		}
		v, _ := strconv.ParseUint(s, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
		t.total += v
	}
	return t, true
}

func rusage() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func round(x float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(x*p) / p
}

// summary is the one-line human report (loadgen's line, plus the server
// figures when they were observed).
func summary(r *result) string {
	codes := make([]string, 0, len(r.ReplyCodes))
	for k, v := range r.ReplyCodes {
		codes = append(codes, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(codes)
	lbl := r.Config.Label
	if lbl == "" {
		lbl = r.Config.Addr
	}
	s := fmt.Sprintf("%s: %d/%d accepted in %.2fs = %.1f msg/s (%.2f MB/s) | dot->250 p50 %.2f p95 %.2f p99 %.2f ms | setup p50 %.2f p99 %.2f ms (%d conns) | codes %s | errors %d",
		lbl, r.Accepted, r.Config.Total, r.WallS, r.MsgsPerS, r.MBPerS,
		r.DataLat.P50, r.DataLat.P95, r.DataLat.P99, r.SetupLat.P50, r.SetupLat.P99, r.Connections,
		strings.Join(codes, ","), r.ErrorCount)
	if r.TimedOut {
		s += " | TIME LIMIT HIT"
	}
	s += fmt.Sprintf(" | loadgen cpu %.0f%% of 1 core", r.CPU["loadgen_pct_of_one_core"])
	if v, ok := r.CPU["system_busy_pct_of_all_cores"]; ok {
		s += fmt.Sprintf(", system busy %.0f%%", v)
	}
	if len(r.ErrorSamples) > 0 {
		s += fmt.Sprintf(" | first error: %s", r.ErrorSamples[0])
	}
	if r.Server != nil {
		s += "\n" + r.Server.summary(r.Accepted)
	}
	return s
}
