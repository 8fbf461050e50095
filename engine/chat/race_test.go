//go:build race

package chat

import "time"

// maxTestTime is how long a render that runs into a limit may take in the
// tests: within renderTimeout, so that the limit, not the clock, stops it.
// The race detector slows renders down about four times.
const maxTestTime = 4 * time.Second
