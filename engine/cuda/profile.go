package cuda

import (
	"os"
	"time"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// EnvProfile turns on the per-kernel timing of forward steps when set to
// 1: every launch is bracketed by two events, which costs some speed.
// Set to "steps" it times each step's recorded graph as a whole instead
// ("gpu: step"), graphs kept, so the step's device time can be set
// against the host's. Net.Profile reports the totals.
const EnvProfile = "BATCHTRANS_CUDA_PROFILE"

// profiler totals the device time of each stage of the step, and the
// host's time to queue a step and to wait for it.
type profiler struct {
	on    bool // any profiling
	steps bool // whole steps, not launches
	pool  []driver.Event
	marks []profMark
	open  driver.Event // the start event of the launch being timed
	ms    map[string]float64
	calls map[string]int
}

type profMark struct {
	name       string
	start, end driver.Event
}

func newProfiler() profiler {
	v := os.Getenv(EnvProfile)
	return profiler{on: v == "1" || v == "steps", steps: v == "steps", ms: map[string]float64{}, calls: map[string]int{}}
}

// start records the event that opens a timed launch (worker only; a no-op
// unless profiling).
func (p *profiler) start(r *replica) error {
	if !p.on || p.steps {
		return nil
	}
	p.open = p.event(r)
	return r.ctx.Record(p.open, r.st)
}

// stop closes the launch start opened, timing it as name.
func (p *profiler) stop(r *replica, name string) error {
	if !p.on || p.steps {
		return nil
	}
	e := p.event(r)
	p.marks = append(p.marks, profMark{name, p.open, e})
	return r.ctx.Record(e, r.st)
}

// graph times the launch of a recorded step's graph g as "gpu: step"
// when profiling whole steps; it launches g either way.
func (p *profiler) graph(r *replica, g driver.Graph) error {
	if !p.steps {
		return r.ctx.LaunchGraph(g, r.st)
	}
	s, e := p.event(r), p.event(r)
	p.marks = append(p.marks, profMark{"gpu: step", s, e})
	if err := r.ctx.Record(s, r.st); err != nil {
		return err
	}
	if err := r.ctx.LaunchGraph(g, r.st); err != nil {
		return err
	}
	return r.ctx.Record(e, r.st)
}

func (p *profiler) event(r *replica) driver.Event {
	if n := len(p.pool); n > 0 {
		e := p.pool[n-1]
		p.pool = p.pool[:n-1]
		return e
	}
	e, _ := r.ctx.NewEvent()
	return e
}

// collect adds the finished step's marks to the totals (after a sync).
func (p *profiler) collect(r *replica, queued, total time.Duration) {
	if !p.on {
		return
	}
	for _, m := range p.marks {
		if ms, err := r.ctx.Elapsed(m.start, m.end); err == nil {
			p.ms[m.name] += float64(ms)
			p.calls[m.name]++
		}
		p.pool = append(p.pool, m.start, m.end)
	}
	p.marks = p.marks[:0]
	p.ms["host: queue a step"] += float64(queued.Microseconds()) / 1e3
	p.ms["host: whole step"] += float64(total.Microseconds()) / 1e3
	p.calls["host: queue a step"]++
	p.calls["host: whole step"]++
}

// Profile returns the first GPU's milliseconds spent in each stage of the
// forward steps so far (and how many launches), when EnvProfile is 1; nil
// otherwise.
func (n *Net) Profile() (ms map[string]float64, calls map[string]int) {
	r := n.reps[0]
	if !r.prof.on {
		return nil, nil
	}
	return r.prof.ms, r.prof.calls
}

// ResetProfile zeroes the totals of Profile.
func (n *Net) ResetProfile() {
	for _, r := range n.reps {
		clear(r.prof.ms)
		clear(r.prof.calls)
	}
}
