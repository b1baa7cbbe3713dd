package main

// The operator control API: a small HTTP/JSON API on a unix socket, served
// over the node's public Go API, so that scripts and the chaos campaign can
// drive a swarmd cluster from outside until the Docker Engine API lands.
//
// Start swarmd with -control-socket PATH; the socket is created mode 0600
// (only its owner may connect: it is as powerful as the node itself).
// Requests and replies are JSON; the bodies are the Go API's own types
// (swarm.ServiceSpec, swarm.Service, swarm.Task, ...) with their Go field
// names. A request may carry ?timeout=DURATION (default 10s, at most 60s);
// it bounds the node call, and a request cancelled by its client cancels
// the call.
//
//	GET    /v1/info                       {"Info": swarm.Info, "Raft": swarm.RaftStatus}
//	GET    /v1/nodes                      []swarm.NodeInfo
//	GET    /v1/services                   []swarm.Service
//	POST   /v1/services                   body swarm.ServiceSpec -> swarm.Service
//	GET    /v1/services/{ref}             swarm.Service
//	POST   /v1/services/{ref}/scale       body {"Replicas": N}
//	POST   /v1/services/{ref}/update      body {"Version": V, "Spec": swarm.ServiceSpec}
//	DELETE /v1/services/{ref}
//	GET    /v1/tasks?service=&node=&desired=  []swarm.Task
//	GET    /v1/secrets                    []swarm.Secret
//	POST   /v1/secrets                    body swarm.SecretSpec (Data base64) -> swarm.Secret
//	GET    /v1/secrets/{ref}              swarm.Secret (never its data)
//	DELETE /v1/secrets/{ref}
//	GET    /v1/containers                 []swarm.ContainerInfo: this node's runtime
//
// Errors reply {"error": message, "code": code} with code one of not_found,
// name_conflict, version_conflict, no_leader, invalid, not_manager,
// shutdown, timeout or internal, and a matching HTTP status.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/podswarm/swarm"
)

// controlServer serves the control API of one node.
type controlServer struct {
	node *swarm.Node
	rt   swarm.Runtime
	srv  *http.Server
	ln   net.Listener
	path string
}

// startControl listens on the unix socket path (replacing a stale one) and
// serves the control API of n until the returned server is closed.
func startControl(path string, n *swarm.Node, rt swarm.Runtime) (*controlServer, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("-control-socket %s: exists and is not a socket", path)
		}
		os.Remove(path) // a socket left by a killed swarmd
	}
	// The umask makes the socket 0600 from the start: a chmod after
	// listen would leave a window in which anyone could connect.
	// It runs before the node starts, so no other file of the process is
	// created under the narrowed umask.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("-control-socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("-control-socket: %w", err)
	}
	c := &controlServer{node: n, rt: rt, ln: ln, path: path}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", c.info)
	mux.HandleFunc("GET /v1/nodes", c.nodes)
	mux.HandleFunc("GET /v1/services", c.services)
	mux.HandleFunc("POST /v1/services", c.createService)
	mux.HandleFunc("GET /v1/services/{ref}", c.service)
	mux.HandleFunc("POST /v1/services/{ref}/scale", c.scaleService)
	mux.HandleFunc("POST /v1/services/{ref}/update", c.updateService)
	mux.HandleFunc("DELETE /v1/services/{ref}", c.removeService)
	mux.HandleFunc("GET /v1/tasks", c.tasks)
	mux.HandleFunc("GET /v1/secrets", c.secrets)
	mux.HandleFunc("POST /v1/secrets", c.createSecret)
	mux.HandleFunc("GET /v1/secrets/{ref}", c.secret)
	mux.HandleFunc("DELETE /v1/secrets/{ref}", c.removeSecret)
	mux.HandleFunc("GET /v1/containers", c.containers)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go c.srv.Serve(ln)
	return c, nil
}

// Close stops serving and removes the socket.
func (c *controlServer) Close() error {
	err := c.srv.Close()
	os.Remove(c.path)
	return err
}

