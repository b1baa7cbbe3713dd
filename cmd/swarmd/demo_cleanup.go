package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/podswarm/swarm"
)

// cleanup removes the service, waits until its containers are gone, removes
// what the killed node left running (a Shutdown node's containers keep
// running, as after a daemon crash), shuts every node down and releases the
// runtime. It runs on its own deadline, also after Ctrl-C.
func (d *demo) cleanup(stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if d.svcID != "" && d.api() != nil {
		if err := d.removeService(ctx, stderr); err != nil {
			fmt.Fprintf(stderr, "swarmd demo: cleanup: %v\n", err)
		}
	}
	var wg sync.WaitGroup
	live := 0
	for _, dn := range d.nodes {
		if dn.node == nil || dn.dead {
			continue
		}
		live++
		wg.Add(1)
		go func() {
			defer wg.Done()
			dn.node.Shutdown()
		}()
	}
	wg.Wait()
	if live > 0 {
		fmt.Fprintf(d.out, "Shut down the %d remaining nodes.\n", live)
	}
	if d.shared != nil {
		d.checkNothingLeft(ctx, stderr)
	}
	d.closeRT()
}

// checkNothingLeft makes sure that no container of the demo's nodes is
// left on the shared runtime, removing (and reporting) any it finds.
func (d *demo) checkNothingLeft(ctx context.Context, stderr io.Writer) {
	ours := map[string]bool{}
	for _, dn := range d.nodes {
		if dn.node != nil {
			ours[dn.node.ID()] = true
		}
	}
	list, err := d.shared.List(ctx, "")
	if err != nil {
		fmt.Fprintf(stderr, "swarmd demo: cleanup: listing containers: %v\n", err)
		return
	}
	left := 0
	for _, c := range list {
		if !ours[c.NodeID] {
			continue
		}
		left++
		if err := d.shared.Remove(ctx, c.ID); err != nil {
			fmt.Fprintf(stderr, "swarmd demo: cleanup: removing container %s: %v\n", c.Name, err)
		}
	}
	if left > 0 {
		fmt.Fprintf(stderr, "swarmd demo: cleanup: removed %d containers the nodes left behind\n", left)
		return
	}
	fmt.Fprintln(d.out, "No container of the demo is left.")
}

func (d *demo) removeService(ctx context.Context, stderr io.Writer) error {
	t0 := time.Now()
	if err := d.api().RemoveService(ctx, d.svcID); err != nil {
		return err
	}
	// The killed node's containers have no agent left to remove them.
	reaped := 0
	for _, dn := range d.nodes {
		if dn.dead {
			n, err := reap(ctx, dn.rt, dn.node.ID(), "")
			if err != nil {
				return fmt.Errorf("removing the containers %s left: %w", dn.name, err)
			}
			reaped += n
		}
	}
	// The live nodes' agents stop and remove theirs.
	left := 0
	err := poll(ctx, 15*time.Second, func() (bool, error) {
		left = 0
		for _, dn := range d.nodes {
			cs, err := dn.rt.List(ctx, dn.node.ID())
			if err != nil {
				return false, err
			}
			for _, c := range cs {
				if c.ServiceID == d.svcID {
					left++
				}
			}
		}
		return left == 0, nil
	})
	if err != nil && left == 0 {
		return fmt.Errorf("waiting for %s's containers to go: %w", d.work.spec.Name, err)
	}
	if left > 0 {
		// Should not happen; seen when the service is removed while a
		// Podman Create is in flight (the cancelled call still creates
		// the container, and the agent never learns its ID).
		fmt.Fprintf(stderr, "swarmd demo: %d containers of %s still there %s after its removal; removing them\n",
			left, d.work.spec.Name, age(time.Since(t0)))
		for _, dn := range d.nodes {
			if _, err := reap(ctx, dn.rt, dn.node.ID(), d.svcID); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(d.out, "\nRemoved service %s; its containers were gone after %s", d.work.spec.Name, age(time.Since(t0)))
	if reaped > 0 {
		fmt.Fprintf(d.out, " (%d left by the killed node removed by the demo)", reaped)
	}
	fmt.Fprintln(d.out, ".")
	return nil
}

// reap stops and removes the containers of a node (of one service when
// serviceID is not "").
func reap(ctx context.Context, rt swarm.Runtime, nodeID, serviceID string) (int, error) {
	cs, err := rt.List(ctx, nodeID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cs {
		if serviceID != "" && c.ServiceID != serviceID {
			continue
		}
		n++
		if err := rt.Stop(ctx, c.ID, 0); err != nil {
			return 0, err
		}
		if err := rt.Remove(ctx, c.ID); err != nil {
			return 0, err
		}
	}
	return n, nil
}
