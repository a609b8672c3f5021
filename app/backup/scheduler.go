package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Schedule is config.BackupDaily or config.BackupWeekly; with
	// config.BackupOff the scheduler does nothing.
	Schedule   string
	Dir        string
	ServerName string
	// Keep is how many of this server's backups stay in Dir.
	Keep int
	// Backup makes one backup in Dir (the app's, with its passphrase).
	Backup func(ctx context.Context) (*Result, error)
	Log    *slog.Logger
	// StartDelay is how long after Start an overdue backup waits, so it
	// does not slow the server's start (default two minutes).
	StartDelay time.Duration
	// RetryAfter is the wait after a failed backup (default one hour).
	RetryAfter time.Duration
	// Now and After are the clock (tests replace them).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// Interval is how often a schedule backs up; ok is false for "off" and
// unknown values.
func Interval(schedule string) (d time.Duration, ok bool) {
	switch schedule {
	case config.BackupDaily:
		return 24 * time.Hour, true
	case config.BackupWeekly:
		return 7 * 24 * time.Hour, true
	}
	return 0, false
}

// ScheduleStatus is what the scheduler has done and will do, for display.
type ScheduleStatus struct {
	Schedule string
	// Next is when the next backup is due (zero when not running).
	Next time.Time
	// Running is true while a backup is being made.
	Running     bool
	LastAttempt time.Time
	// LastBackup is the last backup this scheduler made.
	LastBackup *Result
	// LastErr is why the last attempt failed, nil if it did not.
	LastErr error
}

// Scheduler makes backups on a schedule while the app runs, and keeps the
// newest Keep in the folder. The schedule counts from the newest backup
// in the folder, made by it or by hand, so a computer that is often off
// still gets its backups: one that is overdue is made soon after Start.
type Scheduler struct {
	cfg SchedulerConfig

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	status ScheduleStatus
}

// NewScheduler makes a scheduler; Start starts it.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	if cfg.StartDelay == 0 {
		cfg.StartDelay = 2 * time.Minute
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, status: ScheduleStatus{Schedule: cfg.Schedule}}
}

// Start begins the schedule in the background; with the schedule off it
// does nothing.
func (s *Scheduler) Start() error {
	interval, ok := Interval(s.cfg.Schedule)
	if !ok {
		if s.cfg.Schedule == config.BackupOff || s.cfg.Schedule == "" {
			return nil
		}
		return fmt.Errorf("backup schedule %q: must be off, daily or weekly", s.cfg.Schedule)
	}
	if s.cfg.Backup == nil || s.cfg.Dir == "" || s.cfg.Keep < 1 {
		return errors.New("backup scheduler: no backup function, folder or number to keep")
	}
	s.mu.Lock()
	running := s.cancel != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	// The first due time is known before Start returns, for display.
	earliest := s.cfg.Now().Add(s.cfg.StartDelay)
	next := s.next(interval, earliest)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	s.status.Next = next
	go s.loop(ctx, interval, earliest, next, s.done)
	return nil
}

// Stop ends the schedule; a backup being made is cancelled (its partial
// file removed) and Stop waits for that.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.status.Next = time.Time{}
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Status reports the schedule's state.
func (s *Scheduler) Status() ScheduleStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *Scheduler) loop(ctx context.Context, interval time.Duration, earliest, next time.Time, done chan struct{}) {
	defer close(done)
	for first := true; ; first = false {
		if !first {
			next = s.next(interval, earliest)
			s.mu.Lock()
			s.status.Next = next
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.cfg.After(max(0, next.Sub(s.cfg.Now()))):
		}
		s.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
	}
}

// next is when the next backup is due: interval after the newest backup
// in the folder, not before earliest, and after a failure not before
// RetryAfter has passed.
func (s *Scheduler) next(interval time.Duration, earliest time.Time) time.Time {
	next := earliest
	latest, err := Latest(s.cfg.Dir, s.cfg.ServerName)
	if err != nil {
		s.cfg.Log.Warn("cannot list the backup folder", "dir", s.cfg.Dir, "error", err)
	} else if latest != nil && latest.Created.Add(interval).After(next) {
		next = latest.Created.Add(interval)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.LastErr != nil {
		if retry := s.status.LastAttempt.Add(s.cfg.RetryAfter); retry.After(next) {
			next = retry
		}
	}
	return next
}

func (s *Scheduler) runOnce(ctx context.Context) {
	s.mu.Lock()
	s.status.Running = true
	s.status.LastAttempt = s.cfg.Now()
	s.mu.Unlock()
	res, err := s.cfg.Backup(ctx)
	if err == nil {
		s.cfg.Log.Info("scheduled backup made", "file", res.Path, "bytes", res.Size)
		removed, rerr := Rotate(s.cfg.Dir, s.cfg.ServerName, s.cfg.Keep)
		for _, p := range removed {
			s.cfg.Log.Info("old backup deleted", "file", p, "keep", s.cfg.Keep)
		}
		if rerr != nil {
			s.cfg.Log.Warn("could not delete old backups", "error", rerr)
		}
	} else if ctx.Err() == nil {
		s.cfg.Log.Error("scheduled backup failed", "error", err, "retry_in", s.cfg.RetryAfter)
	}
	s.mu.Lock()
	s.status.Running = false
	if err == nil {
		s.status.LastBackup, s.status.LastErr = res, nil
	} else if ctx.Err() == nil {
		s.status.LastErr = err
	}
	s.mu.Unlock()
}
