package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// process is one redis-server a test runs (alone, as a cluster node or as
// a Sentinel): started until it answers, killed and reaped.
type process struct {
	bin     string
	dir     string // its working directory: AOF and cluster files
	logPath string // stdout+stderr of every run, appended

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when not running
	exited chan struct{} // closed when cmd has been reaped
}

// start runs the server with args and waits until ping succeeds; on
// failure the process is killed and the error includes the server's log.
func (p *process) start(args []string, ping func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("redis-server is already running")
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	shown := make([]string, 0, len(args))
	for _, a := range args {
		if a == "" {
			a = "''"
		}
		shown = append(shown, a)
	}
	fmt.Fprintf(logf, "=== testkit: %s %s\n", p.bin, strings.Join(shown, " "))

	cmd := exec.Command(p.bin, args...)
	cmd.Dir = p.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		cmd.Wait() //nolint:errcheck // the state is in cmd.ProcessState
		close(exited)
	}()

	deadline := time.Now().Add(redisStartBudget)
	for {
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("redis-server exited before answering PING (%v); log %s:\n%s",
				cmd.ProcessState, p.logPath, p.log())
		default:
		}
		err := ping()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill() //nolint:errcheck
			<-exited
			p.cmd = nil
			return fmt.Errorf("redis-server did not answer PING within %v (last: %v); log %s:\n%s",
				redisStartBudget, err, p.logPath, p.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill SIGKILLs the server, if running, and waits until it is reaped.
func (p *process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill() //nolint:errcheck // fails only if already exited
	<-p.exited
	p.cmd = nil
}

// running reports whether the server is running.
func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// log returns what the server wrote, every run of it.
func (p *process) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	return string(b)
}
