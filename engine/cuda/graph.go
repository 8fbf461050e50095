package cuda

import (
	"os"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// EnvGraphs turns off the replay of recorded steps when set to 0 (for
// measuring what the replay saves).
const EnvGraphs = "BATCHTRANS_CUDA_GRAPHS"

// maxGraphs is the most step shapes a replica keeps recorded.
const maxGraphs = 64

// maxShapesSeen bounds the shapes counted before recording; past it the
// counts start over.
const maxShapesSeen = 4096

// shape is what a step's launches depend on: its rows, its outputs, and
// its attention tiles (rows alone, and tiles of several rows).
type shape struct{ rows, outs, ones, tiles int }

// graphSet records a step's launches as a CUDA graph the second time its
// shape comes, and from then on replays the graph: one driver call
// instead of one per kernel, and the kernels start back to back. A
// decode step of one sequence runs about 85 kernels of a few to a few
// tens of microseconds each, so queueing them one by one would cost more than
// running them. The replayed kernels are the same launches with the same
// parameters, so the bits are the same. Recording is off while profiling
// (each launch is timed on its own then).
type graphSet struct {
	on     bool
	seen   map[shape]int
	rec    map[shape]driver.Graph
	failed map[shape]bool
}

func newGraphSet(profiling bool) graphSet {
	return graphSet{
		on:   !profiling && os.Getenv(EnvGraphs) != "0",
		seen: map[shape]int{}, rec: map[shape]driver.Graph{}, failed: map[shape]bool{},
	}
}

// graphAction is what a step of some shape does with the recording.
type graphAction int

const (
	launchDirect graphAction = iota // queue each launch
	record                          // record the launches, then replay them
	replay                          // replay the recorded graph
)

// next says what a step of shape key does, counting the shape.
func (g *graphSet) next(key shape) graphAction {
	if !g.on || g.failed[key] {
		return launchDirect
	}
	if _, ok := g.rec[key]; ok {
		return replay
	}
	if len(g.seen) >= maxShapesSeen {
		clear(g.seen)
	}
	g.seen[key]++
	if g.seen[key] < 2 || len(g.rec) >= maxGraphs {
		return launchDirect
	}
	return record
}

// run queues the launches of a step of shape key: the
// recorded graph when there is one, else the launches one by one,
// recording them on the shape's second coming (worker only). A recording
// that fails leaves the shape to direct launches, so a step never fails
// for being recorded.
func (r *replica) run(qu *queue, key shape) {
	g := &r.graphs
	switch g.next(key) {
	case replay:
		qu.err = r.prof.graph(r, g.rec[key])
		return
	case launchDirect:
		r.launches(qu, key)
		return
	}
	if err := r.ctx.BeginCapture(r.st); err != nil {
		g.failed[key] = true
		r.launches(qu, key)
		return
	}
	r.launches(qu, key)
	e, err := r.ctx.EndCapture(r.st)
	if qu.err != nil || err != nil {
		g.failed[key] = true
		qu.err = nil
		r.launches(qu, key)
		return
	}
	g.rec[key] = e
	qu.err = r.prof.graph(r, e)
}

// freeGraphs destroys the recorded graphs (worker only).
func (r *replica) freeGraphs() error {
	var first error
	for k, e := range r.graphs.rec {
		if err := r.ctx.DestroyGraph(e); err != nil && first == nil {
			first = err
		}
		delete(r.graphs.rec, k)
	}
	return first
}
