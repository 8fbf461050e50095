//go:build !race

package chat

import "time"

// maxTestTime is how long a render that runs into a limit may take in the
// tests: well within renderTimeout, so that the limit, not the clock,
// stops it.
const maxTestTime = 2 * time.Second
