// Package progress owns a run's progress display: atomic counters that the
// runner bumps as rows become durable, read on a timer by a Reporter that
// draws a progress bar on a terminal or logs a progress line every few
// seconds otherwise, and the final summary line. Counters are safe for
// concurrent use; a Reporter is started and stopped by one goroutine.
package progress
