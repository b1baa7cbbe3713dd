//go:build race

package chaos

// raceEnabled: the swarmd the test builds is built with -race too, so it
// reuses the packages the race-enabled test build compiled.
const raceEnabled = true
