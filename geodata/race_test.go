//go:build race

package geodata_test

const raceEnabled = true
