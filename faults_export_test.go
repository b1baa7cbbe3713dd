package swarm

import "context"

// Faults returns the fault hook of n's transport (faults.go), for tests
// that drop replies, delay calls or cut links.
func Faults(n *Node) *faultHook { return &n.tr.faults }

// ApplyServiceUpdate replicates svc as an update of the service at
// version with the given request ID, as UpdateService does with the ID
// it generates: calling it again with the same ID is a retry.
func ApplyServiceUpdate(ctx context.Context, n *Node, reqID string, svc Service, version uint64) (uint64, error) {
	return n.apply(ctx, &command{Type: cmdServiceUpdate, Service: &svc, Version: version, ReqID: reqID})
}
