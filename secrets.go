package swarm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Secrets and configs, as in Swarm: named blobs that services reference
// and their tasks' containers see as read-only files. Secrets are sealed
// with the swarm's data key before they are proposed (keys.go) and never
// come back out of the API; configs are stored as they are and reads
// return their data. A node receives the data of exactly the secrets and
// configs its assigned tasks reference, with those tasks' assignments,
// keeps it in memory only and forgets it when no task of the node needs
// it any more.

// ErrInUse means an object cannot be removed because others use it (a
// secret or config referenced by services); the message names them.
var ErrInUse = errors.New("swarm: object is in use")

// Size limits, Swarm's.
const (
	// MaxSecretSize is the largest secret, 500 KiB.
	MaxSecretSize = 500 << 10
	// MaxConfigSize is the largest config, 1000 KiB.
	MaxConfigSize = 1000 << 10
)

// Default mount points of secret and config files whose target name is
// relative, as in Swarm on Linux.
const (
	SecretsDir = "/run/secrets"
	ConfigsDir = "/"
)

// SecretSpec is the desired state of a secret.
type SecretSpec struct {
	// Name is the secret's unique name (required): at most 64 characters
	// of [a-zA-Z0-9-_.], starting and ending with [a-zA-Z0-9].
	Name string
	// Labels are the secret's labels.
	Labels map[string]string
	// Data is the secret's value, 1 byte to MaxSecretSize (500 KiB). Reads
	// never return it.
	Data []byte
}

