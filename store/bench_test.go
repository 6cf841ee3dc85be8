package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

// batch is a typical prober report: 2 transitions and 20 RTT summaries.
func batch(i int) *store.ReportBatch {
	at := t0.Add(time.Duration(i) * time.Millisecond)
	b := &store.ReportBatch{Prober: "us-east"}
	for j := range 2 {
		b.Transitions = append(b.Transitions, store.Transition{Key: fmt.Sprintf("web-eu/198.51.100.%d", (i+j)%250), Region: "eu-west", Up: i%2 == 0, Reason: "http 503", At: at})
	}
	for j := range 20 {
		b.RTTs = append(b.RTTs, store.RTTSummary{Kind: store.RTTNetwork, Name: fmt.Sprintf("net-%d", j), EWMA: time.Duration(70+j) * time.Millisecond, Min: 60 * time.Millisecond, At: at})
	}
	return b
}

func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkCommitLatency measures Submit of one report batch on a 3-node
// loopback cluster, one at a time, from the leader and from a follower
// (forwarded). Reports p50 and p99.
func BenchmarkCommitLatency(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		b.Run("via="+via, func(b *testing.B) {
			c := storetest.NewCluster(b, 3)
			leader := c.WaitLeader()
			s := c.Nodes[leader].Store
			if via == "follower" {
				s = c.Nodes[follower(c, leader)].Store
			}
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if err := s.Submit(ctx, batch(i)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkThroughput measures sustained commits per second with 32
// concurrent submitters spread over the 3 nodes (Raft batches them).
func BenchmarkThroughput(b *testing.B) {
	c := storetest.NewCluster(b, 3)
	c.WaitLeader()
	var n atomic.Int64
	ctx := context.Background()
	b.SetParallelism(16) // x GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1))
		s := c.Nodes[i%3].Store
		for pb.Next() {
			if err := s.Submit(ctx, batch(i)); err != nil {
				b.Error(err)
				return
			}
			i += 3
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

// BenchmarkFailover measures the time from stopping the leader until a
// write submitted on a surviving node commits, with the test timeouts
// (500 ms) and with the defaults (1 s heartbeat and election timeouts).
// Each iteration restarts the old leader and waits for a settled cluster.
func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct {
		name string
		tune func(*store.Tuning)
	}{
		{"timeouts=500ms", func(*store.Tuning) {}},
		{"timeouts=default", func(t *store.Tuning) {
			t.HeartbeatTimeout, t.ElectionTimeout, t.LeaderLeaseTimeout = 0, 0, 0
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := storetest.NewCluster(b, 3, storetest.WithConfig(func(cfg *store.Config) { tc.tune(&cfg.Tuning) }))
			var total []time.Duration
			for i := range b.N {
				b.StopTimer()
				old := c.WaitLeader()
				s := c.Nodes[(old+1)%3].Store
				b.StartTimer()
				start := time.Now()
				c.Stop(old)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err := s.Submit(ctx, batch(i))
					cancel()
					if err == nil {
						break
					}
					time.Sleep(5 * time.Millisecond)
					if time.Since(start) > storetest.WaitTimeout {
						b.Fatalf("no write for %v after stopping the leader: %v", storetest.WaitTimeout, err)
					}
				}
				total = append(total, time.Since(start))
				b.StopTimer()
				c.Restart(old)
				c.WaitSettled()
			}
			b.ReportMetric(float64(percentile(total, 0.5).Milliseconds()), "p50-ms")
			b.ReportMetric(float64(slices.Max(total).Milliseconds()), "max-ms")
		})
	}
}

// BenchmarkLogGrowth (RF-10) measures the disk cost of report batches on a
// single node: raft.db and state.db after a burst of b.N commits, then after
// a snapshot (which compacts the log to TrailingLogs entries) and a second
// burst of b.N: the log file stops growing because bbolt reuses the pages
// the compaction freed.
func BenchmarkLogGrowth(b *testing.B) {
	c := storetest.NewCluster(b, 1, storetest.WithConfig(func(cfg *store.Config) { cfg.Tuning.TrailingLogs = 1000 }))
	nd := c.Nodes[0]
	s := nd.Store
	size := func(name string) float64 {
		fi, err := os.Stat(filepath.Join(nd.Dir, name))
		if err != nil {
			b.Fatal(err)
		}
		return float64(fi.Size())
	}
	burst := func() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > b.N {
						return
					}
					if err := s.Submit(context.Background(), batch(i)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	b.ResetTimer()
	raft0 := size("raft.db")
	burst()
	raft1, state1 := size("raft.db"), size("state.db")
	if err := s.Snapshot(); err != nil {
		b.Fatal(err)
	}
	burst()
	raft2 := size("raft.db")
	b.StopTimer()
	b.ReportMetric((raft1-raft0)/float64(b.N), "raft-bytes/commit")
	b.ReportMetric(raft1/1e6, "raft-MB-burst1")
	b.ReportMetric(raft2/1e6, "raft-MB-burst2")
	b.ReportMetric(state1/1e6, "state-MB")
}
