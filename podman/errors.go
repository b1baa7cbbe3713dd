package podman

import (
	"fmt"

	swarm "github.com/podswarm/swarm"
)

// invalidf is an error wrapping [swarm.ErrInvalidSpec]: the agent rejects
// the task with its message, which names the field Podman cannot honour.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{swarm.ErrInvalidSpec}, args...)...)
}
