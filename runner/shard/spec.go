package shard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxShards bounds N, so that T*N stays far inside an int64.
const MaxShards = 1_000_000

// ErrSpec: a --shard value that cannot be used (usage error).
var ErrSpec = errors.New("bad --shard")

// Spec is one shard of a job: Index of Count, 0-based.
type Spec struct {
	Index, Count int
}

// Range is a half-open range of input rows [First, End).
type Range struct {
	First, End int64
}

// Len is the number of rows in the range.
func (r Range) Len() int64 { return r.End - r.First }

// Range is the rows shard s owns of total rows.
func (s Spec) Range(total int64) Range {
	n := int64(s.Count)
	return Range{First: total * int64(s.Index) / n, End: total * int64(s.Index+1) / n}
}

// Name is the shard's file name stem, "00007-of-01000": zero-padded so
// names sort in shard order.
func (s Spec) Name() string {
	return padded(s.Index, s.Count) + "-of-" + padded(s.Count, s.Count)
}

// padded writes v with as many digits as n has, and at least five.
func padded(v, n int) string {
	return fmt.Sprintf("%0*d", max(5, len(strconv.Itoa(n))), v)
}

// String is "7/1000".
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// The schedulers' variables, in the order auto looks for them: each
// scheduler's index variable and, where it exports one, its count.
var schedulers = []struct {
	name, index, count string
}{
	{"Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", ""},
	{"Slurm job array", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"},
	{"AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"},
	{"Cloud Run job", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"},
}

// Parse reads a --shard value: "I/N", "auto" or "auto/N". auto takes the
// index (and the count, where the scheduler exports one) from getenv.
func Parse(v string, getenv func(string) string) (Spec, error) {
	head, tail, hasN := strings.Cut(v, "/")
	count := 0
	if hasN {
		n, err := strconv.Atoi(tail)
		if err != nil || n < 1 || n > MaxShards {
			return Spec{}, fmt.Errorf("%w %q: the shard count must be a whole number from 1 to %d", ErrSpec, v, MaxShards)
		}
		count = n
	}
	if head != "auto" {
		if !hasN {
			return Spec{}, fmt.Errorf("%w %q: want I/N (I counted from 0), auto or auto/N", ErrSpec, v)
		}
		i, err := strconv.Atoi(head)
		if err != nil || i < 0 || i >= count {
			return Spec{}, fmt.Errorf("%w %q: the index must be a whole number from 0 to %d", ErrSpec, v, count-1)
		}
		return Spec{Index: i, Count: count}, nil
	}
	return fromEnv(count, getenv)
}

func fromEnv(count int, getenv func(string) string) (Spec, error) {
	for _, s := range schedulers {
		iv := getenv(s.index)
		if iv == "" {
			continue
		}
		i, err := strconv.Atoi(iv)
		if err != nil || i < 0 {
			return Spec{}, fmt.Errorf("%w auto: %s=%q is not a shard index", ErrSpec, s.index, iv)
		}
		if s.index == "SLURM_ARRAY_TASK_ID" {
			// An array may start at any id (--array=1-100): count from its first.
			if i, err = slurmIndex(i, getenv); err != nil {
				return Spec{}, err
			}
		}
		n := count
		if s.count != "" {
			if cv := getenv(s.count); cv != "" {
				c, err := strconv.Atoi(cv)
				if err != nil || c < 1 || c > MaxShards {
					return Spec{}, fmt.Errorf("%w auto: %s=%q is not a shard count", ErrSpec, s.count, cv)
				}
				if count != 0 && c != count {
					return Spec{}, fmt.Errorf("%w auto/%d: the %s says %s=%d", ErrSpec, count, s.name, s.count, c)
				}
				n = c
			}
		}
		if n == 0 {
			return Spec{}, fmt.Errorf("%w auto: the %s gives the index (%s) but not the count; use --shard auto/N", ErrSpec, s.name, s.index)
		}
		if i >= n {
			return Spec{}, fmt.Errorf("%w auto: %s=%d is outside %d shards", ErrSpec, s.index, i, n)
		}
		return Spec{Index: i, Count: n}, nil
	}
	var names []string
	for _, s := range schedulers {
		names = append(names, s.index)
	}
	return Spec{}, fmt.Errorf("%w auto: none of %s is set; give --shard I/N", ErrSpec, strings.Join(names, ", "))
}

// slurmIndex turns a Slurm array task id into a 0-based index; the array
// must be a plain range (no step, no gaps) so that the ids are 0..N-1
// after its first.
func slurmIndex(id int, getenv func(string) string) (int, error) {
	minV, maxV, cntV := getenv("SLURM_ARRAY_TASK_MIN"), getenv("SLURM_ARRAY_TASK_MAX"), getenv("SLURM_ARRAY_TASK_COUNT")
	if minV == "" {
		return id, nil
	}
	lo, err1 := strconv.Atoi(minV)
	hi, err2 := strconv.Atoi(maxV)
	n, err3 := strconv.Atoi(cntV)
	if err1 != nil || (maxV != "" && err2 != nil) || (cntV != "" && err3 != nil) {
		return 0, fmt.Errorf("%w auto: unreadable SLURM_ARRAY_TASK_MIN/MAX/COUNT", ErrSpec)
	}
	if maxV != "" && cntV != "" && hi-lo+1 != n {
		return 0, fmt.Errorf("%w auto: the Slurm array %d-%d has %d tasks; use a plain range such as --array=0-%d", ErrSpec, lo, hi, n, n-1)
	}
	return id - lo, nil
}
