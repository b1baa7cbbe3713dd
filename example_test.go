package swarm_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/podswarm/swarm"
)

// This example starts a swarm of one manager and one worker in this
// process, on loopback ports the kernel picks, with simulated containers;
// runs a service of three replicas on it; and shuts both nodes down.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The first manager creates the swarm.
	mcfg := swarm.DefaultLocalConfig()
	mcfg.Hostname = "manager-1"
	mcfg.Runtime = swarm.NewInmemRuntime()
	manager := swarm.NewNode(mcfg)
	if err := manager.Init(); err != nil {
		log.Fatal(err)
	}
	defer manager.Shutdown()

	// A worker joins it with the worker token.
	token, err := manager.JoinToken(swarm.RoleWorker)
	if err != nil {
		log.Fatal(err)
	}
	wcfg := swarm.DefaultLocalConfig()
	wcfg.Hostname = "worker-1"
	wcfg.Runtime = swarm.NewInmemRuntime()
	wcfg.JoinToken = token
	worker := swarm.NewNode(wcfg)
	if err := worker.Join(manager.Addr()); err != nil {
		log.Fatal(err)
	}
	defer worker.Shutdown()

	// Services are created on a manager; the swarm places their tasks.
	svc, err := manager.CreateService(ctx, swarm.ServiceSpec{
		Name:  "web",
		Image: "inmem/web",
		Mode:  swarm.Replicated(3),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := manager.WaitConverged(ctx, svc.ID); err != nil {
		log.Fatal(err)
	}

	tasks, err := manager.Tasks(ctx, swarm.TaskFilter{Service: "web", DesiredState: swarm.TaskRunning})
	if err != nil {
		log.Fatal(err)
	}
	running := 0
	for _, t := range tasks {
		if t.Status.State == swarm.TaskRunning {
			running++
		}
	}
	fmt.Println("running tasks:", running)
	// Output: running tasks: 3
}
