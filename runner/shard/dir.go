package shard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/batchtrans/batchtrans/io/blobstore"
)

// Sentinels.
var (
	// ErrCountChanged: the job was split into another number of shards.
	ErrCountChanged = errors.New("the job is split into another number of shards")
	// ErrNoPlan: no shard of the job has started.
	ErrNoPlan = errors.New("no shard of this job has started")
)

// Plan is what every shard of a job must agree on, written by the first
// shard to start.
type Plan struct {
	Version     int               `json:"version"`
	Shards      int               `json:"shards"`
	Rows        int64             `json:"rows"`
	Fingerprint map[string]string `json:"fingerprint"`
	Date        string            `json:"date"` // the frozen template date
	Created     time.Time         `json:"created"`
}

const (
	planKey     = "plan.json"
	planVersion = 1
)

// Dir is a job's shard folder: a local folder or a bucket prefix.
type Dir struct {
	b    *blob.Bucket
	path string // the folder's path or URL
	own  bool   // b was opened for this Dir (a local folder): Close closes it
}

// DirOf is the shard folder of a job whose checkpoint path is ckpt.
func DirOf(ckpt string) string { return blobstore.WithSuffix(ckpt, ".shards") }

// OpenDir opens (making it if need be) the shard folder at path.
func OpenDir(ctx context.Context, path string) (*Dir, error) {
	b, err := blobstore.OpenDir(ctx, path)
	if err != nil {
		return nil, err
	}
	return &Dir{b: b, path: path, own: !blobstore.IsURL(path)}, nil
}

// Close releases the folder.
func (d *Dir) Close() error {
	if d.own {
		return d.b.Close()
	}
	return nil
}

// Path is the folder's path or URL.
func (d *Dir) Path() string { return d.path }

// Bucket is the folder as a bucket.
func (d *Dir) Bucket() *blob.Bucket { return d.b }

// Join is the path or URL of a name in the folder.
func (d *Dir) Join(name string) string {
	if blobstore.IsURL(d.path) {
		return blobstore.WithSuffix(d.path, "/"+name)
	}
	return filepath.Join(d.path, name)
}

// CheckpointName is shard s's checkpoint name in the folder.
func CheckpointName(s Spec) string { return s.Name() + ".ckpt" }

// PartName is shard s's part name in the folder.
func PartName(s Spec) string { return s.Name() + ".part" }

// ReadPlan reads the plan; ErrNoPlan if there is none.
func (d *Dir) ReadPlan(ctx context.Context) (Plan, error) {
	data, err := d.b.ReadAll(ctx, planKey)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return Plan{}, fmt.Errorf("%w (no %s)", ErrNoPlan, d.Join(planKey))
	}
	if err != nil {
		return Plan{}, fmt.Errorf("read %s: %w", d.Join(planKey), err)
	}
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil || p.Shards < 1 {
		return Plan{}, fmt.Errorf("read %s: not a shard plan", d.Join(planKey))
	}
	if p.Version != planVersion {
		return Plan{}, fmt.Errorf("%s has version %d; this batchtrans reads %d", d.Join(planKey), p.Version, planVersion)
	}
	return p, nil
}

// WritePlan writes the plan. With replace false it writes only if there
// is none yet (where the store can tell; two shards starting at the same
// moment then agree on the first), and returns the plan in force.
func (d *Dir) WritePlan(ctx context.Context, p Plan, replace bool) (Plan, error) {
	p.Version = planVersion
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return Plan{}, fmt.Errorf("encode shard plan: %w", err)
	}
	err = d.b.WriteAll(ctx, planKey, append(data, '\n'), &blob.WriterOptions{IfNotExist: !replace, ContentType: "application/json"})
	if !replace && (gcerrors.Code(err) == gcerrors.FailedPrecondition || gcerrors.Code(err) == gcerrors.AlreadyExists) {
		return d.ReadPlan(ctx) // another shard was first
	}
	if err != nil {
		return Plan{}, fmt.Errorf("write %s: %w", d.Join(planKey), err)
	}
	return p, nil
}

// Agree checks a shard run against the plan in force: the same number of
// shards and the same job.
func (p Plan) Agree(s Spec, fp map[string]string, dir string) error {
	if p.Shards != s.Count {
		return fmt.Errorf("%w: %s says %d shards, this run is shard %s; run every shard with --shard I/%d, or delete %s to split it anew",
			ErrCountChanged, filepath.Join(dir, planKey), p.Shards, s, p.Shards, dir)
	}
	for k, v := range fp {
		if p.Fingerprint[k] != v {
			return fmt.Errorf("the job changed since its shards started (%s differs from %s); rerun the shards with --restart to start over", k, filepath.Join(dir, planKey))
		}
	}
	if len(p.Fingerprint) != len(fp) {
		return fmt.Errorf("the job changed since its shards started (its fingerprint differs from %s); rerun the shards with --restart to start over", filepath.Join(dir, planKey))
	}
	return nil
}

// Listing is what the shard folder holds for a plan's N shards.
type Listing struct {
	Parts       []bool // shard i has a part
	Checkpoints []bool // shard i has a checkpoint
}

// List lists the folder once and reports, for each of n shards, whether
// its part and its checkpoint exist. Files of another shard count are
// ignored.
func (d *Dir) List(ctx context.Context, n int) (Listing, error) {
	l := Listing{Parts: make([]bool, n), Checkpoints: make([]bool, n)}
	suffix := "-of-" + padded(n, n)
	it := d.b.List(&blob.ListOptions{Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return l, nil
		}
		if err != nil {
			return l, fmt.Errorf("list %s: %w", d.path, err)
		}
		name := strings.TrimSuffix(obj.Key, "/")
		stem, ext, _ := strings.Cut(name, ".")
		is, found := strings.CutSuffix(stem, suffix)
		if !found {
			continue
		}
		i, err := strconv.Atoi(is)
		if err != nil || i < 0 || i >= n {
			continue
		}
		switch ext {
		case "part":
			l.Parts[i] = true
		case "ckpt":
			l.Checkpoints[i] = true
		}
	}
}

// reader opens an object of the folder for a buffered read.
func (d *Dir) reader(ctx context.Context, key string) (*bufio.Reader, io.Closer, error) {
	r, err := d.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, nil, err
	}
	return bufio.NewReaderSize(r, 64<<10), r, nil
}
