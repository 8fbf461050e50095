// Package source owns a job's input as a whole: the files that
// input.path names (a path, a glob, a list of either, on disk or as
// object-storage URLs), resolved and sorted, and read one after another as
// one logical input whose row numbers run on across files while each
// record keeps its own file's line. It also digests every file for the
// job's fingerprint and counts the rows (from Parquet footers where it
// can).
//
// It reads each file through dataset.Source, so local files and objects
// take the same path, and it opens one file at a time: a thousand-file
// input holds one file handle.
package source
