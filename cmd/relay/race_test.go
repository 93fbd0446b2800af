//go:build race

package main

// raceDetector says the race detector instruments this test binary (and the relay
// processes it starts from itself).
const raceDetector = true
