package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/podswarm/swarm"
)

// controlClient talks to one swarmd's control socket (see
// cmd/swarmd/control.go) and maps its error codes back onto the package's
// sentinel errors, so the campaign classifies outcomes the same way for
// both targets.
type controlClient struct {
	sock string
	hc   *http.Client
}

func newControlClient(sock string) *controlClient {
	return &controlClient{sock: sock, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		// A SIGSTOPped swarmd keeps its connections open; fresh ones fail
		// or time out cleanly.
		DisableKeepAlives: true,
	}}}
}

var codeErrs = map[string]error{
	"not_found":        swarm.ErrNotFound,
	"name_conflict":    swarm.ErrNameConflict,
	"version_conflict": swarm.ErrVersionConflict,
	"no_leader":        swarm.ErrNoLeader,
	"invalid":          swarm.ErrInvalidSpec,
	"not_manager":      swarm.ErrNotManager,
	"shutdown":         swarm.ErrShutdown,
	"timeout":          context.DeadlineExceeded,
}

// call sends method path with body (nil: none) and decodes the reply into out.
func (c *controlClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	if dl, ok := ctx.Deadline(); ok {
		// Let the node give up a little before the client does, so that a
		// slow call comes back as the node's own timeout error.
		path += "?timeout=" + url.QueryEscape(fmt.Sprint(max(time.Until(dl)*9/10, time.Millisecond)))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://swarmd"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Code string }
		json.Unmarshal(data, &e)
		if s, ok := codeErrs[e.Code]; ok {
			return fmt.Errorf("%w (%s)", s, e.Error)
		}
		return fmt.Errorf("control %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type infoReply struct {
	Info swarm.Info
	Raft swarm.RaftStatus
}

func (c *controlClient) info(ctx context.Context) (infoReply, error) {
	var r infoReply
	err := c.call(ctx, "GET", "/v1/info", nil, &r)
	return r, err
}

func (c *controlClient) CreateService(ctx context.Context, spec swarm.ServiceSpec) error {
	return c.call(ctx, "POST", "/v1/services", spec, nil)
}

func (c *controlClient) ScaleService(ctx context.Context, name string, r uint64) error {
	return c.call(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/scale", map[string]uint64{"Replicas": r}, nil)
}

func (c *controlClient) UpdateService(ctx context.Context, name string, v uint64, spec swarm.ServiceSpec) error {
	return c.call(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/update", struct {
		Version uint64
		Spec    swarm.ServiceSpec
	}{v, spec}, nil)
}

func (c *controlClient) RemoveService(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/v1/services/"+url.PathEscape(name), nil, nil)
}

func (c *controlClient) Service(ctx context.Context, name string) (swarm.Service, error) {
	var s swarm.Service
	err := c.call(ctx, "GET", "/v1/services/"+url.PathEscape(name), nil, &s)
	return s, err
}

func (c *controlClient) CreateSecret(ctx context.Context, spec swarm.SecretSpec) error {
	return c.call(ctx, "POST", "/v1/secrets", spec, nil)
}

func (c *controlClient) RemoveSecret(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/v1/secrets/"+url.PathEscape(name), nil, nil)
}

func (c *controlClient) Secret(ctx context.Context, name string) error {
	return c.call(ctx, "GET", "/v1/secrets/"+url.PathEscape(name), nil, nil)
}

func (c *controlClient) nodes(ctx context.Context) ([]swarm.NodeInfo, error) {
	var ns []swarm.NodeInfo
	err := c.call(ctx, "GET", "/v1/nodes", nil, &ns)
	return ns, err
}

func (c *controlClient) containers(ctx context.Context) ([]swarm.ContainerInfo, error) {
	var cs []swarm.ContainerInfo
	err := c.call(ctx, "GET", "/v1/containers", nil, &cs)
	return cs, err
}
