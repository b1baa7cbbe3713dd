//go:build !race

package swarm

// raceDetector reports whether the race detector is on (see race_on.go's
// twin): off in this build.
const raceDetector = false
