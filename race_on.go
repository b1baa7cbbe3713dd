//go:build race

package swarm

// raceDetector reports whether the race detector is on: it slows every
// goroutine several times over, so DefaultLocalConfig stretches its Raft
// timings to keep the same margin against spurious elections.
const raceDetector = true
