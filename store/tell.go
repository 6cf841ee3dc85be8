package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// Tell sends a prober's report batch straight to every other member of the
// cluster on the internal API, beside the log: each member hands it to its
// Config.Told. It is for what must not wait for a leader (a region whose
// node was the leader dies, and the survivors' probers must hear each
// other's verdicts during the election); the batch is still Submitted, and
// the committed state remains the truth every node converges on. Tell
// returns when every member answered or ctx ended, with the errors of the
// members that could not be told; it never retries.
func (s *Store) Tell(ctx context.Context, b *ReportBatch) error {
	data, err := Encode(b)
	if err != nil {
		return err
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, sv := range cf.Configuration().Servers {
		if string(sv.ID) == s.cfg.NodeID {
			continue
		}
		wg.Go(func() {
			if _, err := s.api.post(ctx, string(sv.Address), "/v1/tell", data, true); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("tell %s: %w", sv.ID, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// handleTell takes a report batch another member sent with Tell.
func (a *apiServer) handleTell(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd, err := Decode(data)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, ok := cmd.(*ReportBatch)
	if !ok {
		http.Error(w, fmt.Sprintf("tell: a %v, want a report batch", cmd.Type()), http.StatusBadRequest)
		return
	}
	if err := b.validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f := a.s.cfg.Told; f != nil {
		f(b)
	}
	writeResult(w, 0, nil)
}
