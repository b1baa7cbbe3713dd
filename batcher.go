package swarm

import (
	"context"
	"fmt"
)

// statusBatcher runs on the leader: it turns the status reports of many
// agents into few log entries. Requests that arrive while an entry is
// being committed wait and go together in the next one (group commit), so
// the number of entries tracks the commit rate, not the number of agents.
type statusBatcher struct {
	n    *Node
	reqs chan *statusReq
}

type statusReq struct {
	ops  []taskOp
	done chan error
}

// maxBatchOps bounds one merged entry.
const maxBatchOps = 20000

func newStatusBatcher(n *Node) *statusBatcher {
	return &statusBatcher{n: n, reqs: make(chan *statusReq, 1024)}
}

func (b *statusBatcher) submit(ctx context.Context, ops []taskOp) error {
	r := &statusReq{ops: ops, done: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *statusBatcher) run(ctx context.Context) {
	for {
		var batch []*statusReq
		select {
		case <-ctx.Done():
			b.failPending(fmt.Errorf("%w: leadership lost", ErrNoLeader))
			return
		case r := <-b.reqs:
			batch = append(batch, r)
		}
		ops := len(batch[0].ops)
	drain:
		for ops < maxBatchOps {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
				ops += len(r.ops)
			default:
				break drain
			}
		}
		all := make([]taskOp, 0, ops)
		for _, r := range batch {
			all = append(all, r.ops...)
		}
		err := b.n.guardErr("status batcher", func() error {
			_, err := b.n.applyLocal(ctx, &command{Type: cmdTasks, Ops: all})
			return err
		})
		for _, r := range batch {
			r.done <- err
		}
	}
}

// failPending answers the requests still queued when leadership ends.
func (b *statusBatcher) failPending(err error) {
	for {
		select {
		case r := <-b.reqs:
			r.done <- err
		default:
			return
		}
	}
}
