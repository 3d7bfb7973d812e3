//go:build race

package surge

// The race detector slows the shop down about tenfold: drop fewer orders.
const raceScale = 4
