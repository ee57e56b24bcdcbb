//go:build race

package doc_test

// raceEnabled scales the longest tests down under the race detector,
// which runs them about ten times slower.
const raceEnabled = true
