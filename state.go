package swarm

import (
	"sort"
	"strings"
	"time"
)

// clusterRecord is the swarm-wide record written by Init.
type clusterRecord struct {
	ID        string
	CreatedAt time.Time
	// WorkerSecret and ManagerSecret are the secret parts of the join tokens.
	WorkerSecret  string
	ManagerSecret string
	// Digest identifies the swarm in join tokens: the digest of CACert.
	Digest string

	// CACert is the root CA certificate (DER); CAKey its private key
	// (PKCS#8) sealed with the data-encryption key (tls.go, keys.go).
	CACert []byte `json:",omitempty"`
	CAKey  []byte `json:",omitempty"`
	// CertExpiry is the lifetime of node certificates (Config.CertExpiry at Init).
	CertExpiry time.Duration `json:",omitempty"`
	// GossipKeys is gossip's keyring, the primary key first (security.go).
	GossipKeys [][]byte `json:",omitempty"`
	// Revoked holds removed nodes, by ID, with the time of removal: their
	// certificates are refused until they expire.
	Revoked map[string]time.Time `json:",omitempty"`
	// SecVersion is the index of the last change to GossipKeys or Revoked.
	SecVersion uint64 `json:",omitempty"`
}

// state is the replicated cluster state. Objects stored in it are never
// mutated: a change stores a modified copy, so readers may keep pointers
// and snapshots are a cheap copy of the maps.
type state struct {
	cluster  *clusterRecord
	nodes    map[string]*NodeInfo
	services map[string]*Service
	tasks    map[string]*Task

	serviceByName  map[string]string
	tasksByService map[string]map[string]*Task
	tasksByNode    map[string]map[string]*Task
	// nodeIndex is the last index at which a task on the node changed in a
	// way its agent must act on (not the agent's own status reports).
	nodeIndex map[string]uint64
	// agentIndex is, per task, the last index of such a change.
	agentIndex map[string]uint64
	index      uint64
	// clock is the time of the last applied entry: stored times never go
	// below it (clock.go).
	clock time.Time

	// secrets (sealed), configs and the keys record (secrets.go, keys.go).
	secrets      map[string]*secretRecord
	secretByName map[string]string
	configs      map[string]*ConfigObject
	configByName map[string]string
	keys         *keysRecord
}

func newState() *state {
	return &state{
		nodes:          map[string]*NodeInfo{},
		services:       map[string]*Service{},
		tasks:          map[string]*Task{},
		serviceByName:  map[string]string{},
		tasksByService: map[string]map[string]*Task{},
		tasksByNode:    map[string]map[string]*Task{},
		nodeIndex:      map[string]uint64{},
		agentIndex:     map[string]uint64{},
		secrets:        map[string]*secretRecord{},
		secretByName:   map[string]string{},
		configs:        map[string]*ConfigObject{},
		configByName:   map[string]string{},
	}
}

// putTask stores t (a fresh copy) and maintains the indexes. forAgent
// says whether the change is one the task's node must hear about.
func (s *state) putTask(t *Task, forAgent bool) {
	old, existed := s.tasks[t.ID]
	if existed {
		if old.NodeID != t.NodeID {
			forAgent = true
		}
		s.unindexTask(old, forAgent)
	}
	if forAgent || !existed {
		s.agentIndex[t.ID] = s.index
	}
	s.tasks[t.ID] = t
	m := s.tasksByService[t.ServiceID]
	if m == nil {
		m = map[string]*Task{}
		s.tasksByService[t.ServiceID] = m
	}
	m[t.ID] = t
	if t.NodeID != "" {
		n := s.tasksByNode[t.NodeID]
		if n == nil {
			n = map[string]*Task{}
			s.tasksByNode[t.NodeID] = n
		}
		n[t.ID] = t
		if forAgent || !existed {
			s.nodeIndex[t.NodeID] = s.index
		}
	}
}

func (s *state) unindexTask(t *Task, forAgent bool) {
	if m := s.tasksByService[t.ServiceID]; m != nil {
		delete(m, t.ID)
		if len(m) == 0 {
			delete(s.tasksByService, t.ServiceID)
		}
	}
	if t.NodeID != "" {
		if m := s.tasksByNode[t.NodeID]; m != nil {
			delete(m, t.ID)
			if len(m) == 0 {
				delete(s.tasksByNode, t.NodeID)
			}
		}
		if forAgent {
			s.nodeIndex[t.NodeID] = s.index
		}
	}
}

func (s *state) deleteTask(id string) {
	if t, ok := s.tasks[id]; ok {
		s.unindexTask(t, true)
		delete(s.tasks, id)
		delete(s.agentIndex, id)
	}
}