// Secret is a secret as stored in the swarm. Its Spec.Data is always nil:
// the value only ever reaches the containers of tasks that use it.
type Secret struct {
	// ID is the secret's ID (25 base-36 characters).
	ID string
	// Version increases with every change; pass it back to UpdateSecret.
	Version   uint64
	Spec      SecretSpec
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ConfigSpec is the desired state of a config.
type ConfigSpec struct {
	// Name is the config's unique name, with the same rules as a secret's.
	Name string
	// Labels are the config's labels.
	Labels map[string]string
	// Data is the config's content, 1 byte to MaxConfigSize (1000 KiB).
	Data []byte
}

// ConfigObject is a config as stored in the swarm (Swarm's "config"
// object; Config is the type that configures a Node). Unlike a secret's,
// its data is returned by reads.
type ConfigObject struct {
	// ID is the config's ID (25 base-36 characters).
	ID string
	// Version increases with every change; pass it back to UpdateConfig.
	Version   uint64
	Spec      ConfigSpec
	CreatedAt time.Time
	UpdatedAt time.Time
}

// FileTarget says where and how a secret or config appears in a
// container.
type FileTarget struct {
	// Name is the file: relative to SecretsDir (/run/secrets) for a
	// secret, to ConfigsDir (/) for a config, or an absolute path. ""
	// means the secret's or config's name.
	Name string
	// UID and GID own the file (default 0, root).
	UID, GID uint32
	// Mode is the file's permission bits; 0 means 0444, Swarm's default.
	Mode os.FileMode
}

// SecretReference gives a service's tasks a secret.
type SecretReference struct {
	// SecretID or SecretName names the secret (either suffices; the
	// managers fill in both when the service is created or updated).
	SecretID, SecretName string
	// Target is the file the secret appears as.
	Target FileTarget
}

// ConfigReference gives a service's tasks a config.
type ConfigReference struct {
	// ConfigID or ConfigName names the config (either suffices; the
	// managers fill in both when the service is created or updated).
	ConfigID, ConfigName string
	// Target is the file the config appears as.
	Target FileTarget
}

// secretRecord is a secret in the replicated state: the data sealed with
// the swarm's data key (the secret's ID is the additional data).
type secretRecord struct {
	Secret
	Sealed []byte
}

func secretAAD(id string) string { return "podswarm secret " + id }

// Command types of secrets and configs.
const (
	cmdSecretCreate cmdType = "secret-create"
	cmdSecretUpdate cmdType = "secret-update"
	cmdSecretRemove cmdType = "secret-remove"
	cmdConfigCreate cmdType = "config-create"
	cmdConfigUpdate cmdType = "config-update"
	cmdConfigRemove cmdType = "config-remove"
)

// objectNameRE is SwarmKit's rule for secret and config names.
var objectNameRE = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

func validateObject(kind, name string, labels map[string]string, data []byte, limit int) error {
	switch {
	case name == "":
		return invalidf("%s name is empty", kind)
	case len(name) > 64 || !objectNameRE.MatchString(name):
		return invalidf("%s name %q: at most 64 characters of [a-zA-Z0-9-_.], starting and ending with [a-zA-Z0-9]", kind, name)
	case len(data) == 0:
		return invalidf("%s %q: data is empty", kind, name)
	case len(data) > limit:
		return invalidf("%s %q: data is %d bytes, more than the limit of %d KiB", kind, name, len(data), limit>>10)
	}
	return validateLabels(kind+" "+quote(name)+": labels", labels)
}

// --- the replicated state ---

// applyObject applies the secret and config commands (deterministic;
// untouched on error).
func (s *state) applyObject(c *command, index uint64) error {
	switch c.Type {
	case cmdSecretCreate:
		r := c.Secret
		if r == nil || r.ID == "" || r.Spec.Name == "" || len(r.Sealed) == 0 {
			return invalidf("secret-create without a secret")
		}
		if _, ok := s.secrets[r.ID]; ok {
			return fmt.Errorf("%w: secret ID %s exists", ErrNameConflict, r.ID)
		}
		if _, ok := s.secretByName[r.Spec.Name]; ok {
			return fmt.Errorf("%w: secret %q already exists", ErrNameConflict, r.Spec.Name)
		}
		nr := *r
		nr.Spec.Data = nil
		nr.Version, nr.CreatedAt, nr.UpdatedAt = index, c.Time, c.Time
		s.secrets[nr.ID] = &nr
		s.secretByName[nr.Spec.Name] = nr.ID
		return nil
	case cmdSecretUpdate:
		old, ok := s.secrets[c.ID]
		if !ok {
			return notFoundf("secret", c.ID)
		}
		if c.Version != 0 && c.Version != old.Version {
			return fmt.Errorf("%w: secret %s is at version %d, not %d", ErrVersionConflict, old.Spec.Name, old.Version, c.Version)
		}
		nr := *old
		nr.Spec.Labels = c.Labels
		nr.Version, nr.UpdatedAt = index, c.Time
		s.secrets[nr.ID] = &nr
		return nil
	case cmdSecretRemove:
		old, ok := s.secrets[c.ID]
		if !ok {
			return notFoundf("secret", c.ID)
		}
		if users := s.servicesUsing(c.ID, true); len(users) > 0 {
			return fmt.Errorf("%w: secret %q is in use by service(s) %s", ErrInUse, old.Spec.Name, strings.Join(users, ", "))
		}
		delete(s.secrets, old.ID)
		delete(s.secretByName, old.Spec.Name)
		return nil
	case cmdConfigCreate:
		r := c.Config
		if r == nil || r.ID == "" || r.Spec.Name == "" {
			return invalidf("config-create without a config")
		}
		if _, ok := s.configs[r.ID]; ok {
			return fmt.Errorf("%w: config ID %s exists", ErrNameConflict, r.ID)
		}
		if _, ok := s.configByName[r.Spec.Name]; ok {
			return fmt.Errorf("%w: config %q already exists", ErrNameConflict, r.Spec.Name)
		}
		nr := *r
		nr.Version, nr.CreatedAt, nr.UpdatedAt = index, c.Time, c.Time
		s.configs[nr.ID] = &nr
		s.configByName[nr.Spec.Name] = nr.ID
		return nil
	case cmdConfigUpdate:
		old, ok := s.configs[c.ID]
		if !ok {
			return notFoundf("config", c.ID)
		}
		if c.Version != 0 && c.Version != old.Version {
			return fmt.Errorf("%w: config %s is at version %d, not %d", ErrVersionConflict, old.Spec.Name, old.Version, c.Version)
		}
		nr := *old
		nr.Spec.Labels = c.Labels
		nr.Version, nr.UpdatedAt = index, c.Time
		s.configs[nr.ID] = &nr
		return nil
	case cmdConfigRemove:
		old, ok := s.configs[c.ID]
		if !ok {
			return notFoundf("config", c.ID)
		}
		if users := s.servicesUsing(c.ID, false); len(users) > 0 {
			return fmt.Errorf("%w: config %q is in use by service(s) %s", ErrInUse, old.Spec.Name, strings.Join(users, ", "))
		}
		delete(s.configs, old.ID)
		delete(s.configByName, old.Spec.Name)
		return nil
	}
	return fmt.Errorf("unknown command type %q", c.Type)
}

// servicesUsing returns, sorted, the names of the services whose current
// spec references the secret (or config) id.
func (s *state) servicesUsing(id string, secret bool) []string {
	var out []string
	for _, v := range s.services {
		found := false
		if secret {
			found = slices.ContainsFunc(v.Spec.Secrets, func(r SecretReference) bool { return r.SecretID == id })
		} else {
			found = slices.ContainsFunc(v.Spec.Configs, func(r ConfigReference) bool { return r.ConfigID == id })
		}
		if found {
			out = append(out, v.Spec.Name)
		}
	}
	sort.Strings(out)
	return out
}

// lookupSecret resolves a full ID, an exact name or a unique ID prefix.
func (s *state) lookupSecret(ref string) (*secretRecord, error) {
	if ref == "" {
		return nil, invalidf("empty secret reference")
	}
	if r, ok := s.secrets[ref]; ok {
		return r, nil
	}
	if id, ok := s.secretByName[ref]; ok {
		return s.secrets[id], nil
	}
	return lookupPrefix(s.secrets, "secret", ref)
}

// lookupConfig resolves a full ID, an exact name or a unique ID prefix.
func (s *state) lookupConfig(ref string) (*ConfigObject, error) {
	if ref == "" {
		return nil, invalidf("empty config reference")
	}
	if r, ok := s.configs[ref]; ok {
		return r, nil
	}
	if id, ok := s.configByName[ref]; ok {
		return s.configs[id], nil
	}
	return lookupPrefix(s.configs, "config", ref)
}

func lookupPrefix[T any](m map[string]*T, kind, ref string) (*T, error) {
	var found *T
	for id, v := range m {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, ambiguousf(kind, ref)
			}
			found = v
		}
	}
	if found == nil {
		return nil, notFoundf(kind, ref)
	}
	return found, nil
}

