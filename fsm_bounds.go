package swarm

import (
	"encoding/json"
	"fmt"
)

// checkCommand runs, inside Apply, the checks the API runs before it
// proposes a command, so the replicated state can never hold what the API
// refuses. An entry that breaks them (written by an older version, or by a
// buggy or hostile peer) is refused with the same ErrInvalidSpec error on
// every replica and on every replay, deterministically, and the state is
// left as it was: one bad entry cannot poison a restart.
func checkCommand(c *command) error {
	switch c.Type {
	case cmdServiceCreate, cmdServiceUpdate:
		if c.Service == nil {
			return nil // the apply case refuses it with its own message
		}
		spec := c.Service.Spec
		spec.Mode = spec.Mode.normalized()
		if err := validateSpec(&spec); err != nil {
			return fmt.Errorf("%s refused: %w", c.Type, err)
		}
		if p := c.Service.PreviousSpec; p != nil {
			if b, _ := json.Marshal(p); len(b) > MaxSpecSize {
				return invalidf("%s refused: previous spec of %q exceeds %d bytes", c.Type, spec.Name, MaxSpecSize)
			}
		}
	case cmdNodeSpec, cmdNodeUpdate:
		if c.Node == nil {
			return nil
		}
		u := NodeUpdate{Availability: c.Node.Availability, Labels: c.Node.Labels, Role: c.Node.Role}
		if err := u.validate(); err != nil {
			return fmt.Errorf("%s refused: %w", c.Type, err)
		}
	case cmdNodeUpsert:
		if c.Node == nil {
			return nil
		}
		// A joining node reports its own hostname and engine labels.
		if len(c.Node.Hostname) > MaxHostnameLength {
			return invalidf("%s refused: hostname is %d characters, more than the limit of %d", c.Type, len(c.Node.Hostname), MaxHostnameLength)
		}
		if err := validateLabels("node-upsert refused: engine labels", c.Node.EngineLabels); err != nil {
			return err
		}
	case cmdSecretCreate:
		if c.Secret != nil {
			if err := validateLabels("secret-create refused: labels", c.Secret.Spec.Labels); err != nil {
				return err
			}
			if len(c.Secret.Sealed) > 2*MaxSecretSize {
				return invalidf("secret-create refused: sealed data is %d bytes", len(c.Secret.Sealed))
			}
		}
	case cmdConfigCreate:
		if c.Config != nil {
			if err := validateObject("config", c.Config.Spec.Name, c.Config.Spec.Labels, c.Config.Spec.Data, MaxConfigSize); err != nil {
				return fmt.Errorf("config-create refused: %w", err)
			}
		}
	case cmdSecretUpdate, cmdConfigUpdate:
		if err := validateLabels(string(c.Type)+" refused: labels", c.Labels); err != nil {
			return err
		}
	case cmdRotateToken:
		if c.Sec != nil {
			if err := c.Sec.Role.valid(); err != nil {
				return fmt.Errorf("%s refused: %w", c.Type, err)
			}
		}
	}
	return nil
}