// snapshotData is the serialised form of the state.
type snapshotData struct {
	Cluster  *clusterRecord
	Nodes    []*NodeInfo
	Services []*Service
	Tasks    []*Task
	Index    uint64
	// Clock is the state's clock (the last entry's time, clock.go).
	Clock time.Time `json:",omitzero"`
	// Secrets hold only sealed data.
	Secrets []*secretRecord `json:",omitempty"`
	Configs []*ConfigObject `json:",omitempty"`
	Keys    *keysRecord     `json:",omitempty"`
	// Dedupe holds the request IDs' outcomes, oldest first (dedupe.go).
	Dedupe []dedupeEntry `json:",omitempty"`
}

func (s *state) export() *snapshotData {
	d := &snapshotData{Cluster: s.cluster, Index: s.index, Clock: s.clock,
		Nodes:    make([]*NodeInfo, 0, len(s.nodes)),
		Services: make([]*Service, 0, len(s.services)),
		Tasks:    make([]*Task, 0, len(s.tasks)),
	}
	for _, n := range s.nodes {
		d.Nodes = append(d.Nodes, n)
	}
	for _, v := range s.services {
		d.Services = append(d.Services, v)
	}
	for _, t := range s.tasks {
		d.Tasks = append(d.Tasks, t)
	}
	sort.Slice(d.Nodes, func(i, j int) bool { return d.Nodes[i].ID < d.Nodes[j].ID })
	sort.Slice(d.Services, func(i, j int) bool { return d.Services[i].ID < d.Services[j].ID })
	sort.Slice(d.Tasks, func(i, j int) bool { return d.Tasks[i].ID < d.Tasks[j].ID })
	d.Keys = s.keys
	for _, r := range s.secrets {
		d.Secrets = append(d.Secrets, r)
	}
	for _, c := range s.configs {
		d.Configs = append(d.Configs, c)
	}
	sort.Slice(d.Secrets, func(i, j int) bool { return d.Secrets[i].ID < d.Secrets[j].ID })
	sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].ID < d.Configs[j].ID })
	return d
}

func stateFrom(d *snapshotData) *state {
	s := newState()
	s.cluster = d.Cluster
	s.index = d.Index
	s.clock = d.Clock
	for _, n := range d.Nodes {
		if n != nil && n.ID != "" {
			s.nodes[n.ID] = n
		}
	}
	for _, v := range d.Services {
		if v != nil && v.ID != "" {
			s.services[v.ID] = v
			s.serviceByName[v.Spec.Name] = v.ID
		}
	}
	for _, t := range d.Tasks {
		if t != nil && t.ID != "" {
			s.putTask(t, true)
		}
	}
	s.keys = d.Keys
	for _, r := range d.Secrets {
		if r != nil && r.ID != "" {
			s.secrets[r.ID] = r
			s.secretByName[r.Spec.Name] = r.ID
		}
	}
	for _, c := range d.Configs {
		if c != nil && c.ID != "" {
			s.configs[c.ID] = c
			s.configByName[c.Spec.Name] = c.ID
		}
	}
	return s
}

// lookupService resolves a full ID, an exact name or a unique ID prefix,
// in that order, as Swarm does.
func (s *state) lookupService(ref string) (*Service, error) {
	if ref == "" {
		return nil, invalidf("empty service reference")
	}
	if v, ok := s.services[ref]; ok {
		return v, nil
	}
	if id, ok := s.serviceByName[ref]; ok {
		return s.services[id], nil
	}
	var found *Service
	for id, v := range s.services {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, ambiguousf("service", ref)
			}
			found = v
		}
	}
	if found == nil {
		return nil, notFoundf("service", ref)
	}
	return found, nil
}

// lookupNode resolves a full ID, an exact hostname or a unique ID prefix.
func (s *state) lookupNode(ref string) (*NodeInfo, error) {
	if ref == "" {
		return nil, invalidf("empty node reference")
	}
	if n, ok := s.nodes[ref]; ok {
		return n, nil
	}
	var byName, byPrefix *NodeInfo
	nName, nPrefix := 0, 0
	for id, n := range s.nodes {
		if n.Hostname == ref {
			byName, nName = n, nName+1
		}
		if strings.HasPrefix(id, ref) {
			byPrefix, nPrefix = n, nPrefix+1
		}
	}
	switch {
	case nName == 1:
		return byName, nil
	case nName > 1:
		return nil, ambiguousf("node", ref)
	case nPrefix == 1:
		return byPrefix, nil
	case nPrefix > 1:
		return nil, ambiguousf("node", ref)
	}
	return nil, notFoundf("node", ref)
}

// lookupTask resolves a full task ID or a unique prefix.
func (s *state) lookupTask(ref string) (*Task, error) {
	if t, ok := s.tasks[ref]; ok {
		return t, nil
	}
	var found *Task
	for id, t := range s.tasks {
		if ref != "" && strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, ambiguousf("task", ref)
			}
			found = t
		}
	}
	if found == nil {
		return nil, notFoundf("task", ref)
	}
	return found, nil
}

func (s *state) managers() int {
	c := 0
	for _, n := range s.nodes {
		if n.Role == RoleManager {
			c++
		}
	}
	return c
}
