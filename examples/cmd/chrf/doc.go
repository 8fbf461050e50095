// Command chrf scores translations in a JSONL file against the human
// translations beside them, with chrF as sacreBLEU 2.x defines it (chrF2:
// character 6-grams, beta 2, whitespace ignored; see package
// examples/internal/chrf). It prints a handful of rows, evenly spread over
// the file, then the corpus score and, as a floor, the score of copying the
// source text unchanged.
//
//	go run ./examples/cmd/chrf [-hyp translation] [-ref de] [-src en] [-show 8] FILE.jsonl
//
// A row whose hypothesis is null or missing (a failed translation) counts as
// an empty hypothesis, so failures lower the score. Exit status: 0 scored,
// 1 unreadable input, 2 usage.
package main
