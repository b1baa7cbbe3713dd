package swarm

import "slices"

// cloneSpec deep-copies a spec so callers never share memory with the state.
func cloneSpec(s ServiceSpec) ServiceSpec {
	s.Labels = copyMap(s.Labels)
	s.ContainerLabels = copyMap(s.ContainerLabels)
	s.Command = slices.Clone(s.Command)
	s.Args = slices.Clone(s.Args)
	s.Env = slices.Clone(s.Env)
	s.Placement.Constraints = slices.Clone(s.Placement.Constraints)
	s.Placement.Preferences = slices.Clone(s.Placement.Preferences)
	s.Mounts = slices.Clone(s.Mounts)
	s.CapAdd = slices.Clone(s.CapAdd)
	s.CapDrop = slices.Clone(s.CapDrop)
	s.Ulimits = slices.Clone(s.Ulimits)
	s.Ports = slices.Clone(s.Ports)
	s.Secrets = slices.Clone(s.Secrets)
	s.Configs = slices.Clone(s.Configs)
	if s.Healthcheck != nil {
		h := *s.Healthcheck
		h.Test = slices.Clone(h.Test)
		s.Healthcheck = &h
	}
	if s.RestartPolicy.Delay != nil {
		d := *s.RestartPolicy.Delay
		s.RestartPolicy.Delay = &d
	}
	for _, u := range []**UpdateConfig{&s.UpdateConfig, &s.RollbackConfig} {
		if *u != nil {
			c := **u
			if c.Monitor != nil {
				m := *c.Monitor
				c.Monitor = &m
			}
			*u = &c
		}
	}
	if s.Rebalance != nil {
		b := *s.Rebalance
		s.Rebalance = &b
	}
	if s.StopGracePeriod != nil {
		d := *s.StopGracePeriod
		s.StopGracePeriod = &d
	}
	return s
}

func cloneService(v *Service) Service {
	c := *v
	c.Spec = cloneSpec(v.Spec)
	if v.UpdateStatus != nil {
		us := *v.UpdateStatus
		c.UpdateStatus = &us
	}
	if v.JobStatus != nil {
		js := *v.JobStatus
		c.JobStatus = &js
	}
	if v.PreviousSpec != nil {
		p := cloneSpec(*v.PreviousSpec)
		c.PreviousSpec = &p
	}
	return c
}

func cloneTask(t *Task) Task {
	c := *t
	c.Spec = cloneSpec(t.Spec)
	return c
}