// resolveFileRefs resolves a service spec's secret and config references
// against the state: a set ID must exist (a name alone is looked up), the
// name is set to the object's, the target name defaults to it, and no two
// files may land on one path. It replaces the slices, never mutating the
// caller's. The API runs it before proposing and the FSM again when it
// applies, so a reference can never outlive what it names.
func (s *state) resolveFileRefs(spec *ServiceSpec) error {
	paths := map[string]string{}
	claim := func(p, what string) error {
		if other, dup := paths[p]; dup {
			return invalidf("service %q: %s and %s both target %s", spec.Name, other, what, p)
		}
		paths[p] = what
		return nil
	}
	if len(spec.Secrets) > 0 {
		refs := slices.Clone(spec.Secrets)
		for i := range refs {
			r := &refs[i]
			var rec *secretRecord
			var err error
			if r.SecretID != "" {
				if rec = s.secrets[r.SecretID]; rec == nil {
					err = notFoundf("secret", r.SecretID)
				}
			} else {
				rec, err = s.lookupSecret(r.SecretName)
			}
			if err != nil {
				return fmt.Errorf("service %q: %w", spec.Name, err)
			}
			r.SecretID, r.SecretName = rec.ID, rec.Spec.Name
			if r.Target.Name == "" {
				r.Target.Name = rec.Spec.Name
			}
			if err := claim(secretPath(r.Target.Name), "secret "+rec.Spec.Name); err != nil {
				return err
			}
		}
		spec.Secrets = refs
	}
	if len(spec.Configs) > 0 {
		refs := slices.Clone(spec.Configs)
		for i := range refs {
			r := &refs[i]
			var rec *ConfigObject
			var err error
			if r.ConfigID != "" {
				if rec = s.configs[r.ConfigID]; rec == nil {
					err = notFoundf("config", r.ConfigID)
				}
			} else {
				rec, err = s.lookupConfig(r.ConfigName)
			}
			if err != nil {
				return fmt.Errorf("service %q: %w", spec.Name, err)
			}
			r.ConfigID, r.ConfigName = rec.ID, rec.Spec.Name
			if r.Target.Name == "" {
				r.Target.Name = rec.Spec.Name
			}
			if err := claim(configPath(r.Target.Name), "config "+rec.Spec.Name); err != nil {
				return err
			}
		}
		spec.Configs = refs
	}
	return nil
}

