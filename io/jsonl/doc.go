// Package jsonl reads and writes JSON Lines datasets: one JSON object a
// line, any fields. It implements io/dataset's Reader and Writer and
// registers the format "jsonl" (extensions .jsonl, .ndjson, .jsonl.gz,
// .ndjson.gz; the .gz ones are read through gzip).
//
// Reading makes two streaming passes: Open scans the file once to learn the
// columns (names in first-seen order, kinds from the values), then Read
// streams the records. Memory is bounded by the longest line (at most
// MaxLineBytes) and the number of distinct field names (at most
// MaxColumns), never by the number of rows.
//
// Kinds: a field whose non-null values are all strings is String, all
// booleans Bool, all integer literals that fit int64 Int, all numbers
// with a fraction or exponent (or a mix of those and integers) Float, as
// float64; a field holding objects or arrays, values of different JSON
// types, an integer literal beyond int64 or a number beyond float64's
// range is JSON and its values are kept as json.RawMessage, byte for
// byte. A field that is
// only ever null is String.
//
// Decisions: blank (whitespace-only) lines are skipped: they are not rows
// and do not advance Record.Index, but Record.Line still counts them. A
// line that is not one JSON object (malformed JSON, a bare array or
// scalar, a duplicate or empty key, invalid UTF-8, or longer than MaxLineBytes) is
// a Record with Err naming the file and line; reading goes on. A Record's
// Fields hold only the fields present on its line (null ones with a nil
// Value), in column order, so a missing field and a null are told apart.
//
// Writing: one compact object a line with the columns in order; nil is
// null, Float values always carry a point or exponent (NaN and ±Inf, which
// JSON cannot spell, are written as null), JSON values are compacted.
// A JSONL -> JSONL copy keeps every value (numbers of Float columns as
// float64 values, not their text).
//
// This package imports only io/dataset and io/internal packages.
package jsonl
