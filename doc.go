// Package swarm is podswarm: Docker Swarm mode as an embeddable Go package.
//
// Any Go program starts a swarm node in-process with one call. Managers
// agree on the cluster state with Raft; every node finds the others and
// detects failures by gossip; and each node's agent runs the tasks the
// managers assign to it on a [Runtime]: real containers on Podman (rootless
// where the user is not root) or simulated ones in memory for tests and
// benchmarks. The behaviour, names and defaults are Docker Swarm's
// (moby/swarmkit), with faster failure detection: a crashed node's tasks
// run elsewhere after about a second, not Swarm's twenty.
//
// The package builds with plain go build: no build tags, no cgo headers
// and no container-engine dependency. Real containers come from the
// separate package github.com/podswarm/swarm/podman, which does need build
// tags (its documentation lists them).
//
// # Object model
//
// A swarm is made of nodes ([NodeInfo]). Managers ([RoleManager]) are the
// Raft voters; one of them is the leader, and only the leader runs the
// orchestrator and the scheduler. Workers ([RoleWorker]) only run tasks;
// managers run tasks too unless drained. A node's availability
// ([AvailabilityActive], [AvailabilityPause], [AvailabilityDrain]) says
// whether it takes new tasks; its state ([NodeReady], [NodeDown]) is its
// liveness as the leader sees it.
//
// A service ([Service], created from a [ServiceSpec]) is desired state: an
// image, a command, a mode and placement rules. The orchestrator turns it
// into tasks ([Task]), one per replica slot ([Replicated]) or one per
// eligible node ([Global]); the scheduler assigns each task to a node that
// satisfies its constraints and reservations, spreading a service's tasks
// across nodes; and that node's agent creates, starts and watches the
// task's container and reports its status. A task's state only moves
// forward, through Swarm's states in order: [TaskNew], [TaskPending],
// [TaskAssigned], [TaskAccepted], [TaskPreparing], [TaskReady],
// [TaskStarting], [TaskRunning], and then one of the end states
// [TaskComplete], [TaskShutdown], [TaskFailed], [TaskRejected] (and
// [TaskRemove], [TaskOrphaned]). A task that ends is never revived: the
// restart policy replaces it with a new task in the same slot. A task's
// DesiredState is what the managers want; its Status is what its node
// reported.
//
// # Starting a node
//
// Start from [DefaultConfig] (LAN timings) or [DefaultLocalConfig] (nodes in
// one process or on one host: loopback, a free port, in-memory state), set
// the fields you need, and call [NewNode]. Then either create a swarm:
//
//	n := swarm.NewNode(cfg)
//	err := n.Init() // this node is the first manager and the leader
//
// or join an existing one at the address of one of its managers, with a
// join token from [Node.JoinToken] (the token decides worker or manager):
//
//	cfg.JoinToken = token
//	n := swarm.NewNode(cfg)
//	err := n.Join("10.0.0.1:2377")
//
// A daemon passes its shutdown context instead: [Node.InitContext],
// [Node.JoinContext], [Node.LeaveContext] and [Node.UnlockContext] return
// an error wrapping ctx.Err() as soon as ctx ends (a join to a manager
// that never answers stops on SIGTERM), and a node whose Init or Join
// failed is shut down.
//
// The service and node calls ([Node.CreateService], [Node.ScaleService],
// [Node.Tasks], [Node.Nodes], [Node.WaitConverged] and so on) work on any
// manager: a follower serves reads from its replica of the state and
// forwards writes to the leader. They take a [context.Context] first.
// Reads are linearizable: each sees every write acknowledged before it
// began, on whichever manager, or fails with [ErrNoLeader] (within
// Config.RPCTimeout) on a manager that cannot reach the leader's
// majority; [WithStaleReads] opts into the local view instead. Writes are
// exactly-once: a write retried after a lost reply or a leader change
// returns the first outcome and is not applied twice.
// [Node.Leave] leaves gracefully (the managers reschedule the node's tasks at
// once); [Node.Shutdown] stops the node hard, as a crash would, and is
// idempotent.
//
// # Service lifecycle and nodes
//
// Services come in Swarm's four modes ([Replicated], [Global],
// [ReplicatedJob], [GlobalJob]). [Node.UpdateService] takes the version
// the caller read (a stale one fails with [ErrVersionConflict]) and rolls
// the change out under the spec's [UpdateConfig] (parallelism, delay,
// monitor, failure action, order), reporting progress in
// [Service.UpdateStatus]; [Node.RollbackService] goes back. Restart
// policies, placement constraints and spread preferences, reservations and
// opt-in rebalancing are Swarm's (rebalancing is podswarm's addition).
// Nodes are managed with [Node.UpdateNode], [Node.PromoteNode],
// [Node.DemoteNode] and [Node.RemoveNode]; [Node.Events] streams every
// change from any manager, resumable from a log index; [Node.ServiceLogs]
// streams the tasks' output.
//
// # Restarts
//
// A node with a Config.DataDir keeps its identity, and a manager its Raft
// log and snapshots, there. Started again on the same DataDir, the node
// resumes its place in the swarm on Init or Join alike, so a daemon can
// call NewNode(cfg).Join(addr) on every start; its runtime's containers are
// re-adopted or removed. With DataDir "" all state is in memory and a node
// cannot come back after Shutdown.
//
// # Runtimes
//
// [Runtime] is the only way tasks touch the host. [NewInmemRuntime] returns
// a runtime of simulated containers with knobs for start delays, exit codes
// and crashes, for tests and benchmarks. The Runtime of package
// github.com/podswarm/swarm/podman (podman.NewRuntime) talks to a Podman
// API socket (`podman system service`), rootless when that service runs as
// an unprivileged user. Several nodes may share one runtime: every
// container carries labels that tie it to its node, service and task. A
// runtime may also implement the optional [LogRuntime] (for
// [Node.ServiceLogs] and [Node.TaskLogs]) and [StagePruner] (files it
// staged on the host for a node's containers).
//
// # Errors
//
// Errors with a known cause wrap one of the package's sentinel errors, such
// as [ErrNotFound], [ErrNameConflict], [ErrNotManager], [ErrNoLeader],
// [ErrInvalidSpec], [ErrInvalidToken] and [ErrShutdown]; test for them with
// [errors.Is]:
//
//	if _, err := n.Service(ctx, "web"); errors.Is(err, swarm.ErrNotFound) {
//		// create it
//	}
//
// # Example
//
// A manager and a worker in one process, running three replicas of a
// simulated service:
//
//	ctx := context.Background()
//	mcfg := swarm.DefaultLocalConfig()
//	mcfg.Runtime = swarm.NewInmemRuntime()
//	manager := swarm.NewNode(mcfg)
//	if err := manager.Init(); err != nil {
//		log.Fatal(err)
//	}
//	defer manager.Shutdown()
//
//	token, _ := manager.JoinToken(swarm.RoleWorker)
//	wcfg := swarm.DefaultLocalConfig()
//	wcfg.Runtime = swarm.NewInmemRuntime()
//	wcfg.JoinToken = token
//	worker := swarm.NewNode(wcfg)
//	if err := worker.Join(manager.Addr()); err != nil {
//		log.Fatal(err)
//	}
//	defer worker.Shutdown()
//
//	svc, err := manager.CreateService(ctx, swarm.ServiceSpec{
//		Name: "web", Image: "inmem/web", Mode: swarm.Replicated(3),
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	err = manager.WaitConverged(ctx, svc.ID) // all three replicas run
//
// Package swarmtest starts such clusters inside a test with one call, and
// cmd/swarmd is a daemon and demo built only on this package's API.
package swarm