// validateFileRefs checks the references of a spec on their own (the
// state-dependent checks are resolveFileRefs').
func validateFileRefs(spec *ServiceSpec) error {
	check := func(kind, id, name string, t FileTarget) error {
		if id == "" && name == "" {
			return invalidf("service %q: a %s reference needs an ID or a name", spec.Name, kind)
		}
		if t.Mode&^os.ModePerm != 0 {
			return invalidf("service %q: %s %s%s: mode %o has more than permission bits", spec.Name, kind, name, id, t.Mode)
		}
		if t.Name == "" {
			return nil
		}
		clean := path.Clean(t.Name)
		if strings.ContainsRune(t.Name, 0) || clean != t.Name || clean == "/" || clean == "." || clean == ".." ||
			strings.HasPrefix(clean, "../") || strings.Contains(t.Name, "/../") {
			return invalidf("service %q: %s %s%s: target %q must be a clean file name or absolute path", spec.Name, kind, name, id, t.Name)
		}
		return nil
	}
	for _, r := range spec.Secrets {
		if err := check("secret", r.SecretID, r.SecretName, r.Target); err != nil {
			return err
		}
	}
	for _, r := range spec.Configs {
		if err := check("config", r.ConfigID, r.ConfigName, r.Target); err != nil {
			return err
		}
	}
	return nil
}

// secretPath and configPath are where a target name lands in a container.
func secretPath(name string) string {
	if path.IsAbs(name) {
		return name
	}
	return path.Join(SecretsDir, name)
}

func configPath(name string) string {
	if path.IsAbs(name) {
		return name
	}
	return path.Join(ConfigsDir, name)
}

func fileMode(m os.FileMode) os.FileMode {
	if m == 0 {
		return 0o444
	}
	return m
}

// resolveFileRefs resolves a spec's references on this manager's state
// (after catching up with the leader), for the API.
func (n *Node) resolveFileRefs(ctx context.Context, spec *ServiceSpec) error {
	if len(spec.Secrets) == 0 && len(spec.Configs) == 0 {
		return nil
	}
	if err := validateFileRefs(spec); err != nil {
		return err
	}
	if err := n.readBarrier(ctx); err != nil {
		return err
	}
	var err error
	n.fsm.read(func(s *state) { err = s.resolveFileRefs(spec) })
	return err
}

// --- the API ---

// CreateSecret creates a secret. Its data is sealed with the swarm's data
// key on this manager, so it reaches the Raft log, the snapshots and every
// manager's disk only as ciphertext. A name in use fails with
// ErrNameConflict; a bad name, empty data or data over MaxSecretSize with
// ErrInvalidSpec.
func (n *Node) CreateSecret(ctx context.Context, spec SecretSpec) (Secret, error) {
	if err := validateObject("secret", spec.Name, spec.Labels, spec.Data, MaxSecretSize); err != nil {
		return Secret{}, err
	}
	dek, err := n.dataKey(ctx)
	if err != nil {
		return Secret{}, err
	}
	id := newID()
	sealed, err := seal(dek, spec.Data, secretAAD(id))
	if err != nil {
		return Secret{}, err
	}
	rec := &secretRecord{Secret: Secret{ID: id, Spec: SecretSpec{Name: spec.Name, Labels: copyMap(spec.Labels)}}, Sealed: sealed}
	idx, err := n.apply(ctx, &command{Type: cmdSecretCreate, Secret: rec})
	if err != nil {
		return Secret{}, err
	}
	created := rec.Secret
	created.Version = idx
	return readBackCreated(ctx, id, n.Secret, created)
}

// Secret returns a secret (without its data) by full ID, exact name or
// unique ID prefix.
func (n *Node) Secret(ctx context.Context, idOrName string) (Secret, error) {
	if err := n.readBarrier(ctx); err != nil {
		return Secret{}, err
	}
	var (
		r   *secretRecord
		err error
	)
	n.fsm.read(func(s *state) { r, err = s.lookupSecret(idOrName) })
	if err != nil {
		return Secret{}, err
	}
	return r.public(), nil
}

