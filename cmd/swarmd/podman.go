package main

import (
	"context"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/podman"
)

// openPodman connects to the Podman API service at uri ("" finds it as
// podman does) and returns the runtime and a function that closes it.
func openPodman(ctx context.Context, uri string) (swarm.Runtime, func(), error) {
	rt, err := podman.NewRuntime(ctx, uri)
	if err != nil {
		return nil, nil, err
	}
	return rt, func() { rt.Close() }, nil
}
