package swarm

import (
	"context"
	"sort"
)

// DeliveredFiles returns the IDs of the secrets and of the configs that
// manager m sends node nodeID with a full assignments reply: exactly what
// that node's agent receives (tests of delivery; secrets_test.go).
func DeliveredFiles(ctx context.Context, m *Node, nodeID string) (secrets, configs []string, err error) {
	if err := m.checkManager(); err != nil {
		return nil, nil, err
	}
	reply, _ := m.assignments(nodeID, 0, true)
	if err := m.openFiles(ctx, reply); err != nil {
		return nil, nil, err
	}
	secrets, configs = []string{}, []string{}
	for id := range reply.Secrets {
		secrets = append(secrets, id)
	}
	for id := range reply.Configs {
		configs = append(configs, id)
	}
	sort.Strings(secrets)
	sort.Strings(configs)
	return secrets, configs, nil
}
