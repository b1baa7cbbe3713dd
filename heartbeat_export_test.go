package swarm

// HangNode makes n stop answering (its RPC handlers, heartbeats and agent
// loops block) while its listener keeps accepting connections, until
// release is called: a SIGSTOPped process, in-process (tests of hung-node
// detection; heartbeat_test.go).
func HangNode(n *Node) (release func()) { return n.hang() }
