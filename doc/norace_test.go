//go:build !race

package doc_test

const raceEnabled = false
