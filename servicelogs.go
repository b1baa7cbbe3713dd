package swarm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// connLogs marks a connection that carries one log stream: the client
// sends a logRequest as a JSON line, the node answers with LogMessage JSON
// lines and ends with a logEnd line.
const connLogs byte = 'L'

// LogMessage is one line of a task's output, tagged as Swarm tags them.
type LogMessage struct {
	NodeID, ServiceID, TaskID string
	// Stream is 1 for stdout and 2 for stderr.
	Stream int
	// Time is when the line was written (zero unless LogOptions.Timestamps).
	Time time.Time
	// Line is the text without its trailing newline.
	Line string
}

type logRequest struct {
	TaskID string
	Opts   LogOptions
}

// logFrame is one line of a log stream: a message, or the end with the
// error that ended it, if any.
type logFrame struct {
	Msg *LogMessage `json:",omitempty"`
	End bool        `json:",omitempty"`
	Err string      `json:",omitempty"`
}

// TaskLogs streams one task's output to out (which it never closes) and
// returns when the lines are sent, when the task's container exits (with
// Follow) or when ctx ends. It runs on a manager; the task's node serves
// the lines from its runtime, which must implement LogRuntime.
func (n *Node) TaskLogs(ctx context.Context, taskID string, opts LogOptions, out chan<- LogMessage) error {
	if err := n.readBarrier(ctx); err != nil {
		return err
	}
	var (
		t    *Task
		addr string
		err  error
	)
	n.fsm.read(func(s *state) {
		if t, err = s.lookupTask(taskID); err != nil {
			return
		}
		if nd, ok := s.nodes[t.NodeID]; ok {
			addr = nd.Addr
		}
	})
	if err != nil {
		return err
	}
	if addr == "" {
		return fmt.Errorf("%w: task %s has no node (state %s)", ErrNotFound, t.ID, t.Status.State)
	}
	return n.streamLogs(ctx, addr, t.ID, opts, out)
}

// ServiceLogs streams the output of all the service's tasks that have a
// node, merged as they arrive, each line tagged with its node, service and
// task. It returns when every task's stream has ended; the first error of
// any stream is returned after the others finish.
func (n *Node) ServiceLogs(ctx context.Context, idOrName string, opts LogOptions, out chan<- LogMessage) error {
	tasks, err := n.Tasks(ctx, TaskFilter{Service: idOrName})
	if err != nil {
		return err
	}
	addrs := map[string]string{}
	n.fsm.read(func(s *state) {
		for _, nd := range s.nodes {
			addrs[nd.ID] = nd.Addr
		}
	})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, t := range tasks {
		addr := addrs[t.NodeID]
		if addr == "" || t.Status.ContainerID == "" {
			continue // never got a container: no output
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.streamLogs(ctx, addr, t.ID, opts, out); err != nil && ctx.Err() == nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("task %s: %w", t.ID, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		return ctx.Err()
	}
	return first
}

// streamLogs reads one task's stream from the node at addr.
func (n *Node) streamLogs(ctx context.Context, addr, taskID string, opts LogOptions, out chan<- LogMessage) error {
	c, err := n.tr.dial(ctx, addr, connLogs)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errUnreachable, addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := json.NewEncoder(c).Encode(&logRequest{TaskID: taskID, Opts: opts}); err != nil {
		return err
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var f logFrame
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return fmt.Errorf("swarm: bad log frame from %s: %w", addr, err)
		}
		if f.End {
			if f.Err != "" {
				return errors.New(f.Err)
			}
			return nil
		}
		if f.Msg != nil {
			select {
			case out <- *f.Msg:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: log stream from %s: %v", errUnreachable, addr, err)
	}
	return fmt.Errorf("%w: log stream from %s ended early", errUnreachable, addr)
}

// serveLogs answers one log stream connection on this node.
func (n *Node) serveLogs(c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(n.baseCtx)
	defer cancel()
	var req logRequest
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	enc := json.NewEncoder(c)
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(&logFrame{End: true, Err: "malformed log request"})
		return
	}
	// The client closing its end cancels the stream.
	go func() {
		r.ReadByte()
		cancel()
	}()
	err = n.localLogs(ctx, req, func(m LogMessage) error { return enc.Encode(&logFrame{Msg: &m}) })
	end := &logFrame{End: true}
	if err != nil && ctx.Err() == nil {
		end.Err = err.Error()
	}
	enc.Encode(end)
}

// localLogs reads a task's container output from this node's runtime.
func (n *Node) localLogs(ctx context.Context, req logRequest, emit func(LogMessage) error) error {
	rt := n.cfg.Runtime
	if rt == nil {
		return fmt.Errorf("node %s runs no tasks", n.ID())
	}
	lr, ok := rt.(LogRuntime)
	if !ok {
		return fmt.Errorf("the runtime of node %s keeps no logs", n.ID())
	}
	list, err := rt.List(ctx, n.ID())
	if err != nil {
		return err
	}
	var ci *ContainerInfo
	for i := range list {
		if list[i].TaskID == req.TaskID {
			ci = &list[i]
			break
		}
	}
	if ci == nil {
		return fmt.Errorf("%w: no container of task %s on node %s", ErrNotFound, req.TaskID, n.ID())
	}
	lines := make(chan LogLine, 64)
	done := make(chan error, 1)
	go func() {
		done <- lr.Logs(ctx, ci.ID, req.Opts, lines)
	}()
	send := func(l LogLine) error {
		return emit(LogMessage{NodeID: n.ID(), ServiceID: ci.ServiceID, TaskID: req.TaskID,
			Stream: l.Stream, Time: l.Time, Line: l.Text})
	}
	for {
		select {
		case l := <-lines:
			if err := send(l); err != nil {
				return err
			}
		case err := <-done:
			for { // what Logs buffered before it returned
				select {
				case l := <-lines:
					if e := send(l); e != nil {
						return e
					}
				default:
					return err
				}
			}
		}
	}
}
