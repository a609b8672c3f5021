package backup

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// fakeClock is a clock the test moves: each wait the scheduler asks for
// is reported on waits, and ends when the test sends on fire.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waits: make(chan time.Duration, 10), fire: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

func (c *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("the scheduler never waited")
		return 0
	}
}

func TestSchedulerBacksUpRotatesAndRetries(t *testing.T) {
	in := newInstall(t)
	dir := t.TempDir()
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	var failMu sync.Mutex
	fail := false
	s := NewScheduler(SchedulerConfig{
		Schedule: config.BackupDaily, Dir: dir, ServerName: "localhost", Keep: 2,
		StartDelay: time.Minute, RetryAfter: time.Hour, Now: clock.Now, After: clock.After,
		Backup: func(ctx context.Context) (*Result, error) {
			failMu.Lock()
			f := fail
			failMu.Unlock()
			if f {
				return nil, errors.New("the USB stick is gone")
			}
			return Create(ctx, in.source(), CreateOptions{Dir: dir, Verify: true, Now: clock.Now})
		},
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	// No backup yet: one is made a minute after the start.
	if d := clock.nextWait(t); d != time.Minute {
		t.Fatalf("first wait %v", d)
	}
	if st := s.Status(); !st.Next.Equal(t0.Add(time.Minute)) || st.LastBackup != nil {
		t.Fatalf("status before the first backup: %+v", st)
	}
	now := t0.Add(time.Minute)
	for i := range 3 {
		clock.set(now)
		clock.fire <- now
		if d := clock.nextWait(t); d != 24*time.Hour {
			t.Fatalf("wait after backup %d: %v", i, d)
		}
		st := s.Status()
		if st.LastBackup == nil || st.LastErr != nil || !st.LastBackup.Manifest.Created.Equal(now) || st.LastBackup.Report == nil {
			t.Fatalf("status after backup %d: %+v", i, st)
		}
		now = now.Add(24 * time.Hour)
	}
	list, err := List(dir)
	if err != nil || len(list) != 2 || !list[0].Created.Equal(now.Add(-24*time.Hour)) || list[0].Verified.IsZero() {
		t.Fatalf("after three backups keeping two: %+v %v", list, err)
	}

	// A failure is retried an hour later, and reported meanwhile.
	failMu.Lock()
	fail = true
	failMu.Unlock()
	clock.set(now)
	clock.fire <- now
	if d := clock.nextWait(t); d != time.Hour {
		t.Fatalf("wait after a failure: %v", d)
	}
	if st := s.Status(); st.LastErr == nil || st.LastErr.Error() != "the USB stick is gone" || !st.LastAttempt.Equal(now) {
		t.Fatalf("status after a failure: %+v", st)
	}
	failMu.Lock()
	fail = false
	failMu.Unlock()
	now = now.Add(time.Hour)
	clock.set(now)
	clock.fire <- now
	if d := clock.nextWait(t); d != 24*time.Hour {
		t.Fatalf("wait after the retry: %v", d)
	}
	if st := s.Status(); st.LastErr != nil || !st.LastBackup.Manifest.Created.Equal(now) {
		t.Fatalf("status after the retry: %+v", st)
	}
	s.Stop()
	if st := s.Status(); !st.Next.IsZero() {
		t.Fatalf("status after Stop: %+v", st)
	}
}

// The schedule counts from the newest backup in the folder, whoever made
// it: a recent one postpones the next, an old one makes it due at once.
func TestSchedulerCountsFromTheNewestBackup(t *testing.T) {
	in := newInstall(t)
	dir := t.TempDir()
	made := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	in.backup(t, CreateOptions{Dir: dir, Now: func() time.Time { return made }})
	for _, tc := range []struct {
		schedule string
		now      time.Time
		want     time.Duration
	}{
		{config.BackupWeekly, made.Add(24 * time.Hour), 6 * 24 * time.Hour},
		{config.BackupDaily, made.Add(3 * time.Hour), 21 * time.Hour},
		{config.BackupDaily, made.Add(72 * time.Hour), 2 * time.Minute},
	} {
		clock := newFakeClock(tc.now)
		s := NewScheduler(SchedulerConfig{Schedule: tc.schedule, Dir: dir, ServerName: "localhost", Keep: 3,
			Now: clock.Now, After: clock.After, Backup: func(context.Context) (*Result, error) { return nil, errors.New("unused") }})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		if d := clock.nextWait(t); d != tc.want {
			t.Errorf("%s, %v after the last backup: waits %v; want %v", tc.schedule, tc.now.Sub(made), d, tc.want)
		}
		s.Stop()
	}
}

func TestSchedulerOffAndBadConfig(t *testing.T) {
	s := NewScheduler(SchedulerConfig{Schedule: config.BackupOff})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := NewScheduler(SchedulerConfig{Schedule: "hourly", Dir: "x", Keep: 1,
		Backup: func(context.Context) (*Result, error) { return nil, nil }}).Start(); err == nil {
		t.Fatal("an unknown schedule started")
	}
	if err := NewScheduler(SchedulerConfig{Schedule: config.BackupDaily}).Start(); err == nil {
		t.Fatal("a schedule without a folder started")
	}
}
