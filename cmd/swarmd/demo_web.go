package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/podswarm/swarm"
)

// portLister is a runtime that tells which host ports a container's
// published ports got ([podman.Runtime] does).
type portLister interface {
	PublishedPorts(ctx context.Context, id string) ([]swarm.PortConfig, error)
}

// fetchPages fetches the page of every running replica of a web workload
// through its published host port and prints who answered: the page is
// the container's hostname, its ID's first 12 characters.
func (d *demo) fetchPages(ctx context.Context) error {
	pl, ok := d.shared.(portLister)
	if !d.work.web || !ok {
		return nil
	}
	tasks, err := d.api().Tasks(ctx, swarm.TaskFilter{Service: d.svcID, DesiredState: swarm.TaskRunning})
	if err != nil {
		return err
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Slot < tasks[j].Slot })
	hosts := map[string]string{}
	for _, dn := range d.nodes {
		hosts[dn.node.ID()] = dn.name
	}
	fmt.Fprintln(d.out)
	client := &http.Client{Timeout: 2 * time.Second}
	for _, t := range tasks {
		if t.Status.State != swarm.TaskRunning || t.Status.ContainerID == "" {
			continue
		}
		port, err := hostPort(ctx, pl, t.Status.ContainerID)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name(), err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		page, err := fetch(ctx, client, url)
		if err != nil {
			return fmt.Errorf("fetching %s's page: %w", t.Name(), err)
		}
		fmt.Fprintf(d.out, "GET %-24s -> %-12s  (%s on %s, container %s)\n", url, page, t.Name(),
			hosts[t.NodeID], short(t.Status.ContainerID, 12))
	}
	return nil
}

// hostPort returns the host port that demoPort of the container is published on.
func hostPort(ctx context.Context, pl portLister, containerID string) (uint32, error) {
	ports, err := pl.PublishedPorts(ctx, containerID)
	if err != nil {
		return 0, err
	}
	for _, p := range ports {
		if p.TargetPort == demoPort && p.PublishedPort != 0 {
			return p.PublishedPort, nil
		}
	}
	return 0, fmt.Errorf("container %s: port %d is not published", short(containerID, 12), demoPort)
}

// fetch GETs url and returns the page, trimmed. The server may still be
// starting (the task runs once its container started): it retries for a
// few seconds.
func fetch(ctx context.Context, client *http.Client, url string) (string, error) {
	var page string
	var last error
	err := poll(ctx, 10*time.Second, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			return false, nil
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil || resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s: %v", resp.Status, err)
			return false, nil
		}
		page = strings.TrimSpace(string(body))
		return true, nil
	})
	if err != nil && last != nil {
		return "", fmt.Errorf("%w: %v", err, last)
	}
	return page, err
}
