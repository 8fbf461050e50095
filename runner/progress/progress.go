package progress

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Counters are a run's live numbers. Total is -1 until known.
type Counters struct {
	Total            atomic.Int64 // input rows, -1 if not yet counted
	Resumed          atomic.Int64 // rows already in the checkpoint at start
	Good             atomic.Int64 // rows finished well in this run
	Failed           atomic.Int64 // rows finished with an error in this run (cut rows too, unless accepted)
	Cut              atomic.Int64 // rows cut off at max_new_tokens in this run, failed or accepted
	PromptTokens     atomic.Int64 // this run
	CompletionTokens atomic.Int64 // this run
}

// NewCounters returns zeroed counters with Total unknown.
func NewCounters() *Counters {
	c := &Counters{}
	c.Total.Store(-1)
	return c
}

// Snapshot is a consistent-enough copy of Counters at one moment.
type Snapshot struct {
	Total, Resumed, Good, Failed, Cut, PromptTokens, CompletionTokens int64
	Elapsed                                                           time.Duration
}

// Done is the rows finished, counting resumed ones.
func (s Snapshot) Done() int64 { return s.Resumed + s.Good + s.Failed }

// RowsPerSec is this run's row rate.
func (s Snapshot) RowsPerSec() float64 { return rate(s.Good+s.Failed, s.Elapsed) }

// TokensPerSec is this run's generated-token rate.
func (s Snapshot) TokensPerSec() float64 { return rate(s.CompletionTokens, s.Elapsed) }

// ETA is the time left at this run's rate, or -1 if unknown.
func (s Snapshot) ETA() time.Duration {
	r := s.RowsPerSec()
	if s.Total < 0 || r <= 0 {
		return -1
	}
	left := s.Total - s.Done()
	return time.Duration(float64(left) / r * float64(time.Second)).Round(time.Second)
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Read takes a snapshot.
func (c *Counters) Read(start time.Time) Snapshot {
	return Snapshot{
		Total: c.Total.Load(), Resumed: c.Resumed.Load(),
		Good: c.Good.Load(), Failed: c.Failed.Load(), Cut: c.Cut.Load(),
		PromptTokens: c.PromptTokens.Load(), CompletionTokens: c.CompletionTokens.Load(),
		Elapsed: time.Since(start),
	}
}

// Options configure a Reporter.
type Options struct {
	// Bar draws a progress bar on Out (a terminal); otherwise Log gets a
	// progress line every Interval.
	Bar      bool
	Out      io.Writer
	Log      *slog.Logger
	Interval time.Duration // default 5 s for lines, 250 ms for the bar
}

// Reporter shows progress until Stop.
type Reporter struct {
	c     *Counters
	opt   Options
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	bar   *progressbar.ProgressBar
}

// Start begins reporting c.
func Start(c *Counters, opt Options) *Reporter {
	r := &Reporter{c: c, opt: opt, start: time.Now(), stop: make(chan struct{})}
	if r.opt.Interval <= 0 {
		r.opt.Interval = 5 * time.Second
		if opt.Bar {
			r.opt.Interval = 250 * time.Millisecond
		}
	}
	if opt.Bar {
		r.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(opt.Out),
			progressbar.OptionSetDescription("translating"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetPredictTime(false),
		)
	}
	r.wg.Add(1)
	go r.loop()
	return r
}

func (r *Reporter) loop() {
	defer r.wg.Done()
	t := time.NewTicker(r.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.tick()
		}
	}
}

func (r *Reporter) tick() {
	s := r.c.Read(r.start)
	if r.bar != nil {
		if s.Total >= 0 && r.bar.GetMax64() != s.Total {
			r.bar.ChangeMax64(s.Total)
		}
		r.bar.Describe(fmt.Sprintf("%.1f rows/s %.0f tok/s eta %s failed %d cut %d", s.RowsPerSec(), s.TokensPerSec(), fmtETA(s.ETA()), s.Failed, s.Cut))
		r.bar.Set64(s.Done())
		return
	}
	if r.opt.Log != nil {
		r.opt.Log.Info("progress", "done", s.Done(), "total", s.Total, "failed", s.Failed, "cut", s.Cut,
			"rows_per_s", round1(s.RowsPerSec()), "tokens_per_s", round1(s.TokensPerSec()), "eta", fmtETA(s.ETA()))
	}
}

// Stop ends reporting and clears the bar.
func (r *Reporter) Stop() {
	close(r.stop)
	r.wg.Wait()
	if r.bar != nil {
		r.bar.Finish()
		r.bar.Exit()
	}
}

func fmtETA(d time.Duration) string {
	if d < 0 {
		return "unknown"
	}
	return d.String()
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