// Secrets returns every secret (without data), sorted by name.
func (n *Node) Secrets(ctx context.Context) ([]Secret, error) {
	if err := n.readBarrier(ctx); err != nil {
		return nil, err
	}
	var out []Secret
	n.fsm.read(func(s *state) {
		for _, r := range s.secrets {
			out = append(out, r.public())
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

func (r *secretRecord) public() Secret {
	s := r.Secret
	s.Spec.Labels = copyMap(r.Spec.Labels)
	s.Spec.Data = nil
	return s
}

// UpdateSecret changes a secret's labels, the only thing Swarm lets change:
// spec.Name must be "" or the secret's name and spec.Data nil or the
// secret's value, else the update fails with ErrInvalidSpec. version is
// the Version the caller read (0 skips the check); a stale one fails with
// ErrVersionConflict.
func (n *Node) UpdateSecret(ctx context.Context, idOrName string, version uint64, spec SecretSpec) error {
	if err := n.readBarrier(ctx); err != nil {
		return err
	}
	var (
		r   *secretRecord
		err error
	)
	n.fsm.read(func(s *state) { r, err = s.lookupSecret(idOrName) })
	if err != nil {
		return err
	}
	if spec.Name != "" && spec.Name != r.Spec.Name {
		return invalidf("secret %q: only its labels can be updated (not the name)", r.Spec.Name)
	}
	if spec.Data != nil {
		dek, err := n.dataKey(ctx)
		if err != nil {
			return err
		}
		cur, err := unseal(dek, r.Sealed, secretAAD(r.ID))
		if err != nil {
			return fmt.Errorf("swarm: secret %q does not open with this manager's data key: %w", r.Spec.Name, err)
		}
		same := sameSecret(cur, spec.Data)
		clear(cur)
		if !same {
			return invalidf("secret %q: only its labels can be updated (not the data; create a new secret)", r.Spec.Name)
		}
	}
	if err := validateObject("secret", r.Spec.Name, spec.Labels, []byte{0}, MaxSecretSize); err != nil {
		return err
	}
	_, err = n.apply(ctx, &command{Type: cmdSecretUpdate, ID: r.ID, Version: version, Labels: copyMap(spec.Labels)})
	return err
}

// RemoveSecret removes a secret. A secret that a service references
// cannot be removed: the error wraps ErrInUse and names the services.
func (n *Node) RemoveSecret(ctx context.Context, idOrName string) error {
	s, err := n.Secret(ctx, idOrName)
	if err != nil {
		return err
	}
	_, err = n.apply(ctx, &command{Type: cmdSecretRemove, ID: s.ID})
	return err
}

// CreateConfig creates a config. A name in use fails with
// ErrNameConflict; a bad name, empty data or data over MaxConfigSize with
// ErrInvalidSpec.
func (n *Node) CreateConfig(ctx context.Context, spec ConfigSpec) (ConfigObject, error) {
	if err := validateObject("config", spec.Name, spec.Labels, spec.Data, MaxConfigSize); err != nil {
		return ConfigObject{}, err
	}
	c := &ConfigObject{ID: newID(), Spec: ConfigSpec{Name: spec.Name, Labels: copyMap(spec.Labels), Data: slices.Clone(spec.Data)}}
	idx, err := n.apply(ctx, &command{Type: cmdConfigCreate, Config: c})
	if err != nil {
		return ConfigObject{}, err
	}
	created := *c
	created.Version = idx
	return readBackCreated(ctx, c.ID, n.Config, created)
}

// Config returns a config, with its data, by full ID, exact name or unique
// ID prefix.
func (n *Node) Config(ctx context.Context, idOrName string) (ConfigObject, error) {
	if err := n.readBarrier(ctx); err != nil {
		return ConfigObject{}, err
	}
	var (
		c   *ConfigObject
		err error
	)
	n.fsm.read(func(s *state) { c, err = s.lookupConfig(idOrName) })
	if err != nil {
		return ConfigObject{}, err
	}
	return c.clone(), nil
}

// Configs returns every config, with data, sorted by name.
func (n *Node) Configs(ctx context.Context) ([]ConfigObject, error) {
	if err := n.readBarrier(ctx); err != nil {
		return nil, err
	}
	var out []ConfigObject
	n.fsm.read(func(s *state) {
		for _, c := range s.configs {
			out = append(out, c.clone())
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

func (c *ConfigObject) clone() ConfigObject {
	o := *c
	o.Spec.Labels = copyMap(c.Spec.Labels)
	o.Spec.Data = slices.Clone(c.Spec.Data)
	return o
}

// UpdateConfig changes a config's labels, the only thing Swarm lets
// change: spec.Name must be "" or the config's name and spec.Data nil or
// its current content, else the update fails with ErrInvalidSpec. version
// works as in UpdateSecret. (Not to be confused with the UpdateConfig
// type, a service's rolling update policy.)
func (n *Node) UpdateConfig(ctx context.Context, idOrName string, version uint64, spec ConfigSpec) error {
	c, err := n.Config(ctx, idOrName)
	if err != nil {
		return err
	}
	if spec.Name != "" && spec.Name != c.Spec.Name {
		return invalidf("config %q: only its labels can be updated (not the name)", c.Spec.Name)
	}
	if spec.Data != nil && string(spec.Data) != string(c.Spec.Data) {
		return invalidf("config %q: only its labels can be updated (not the data; create a new config)", c.Spec.Name)
	}
	if err := validateObject("config", c.Spec.Name, spec.Labels, []byte{0}, MaxConfigSize); err != nil {
		return err
	}
	_, err = n.apply(ctx, &command{Type: cmdConfigUpdate, ID: c.ID, Version: version, Labels: copyMap(spec.Labels)})
	return err
}

// RemoveConfig removes a config. A config that a service references cannot
// be removed: the error wraps ErrInUse and names the services.
func (n *Node) RemoveConfig(ctx context.Context, idOrName string) error {
	c, err := n.Config(ctx, idOrName)
	if err != nil {
		return err
	}
	_, err = n.apply(ctx, &command{Type: cmdConfigRemove, ID: c.ID})
	return err
}

// --- delivery ---

// needsFiles says whether a task's node must hold its secrets and configs:
// it is assigned, should run, and has not ended.
func needsFiles(t *Task) bool {
	return t.DesiredState.Rank() <= TaskRunning.Rank() && !t.Status.State.Terminal() &&
		t.Status.State.Rank() >= TaskAssigned.Rank()
}

// filePayload is what an assignments reply must carry, gathered under the
// state's read lock and opened outside it.
type filePayload struct {
	secrets map[string]*secretRecord
	configs map[string]*ConfigObject
}

// filesFor gathers the secrets and configs referenced by the reply's
// tasks that need them (nil when there are none).
func (s *state) filesFor(reply *assignReply) *filePayload {
	var p *filePayload
	for _, t := range reply.Tasks {
		if !needsFiles(t) {
			continue
		}
		spec, ok := reply.Specs[specKey(t)]
		if !ok {
			continue
		}
		for _, r := range spec.Secrets {
			if rec := s.secrets[r.SecretID]; rec != nil {
				if p == nil {
					p = &filePayload{}
				}
				if p.secrets == nil {
					p.secrets = map[string]*secretRecord{}
				}
				p.secrets[rec.ID] = rec
			}
		}
		for _, r := range spec.Configs {
			if c := s.configs[r.ConfigID]; c != nil {
				if p == nil {
					p = &filePayload{}
				}
				if p.configs == nil {
					p.configs = map[string]*ConfigObject{}
				}
				p.configs[c.ID] = c
			}
		}
	}
	return p
}

// openFiles fills the reply's Secrets (unsealed here: the worker never
// holds the data key) and Configs from what filesFor gathered.
func (n *Node) openFiles(ctx context.Context, reply *assignReply) error {
	p := reply.files
	reply.files = nil
	if p == nil {
		return nil
	}
	if len(p.secrets) > 0 {
		dek, err := n.dataKey(ctx)
		if err != nil {
			return err
		}
		reply.Secrets = make(map[string][]byte, len(p.secrets))
		for id, rec := range p.secrets {
			data, err := unseal(dek, rec.Sealed, secretAAD(id))
			if err != nil {
				return fmt.Errorf("swarm: secret %q does not open with this manager's data key: %w", rec.Spec.Name, err)
			}
			reply.Secrets[id] = data
		}
	}
	if len(p.configs) > 0 {
		reply.Configs = make(map[string][]byte, len(p.configs))
		for id, c := range p.configs {
			reply.Configs[id] = c.Spec.Data
		}
	}
	return nil
}

// agentFiles is what an agent holds: the data of the secrets and configs
// its live tasks reference, in memory only.
type agentFiles struct {
	secrets map[string][]byte
	configs map[string][]byte
	// tasks is the node's task set as of the last assignments reply.
	tasks []*Task
}

// holdFiles takes the secrets and configs of an assignments reply and
// drops those no live task needs any more. tasks is the node's current
// task set. Called before the tasks are acted on.
func (a *agent) holdFiles(reply *assignReply, tasks []*Task) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := &a.files
	if f.secrets == nil {
		f.secrets, f.configs = map[string][]byte{}, map[string][]byte{}
	}
	for id, d := range reply.Secrets {
		if old, ok := f.secrets[id]; ok {
			clear(old)
		}
		f.secrets[id] = d
	}
	for id, d := range reply.Configs {
		f.configs[id] = d
	}
	f.tasks = tasks
	a.pruneFilesLocked()
}

// pruneFilesLocked forgets the data no live task of the node needs: a
// task needs it until it has ended here or the managers no longer want it
// to run. Secret bytes are zeroed. a.mu is held.
func (a *agent) pruneFilesLocked() {
	f := &a.files
	if len(f.secrets) == 0 && len(f.configs) == 0 {
		return
	}
	keepS, keepC := map[string]bool{}, map[string]bool{}
	for _, t := range f.tasks {
		if !needsFiles(t) {
			continue
		}
		if _, ended := a.containers[t.ID]; ended {
			if _, running := a.runners[t.ID]; !running {
				continue
			}
		}
		for _, r := range t.Spec.Secrets {
			keepS[r.SecretID] = true
		}
		for _, r := range t.Spec.Configs {
			keepC[r.ConfigID] = true
		}
	}
	for id, d := range f.secrets {
		if !keepS[id] {
			clear(d)
			delete(f.secrets, id)
		}
	}
	for id := range f.configs {
		if !keepC[id] {
			delete(f.configs, id)
		}
	}
}

// containerFiles builds the files of a task's container from what the
// agent holds; a reference whose data did not arrive fails the task.
func (a *agent) containerFiles(t *Task) (secrets, configs []ContainerFile, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range t.Spec.Secrets {
		d, ok := a.files.secrets[r.SecretID]
		if !ok {
			return nil, nil, fmt.Errorf("secret %q (%s) is not available on this node", r.SecretName, r.SecretID)
		}
		secrets = append(secrets, ContainerFile{ID: r.SecretID, Name: r.SecretName, Path: secretPath(r.Target.Name),
			UID: r.Target.UID, GID: r.Target.GID, Mode: fileMode(r.Target.Mode), Data: slices.Clone(d)})
	}
	for _, r := range t.Spec.Configs {
		d, ok := a.files.configs[r.ConfigID]
		if !ok {
			return nil, nil, fmt.Errorf("config %q (%s) is not available on this node", r.ConfigName, r.ConfigID)
		}
		configs = append(configs, ContainerFile{ID: r.ConfigID, Name: r.ConfigName, Path: configPath(r.Target.Name),
			UID: r.Target.UID, GID: r.Target.GID, Mode: fileMode(r.Target.Mode), Data: slices.Clone(d)})
	}
	return secrets, configs, nil
}

func (a *agent) heldIDs(secrets bool) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.files.configs
	if secrets {
		m = a.files.secrets
	}
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// HeldSecrets returns the IDs of the secrets whose data this node's agent
// holds in memory right now, sorted. It is a diagnostic (what a node
// knows, for audits and tests): a node holds exactly the secrets its live
// tasks reference.
func (n *Node) HeldSecrets() []string {
	if a := n.agentRef(); a != nil {
		return a.heldIDs(true)
	}
	return []string{}
}

// HeldConfigs is HeldSecrets for configs.
func (n *Node) HeldConfigs() []string {
	if a := n.agentRef(); a != nil {
		return a.heldIDs(false)
	}
	return []string{}
}
