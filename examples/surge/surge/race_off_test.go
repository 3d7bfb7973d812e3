//go:build !race

package surge

const raceScale = 1
