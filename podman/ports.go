package podman

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/containers/podman/v4/pkg/bindings/containers"

	swarm "github.com/podswarm/swarm"
)

// PublishedPorts returns the container's published ports as Podman bound
// them on the host: the PublishedPort of each is the actual host port, also
// where the spec left it 0 for Podman to choose a free one (how several
// replicas of a host-mode service share one host). Every PortConfig has
// PublishMode host. A container that is not running has none.
func (r *Runtime) PublishedPorts(ctx context.Context, id string) ([]swarm.PortConfig, error) {
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	data, err := containers.Inspect(r.call(ctx), id, nil)
	if err != nil {
		return nil, r.ctxOr(ctx, podmanErr(err, "inspect container %s", id))
	}
	if data.NetworkSettings == nil {
		return nil, nil
	}
	var out []swarm.PortConfig
	for key, binds := range data.NetworkSettings.Ports {
		// key is "8080/tcp".
		port, proto, _ := strings.Cut(key, "/")
		target, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("container %s: port %q: %w", id, key, err)
		}
		if proto == "" {
			proto = "tcp"
		}
		for _, b := range binds {
			if b.HostPort == "" {
				continue
			}
			host, err := strconv.ParseUint(b.HostPort, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("container %s: host port %q of %s: %w", id, b.HostPort, key, err)
			}
			out = append(out, swarm.PortConfig{Protocol: proto, TargetPort: uint32(target), PublishedPort: uint32(host), PublishMode: swarm.PublishHost})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].TargetPort != out[j].TargetPort {
			return out[i].TargetPort < out[j].TargetPort
		}
		if out[i].Protocol != out[j].Protocol {
			return out[i].Protocol < out[j].Protocol
		}
		return out[i].PublishedPort < out[j].PublishedPort
	})
	return out, nil
}
