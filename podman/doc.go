// Package podman runs the tasks of a [swarm.Node] as real containers on
// Podman. It needs build tags: build and test it with
//
//	-tags=remote,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper,containers_image_openpgp
//
// (without them cgo wants the gpgme, btrfs and devicemapper headers, which
// Podman's Go bindings pull in). Package swarm itself needs no tags; only a
// program that imports this package does.
//
// [NewRuntime] connects to a Podman API service (`podman system service`),
// rootless when that service runs as an unprivileged user, and returns a
// [Runtime] to put in [swarm.Config].Runtime:
//
//	rt, err := podman.NewRuntime(ctx, "") // $CONTAINER_HOST, else the user's socket, else the system one
//	if err != nil {
//		return err
//	}
//	defer rt.Close()
//	cfg := swarm.DefaultConfig()
//	cfg.Runtime = rt
//
// The Runtime translates a task's spec into a Podman container spec and
// refuses what it cannot honour (an error wrapping [swarm.ErrInvalidSpec]
// that names the field) rather than drop it; stages secrets and configs on
// a tmpfs and mounts them read-only; publishes ports; runs healthchecks
// itself (Podman's timers need systemd); streams logs ([swarm.LogRuntime]);
// and finds the containers of an earlier life of a node by their labels,
// so a restarted node adopts them.
package podman