// callCtx bounds a node call by the request's ?timeout= (default 10s, at
// most 60s) and by the client's connection.
func callCtx(r *http.Request) (context.Context, context.CancelFunc, error) {
	d := 10 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			return nil, nil, fmt.Errorf("%w: timeout %q: want a positive duration", swarm.ErrInvalidSpec, s)
		}
		d = min(v, 60*time.Second)
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// handle runs f with a bounded context and writes its result or error.
func handle(w http.ResponseWriter, r *http.Request, f func(ctx context.Context) (any, error)) {
	ctx, cancel, err := callCtx(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	defer cancel()
	v, err := f(ctx)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if v == nil {
		v = struct{}{}
	}
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body of at most 1 MiB into v.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", swarm.ErrInvalidSpec, err)
	}
	return nil
}

// errorCodes map the package's sentinel errors to the API's codes and
// HTTP statuses, in the order they are matched.
var errorCodes = []struct {
	err    error
	code   string
	status int
}{
	{swarm.ErrNotFound, "not_found", http.StatusNotFound},
	{swarm.ErrNameConflict, "name_conflict", http.StatusConflict},
	{swarm.ErrVersionConflict, "version_conflict", http.StatusConflict},
	{swarm.ErrNoLeader, "no_leader", http.StatusServiceUnavailable},
	{swarm.ErrInvalidSpec, "invalid", http.StatusBadRequest},
	{swarm.ErrNotManager, "not_manager", http.StatusForbidden},
	{swarm.ErrShutdown, "shutdown", http.StatusServiceUnavailable},
	{context.DeadlineExceeded, "timeout", http.StatusGatewayTimeout},
	{context.Canceled, "timeout", http.StatusGatewayTimeout},
}

func writeErr(w http.ResponseWriter, err error) {
	code, status := "internal", http.StatusInternalServerError
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			code, status = e.code, e.status
			break
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error(), "code": code})
}

func (c *controlServer) info(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		info, err := c.node.Info(ctx)
		if err != nil {
			return nil, err
		}
		return struct {
			Info swarm.Info
			Raft swarm.RaftStatus
		}{info, c.node.RaftStatus()}, nil
	})
}

func (c *controlServer) nodes(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) { return c.node.Nodes(ctx) })
}

func (c *controlServer) services(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) { return c.node.Services(ctx) })
}

func (c *controlServer) service(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) { return c.node.Service(ctx, r.PathValue("ref")) })
}

func (c *controlServer) createService(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		var spec swarm.ServiceSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return c.node.CreateService(ctx, spec)
	})
}

func (c *controlServer) scaleService(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		var body struct{ Replicas uint64 }
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, c.node.ScaleService(ctx, r.PathValue("ref"), body.Replicas)
	})
}

func (c *controlServer) updateService(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		var body struct {
			Version uint64
			Spec    swarm.ServiceSpec
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, c.node.UpdateService(ctx, r.PathValue("ref"), body.Version, body.Spec)
	})
}

func (c *controlServer) removeService(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		return nil, c.node.RemoveService(ctx, r.PathValue("ref"))
	})
}

func (c *controlServer) tasks(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		q := r.URL.Query()
		return c.node.Tasks(ctx, swarm.TaskFilter{
			Service:      q.Get("service"),
			Node:         q.Get("node"),
			DesiredState: swarm.TaskState(q.Get("desired")),
		})
	})
}

func (c *controlServer) secrets(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) { return c.node.Secrets(ctx) })
}

func (c *controlServer) createSecret(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		var spec swarm.SecretSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return c.node.CreateSecret(ctx, spec)
	})
}

func (c *controlServer) secret(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) { return c.node.Secret(ctx, r.PathValue("ref")) })
}

func (c *controlServer) removeSecret(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		return nil, c.node.RemoveSecret(ctx, r.PathValue("ref"))
	})
}

func (c *controlServer) containers(w http.ResponseWriter, r *http.Request) {
	handle(w, r, func(ctx context.Context) (any, error) {
		cs, err := c.rt.List(ctx, c.node.ID())
		if cs == nil && err == nil {
			cs = []swarm.ContainerInfo{}
		}
		return cs, err
	})
}
