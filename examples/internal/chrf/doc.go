// Package chrf computes chrF, the character n-gram F-score of machine
// translation output against a reference (Popović 2015), exactly as
// sacreBLEU 2.x computes it with its defaults (chrF2: character n-grams of
// orders 1 to 6, beta 2, whitespace ignored, no word n-grams, no eps
// smoothing).
//
// Following sacreBLEU:
//   - whitespace (Python's str.split() set) is removed before n-grams are
//     taken; n-grams are over Unicode code points;
//   - per order, a segment contributes its hypothesis n-gram count (0 when
//     the reference has no n-gram of that order), its reference n-gram count
//     and the clipped matches;
//   - a corpus score sums these statistics over all segments first;
//   - precision and recall are averaged over the orders where both counts
//     are positive (the "effective order"), then combined into
//     F-beta = (1+beta^2)·P·R / (beta^2·P + R), scaled to 0..100.
//
// The functions are pure and safe for concurrent use; a Stats value is a
// plain array owned by its caller.
package chrf
