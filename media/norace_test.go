//go:build !race

package media

// raceEnabled is true under -race: timings and CPU figures mean nothing there.
const raceEnabled = false
