package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Proc is one process of the topology, which a test may kill and start again with the
// same command, environment and ports.
type Proc struct {
	Name string
	path string
	args []string
	env  []string
	dir  string
	log  string // its stdout and stderr, appended across restarts

	cmd  *exec.Cmd
	done chan struct{}
	err  error // how it ended, once done is closed
}

func newProc(dir, name, path string, env []string, args ...string) *Proc {
	return &Proc{Name: name, path: path, args: args, env: env, dir: dir, log: filepath.Join(dir, name+".log")}
}

// Start runs the process; its output goes to its log file. detach puts it in a process
// group of its own, so that it outlives the caller (scripts/cluster.sh up).
func (p *Proc) start(detach bool) error {
	if p.Running() {
		return fmt.Errorf("%s is already running", p.Name)
	}
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	fmt.Fprintf(out, "==== %s: start %s\n", time.Now().Format(time.RFC3339Nano), p.Name)
	cmd := exec.Command(p.path, p.args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = p.env, p.dir, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: detach}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		p.err = cmd.Wait()
		close(done)
	}(p.done)
	return nil
}

// Start runs the process again after Kill or Stop.
func (p *Proc) Start() error { return p.start(false) }

// Running reports whether the process was started and has not ended.
func (p *Proc) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid is the running process's id, or 0.
func (p *Proc) Pid() int {
	if !p.Running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill ends the process with SIGKILL, as a crash or an OOM kill would, and waits for it.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to stop (SIGTERM: relay drains, Temporal hands off its shards)
// and kills it after grace.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var exit *exec.ExitError
		if errors.As(p.err, &exit) {
			return fmt.Errorf("%s stopped with %v", p.Name, p.err)
		}
		return nil
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s: killed", p.Name, grace)
	}
}

// Exited is closed when the process ends.
func (p *Proc) exited() <-chan struct{} { return p.done }

// Log is the process's output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}
