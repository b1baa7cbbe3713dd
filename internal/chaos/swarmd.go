package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/podswarm/swarm"
)

// Swarmd is a Target over swarmd processes on 127.0.0.x, driven through
// their control sockets. Each manager's data dir is a small tmpfs so that
// the disk-full fault can fill it: 64 MiB, since raft.db keeps Raft's
// trailing logs (10,240 entries, about 2 KiB each here) and a bolt file
// never shrinks: 24 MiB filled up by itself after ~14,000 writes. Close
// kills every process, removes the iptables chain and unmounts the tmpfs,
// whatever happened before.
type Swarmd struct {
	bin, dir string
	net      *netFilter
	procs    []*proc
	managers int
	token    map[swarm.Role]string

	mu      sync.Mutex
	partial bool
	filled  []string // fill files to remove at heal
}

// proc is one swarmd process slot (the process may be dead or stopped).
type proc struct {
	i       int
	name    string
	ip      string
	data    string
	sock    string
	role    swarm.Role
	mounted bool
	cl      *controlClient

	cmd     *exec.Cmd
	done    chan struct{}
	addr    string
	stopped bool // SIGSTOPped
	down    bool // killed or shut down, to start again at heal
}

// NewSwarmd starts managers+workers swarmd processes from bin under dir.
// It needs root (iptables, tmpfs mounts).
func NewSwarmd(bin, dir string, managers, workers int) (*Swarmd, error) {
	f, err := newNetFilter()
	if err != nil {
		return nil, err
	}
	s := &Swarmd{bin: bin, dir: dir, net: f, managers: managers, token: map[swarm.Role]string{}}
	// 127.0.0.(base+i): away from .1 and, mostly, from other test processes.
	base := 20 + (os.Getpid()%20)*10
	for i := 0; i < managers+workers; i++ {
		role, name := swarm.RoleManager, fmt.Sprintf("sd-m%d", i)
		if i >= managers {
			role, name = swarm.RoleWorker, fmt.Sprintf("sd-w%d", i-managers)
		}
		p := &proc{i: i, name: name, role: role, ip: fmt.Sprintf("127.0.0.%d", base+i),
			data: filepath.Join(dir, name, "data"), sock: filepath.Join(dir, name, "ctl.sock")}
		p.cl = newControlClient(p.sock)
		s.procs = append(s.procs, p)
		if err := os.MkdirAll(p.data, 0o700); err != nil {
			s.Close()
			return nil, err
		}
		if role == swarm.RoleManager {
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", p.data).CombinedOutput(); err != nil {
				s.Close()
				return nil, fmt.Errorf("mount tmpfs on %s: %v: %s", p.data, err, out)
			}
			p.mounted = true
		}
	}
	for _, p := range s.procs {
		if err := s.start(p); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// start starts p's process (init or join, or a resume from its data dir)
// and waits until it runs.
func (s *Swarmd) start(p *proc) error {
	var args []string
	resume := p.addr != ""
	switch {
	case p.i == 0:
		args = []string{"init"}
	default:
		args = []string{"join"}
		if !resume {
			args = append(args, "-token", s.token[p.role])
		}
	}
	args = append(args, "-listen", p.ip+":0", "-data", p.data, "-hostname", p.name,
		"-control-socket", p.sock, "-log-level", "warn")
	if p.i != 0 {
		args = append(args, s.joinAddr(p))
	}
	out := filepath.Join(s.dir, p.name, "stdout")
	stdout, err := os.Create(out)
	if err != nil {
		return err
	}
	stderr, err := os.OpenFile(filepath.Join(s.dir, p.name, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		stdout.Close()
		return err
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(done)
	}()
	s.mu.Lock()
	p.cmd, p.done, p.stopped, p.down = cmd, done, false, false
	s.mu.Unlock()
	err = waitFor(context.Background(), 30*time.Second, func() error {
		select {
		case <-done:
			return errExited
		default:
		}
		lines := readLines(out)
		if !hasPrefix(lines, "Running;") {
			return fmt.Errorf("%s not running yet", p.name)
		}
		if a := field(lines, "address:"); a != "" {
			s.mu.Lock()
			p.addr = a
			s.mu.Unlock()
		}
		if p.i == 0 && !resume {
			s.token[swarm.RoleWorker] = field(lines, "worker token:")
			s.token[swarm.RoleManager] = field(lines, "manager token:")
		}
		return nil
	})
	if err != nil {
		errOut, _ := os.ReadFile(filepath.Join(s.dir, p.name, "stderr"))
		return fmt.Errorf("start %s (%s): %v; stderr: %s", p.name, strings.Join(args, " "), err, tail(string(errOut), 600))
	}
	return nil
}

var errExited = errors.New("process exited")

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	return out
}

func hasPrefix(lines []string, p string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

func field(lines []string, key string) string {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// joinAddr returns the address of a running manager other than p.
func (s *Swarmd) joinAddr(p *proc) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.procs[:s.managers] {
		if q != p && q.addr != "" && !q.down && !q.stopped {
			return q.addr
		}
	}
	return s.procs[0].addr
}

// Name implements Target.
func (s *Swarmd) Name() string { return "swarmd" }

// Managers implements Target.
func (s *Swarmd) Managers() []int {
	out := make([]int, s.managers)
	for i := range out {
		out[i] = i
	}
	return out
}

// Client implements Target. A stopped process still gets calls (they time
// out, as they would for a real client).
func (s *Swarmd) Client(i int) Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.procs[i].down {
		return nil
	}
	return s.procs[i].cl
}

// RaftStatus implements Target.
func (s *Swarmd) RaftStatus(ctx context.Context, i int) (swarm.RaftStatus, bool) {
	s.mu.Lock()
	p := s.procs[i]
	skip := p.down || p.stopped
	s.mu.Unlock()
	if skip {
		return swarm.RaftStatus{}, false
	}
	r, err := p.cl.info(ctx)
	if err != nil {
		return swarm.RaftStatus{}, false
	}
	return r.Raft, r.Raft.State != ""
}

// Containers implements Target: every running, unstopped process's
// runtime (a killed swarmd's InmemRuntime dies with it).
func (s *Swarmd) Containers(ctx context.Context) ([]swarm.ContainerInfo, error) {
	var out []swarm.ContainerInfo
	for _, p := range s.procs {
		s.mu.Lock()
		skip := p.down || p.stopped
		s.mu.Unlock()
		if skip {
			continue
		}
		cs, err := p.cl.containers(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// Kinds implements Target.
func (s *Swarmd) Kinds() []FaultKind {
	return []FaultKind{FaultCrash, FaultStop, FaultShutdown, FaultRestart, FaultPartition,
		FaultAsymPartition, FaultIsolateLeader, FaultDiskFull}
}

func (s *Swarmd) ips(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, s.procs[i].ip)
	}
	return out
}

// stop ends p's process with sig and waits (5 s, then SIGKILL).
func (s *Swarmd) stop(p *proc, sig syscall.Signal) {
	s.mu.Lock()
	cmd, done, stopped := p.cmd, p.done, p.stopped
	p.down = true
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if stopped {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Inject implements Target.
func (s *Swarmd) Inject(ctx context.Context, kind FaultKind, rng *rand.Rand) (string, error) {
	all := len(s.procs)
	switch kind {
	case FaultCrash, FaultShutdown, FaultStop, FaultRestart:
		p := s.procs[rng.Intn(all)]
		s.mu.Lock()
		busy := p.down || p.stopped
		s.mu.Unlock()
		if busy {
			return fmt.Sprintf("%s already down", p.name), nil
		}
		switch kind {
		case FaultCrash:
			s.stop(p, syscall.SIGKILL)
			return p.name + " killed (-9)", nil
		case FaultShutdown:
			s.stop(p, syscall.SIGTERM)
			return p.name + " shut down (SIGTERM)", nil
		case FaultStop:
			s.mu.Lock()
			p.stopped = true
			s.mu.Unlock()
			p.cmd.Process.Signal(syscall.SIGSTOP)
			return p.name + " stopped (SIGSTOP)", nil
		}
		s.stop(p, syscall.SIGTERM)
		s.mu.Lock()
		partial := s.partial
		s.mu.Unlock()
		if partial {
			return p.name + " shut down (restart deferred to the heal: partitioned)", nil
		}
		if err := s.start(p); err != nil {
			return "", err
		}
		return p.name + " restarted from its data dir", nil
	case FaultPartition:
		perm := rng.Perm(all)
		k := 1 + rng.Intn((all-1)/2)
		s.setPartial()
		return fmt.Sprintf("%v | %v", perm[:k], perm[k:]), s.net.cut(s.ips(perm[:k]), s.ips(perm[k:]))
	case FaultAsymPartition:
		perm := rng.Perm(all)
		s.setPartial()
		if rng.Intn(2) == 0 {
			return fmt.Sprintf("packets out of %s dropped", s.procs[perm[0]].name), s.net.drop(s.ips(perm[:1]), s.ips(perm[1:]))
		}
		return fmt.Sprintf("packets into %s dropped", s.procs[perm[0]].name), s.net.drop(s.ips(perm[1:]), s.ips(perm[:1]))
	case FaultIsolateLeader:
		l := s.leader(ctx)
		if l < 0 {
			return "no leader to isolate", nil
		}
		var rest []int
		for i := 0; i < all; i++ {
			if i != l {
				rest = append(rest, i)
			}
		}
		s.setPartial()
		return fmt.Sprintf("leader %s isolated", s.procs[l].name), s.net.cut(s.ips([]int{l}), s.ips(rest))
	case FaultDiskFull:
		p := s.procs[rng.Intn(s.managers)]
		path := filepath.Join(p.data, "chaos-fill")
		n, err := fill(path)
		if err != nil {
			return "", err
		}
		s.mu.Lock()
		s.filled = append(s.filled, path)
		s.mu.Unlock()
		return fmt.Sprintf("%s data dir filled (%d MiB)", p.name, n>>20), nil
	}
	return "", fmt.Errorf("fault %s not supported", kind)
}

func (s *Swarmd) setPartial() {
	s.mu.Lock()
	s.partial = true
	s.mu.Unlock()
}

// fill writes path until its file system is full and returns the bytes
// written.
func fill(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := f.Write(buf)
		n += int64(m)
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// Small writes too, so not even a page is left.
				for {
					if _, err := f.Write(buf[:512]); err != nil {
						return n, nil
					}
				}
			}
			return n, err
		}
	}
}

func (s *Swarmd) leader(ctx context.Context) int {
	for i := 0; i < s.managers; i++ {
		if st, ok := s.RaftStatus(ctx, i); ok && st.State == "Leader" {
			return i
		}
	}
	return -1
}

// Heal implements Target.
func (s *Swarmd) Heal(ctx context.Context) error {
	var errs []error
	if err := s.net.heal(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	filled := s.filled
	s.filled, s.partial = nil, false
	s.mu.Unlock()
	for _, f := range filled {
		if err := os.Remove(f); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range s.procs {
		s.mu.Lock()
		stopped, cmd := p.stopped, p.cmd
		p.stopped = false
		down := p.down
		s.mu.Unlock()
		if stopped && !down {
			cmd.Process.Signal(syscall.SIGCONT)
		}
		if !down {
			select {
			case <-p.done:
				// It exited by itself: a finding, and it must come back.
				errs = append(errs, fmt.Errorf("%s exited during the cycle (stderr: %s)", p.name, s.stderrTail(p)))
				down = true
			default:
			}
		}
		if down {
			if err := s.start(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Swarmd) stderrTail(p *proc) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, p.name, "stderr"))
	return tail(strings.TrimSpace(string(b)), 400)
}

// Ready implements Target.
func (s *Swarmd) Ready(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	l := s.leader(rctx)
	if l < 0 {
		return fmt.Errorf("no leader")
	}
	nodes, err := s.procs[l].cl.nodes(rctx)
	if err != nil {
		return err
	}
	ready := 0
	for _, nd := range nodes {
		if nd.State == swarm.NodeReady {
			ready++
		}
	}
	if ready < len(s.procs) {
		return fmt.Errorf("%d of %d nodes ready", ready, len(s.procs))
	}
	lst, _ := s.RaftStatus(rctx, l)
	for i := 0; i < s.managers; i++ {
		st, ok := s.RaftStatus(rctx, i)
		if !ok || st.AppliedIndex+10 < lst.AppliedIndex {
			return fmt.Errorf("%s applied %d, leader %d", s.procs[i].name, st.AppliedIndex, lst.AppliedIndex)
		}
	}
	return nil
}

// Close implements Target: kills every process, removes the iptables
// chain, unmounts the tmpfs.
func (s *Swarmd) Close() {
	for _, p := range s.procs {
		s.mu.Lock()
		cmd, done := p.cmd, p.done
		s.mu.Unlock()
		if cmd != nil {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-done
		}
	}
	s.net.close()
	for _, p := range s.procs {
		if p.mounted {
			if err := exec.Command("umount", p.data).Run(); err != nil {
				exec.Command("umount", "-l", p.data).Run()
			}
		}
	}
}
