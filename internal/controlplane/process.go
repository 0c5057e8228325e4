package controlplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// process is one control-plane program, run in its own process group with its
// output in a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, valid after done
}

// startProcess starts bin with args in its own process group, logging its
// stdout and stderr to <logDir>/<name>.log. The child also gets SIGKILL if
// this process dies (Pdeathsig), so a test binary that panics or is killed
// leaves nothing behind.
func startProcess(name, bin string, args []string, env []string, logDir string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logFile, "### %s %q\n", bin, args)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	registerPgid(cmd.Process.Pid)
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited, with its error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		if p.err == nil {
			return true, fmt.Errorf("%s exited", p.name)
		}
		return true, fmt.Errorf("%s exited: %w", p.name, p.err)
	default:
		return false, nil
	}
}

// signal sends sig to the process group.
func (p *process) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits for the process to exit.
func (p *process) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	// Also reaps anything left in the group after the leader exited.
	p.signal(syscall.SIGKILL)
	<-p.done
	unregisterPgid(p.cmd.Process.Pid)
}

// stopAll stops procs in reverse start order; all but the first (etcd, the
// storage) are stopped together, then the first one.
func stopAll(procs []*process, grace time.Duration) {
	if len(procs) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, p := range procs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(grace)
		}()
	}
	wg.Wait()
	procs[0].stop(grace)
}

// live process groups, killed by the interrupt handler.
var (
	pgidMu  sync.Mutex
	pgids   = map[int]bool{}
	sigOnce sync.Once
)

func registerPgid(pid int) {
	pgidMu.Lock()
	defer pgidMu.Unlock()
	pgids[pid] = true
}

func unregisterPgid(pid int) {
	pgidMu.Lock()
	defer pgidMu.Unlock()
	delete(pgids, pid)
}

// killAll sends SIGKILL to every live process group started by this package.
func killAll() {
	pgidMu.Lock()
	defer pgidMu.Unlock()
	for pid := range pgids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// installInterruptHandler makes SIGINT, SIGTERM and SIGHUP kill every process
// group this package started, then re-raises the signal so the program ends
// as it would have. Start installs it; programs using StartProcess handle
// signals themselves and call Stop.
func installInterruptHandler() {
	sigOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			sig := <-ch
			fmt.Fprintf(os.Stderr, "controlplane: %v: stopping control-plane processes\n", sig)
			killAll()
			signal.Reset(sig)
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), s)
			}
			time.Sleep(time.Second)
			os.Exit(2)
		}()
	})
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are released
// before returning, so another process could take one first; the listeners
// are held until all n are chosen so the n ports differ.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return nil, errors.New("finding a free port: listener has no TCP address")
		}
		ports = append(ports, addr.Port)
	}
	return ports, nil
}
