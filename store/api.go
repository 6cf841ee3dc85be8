package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// The internal API carries forwarded writes, membership changes and read
// index requests (ConsistentState) between nodes. It is plain HTTP/1.1 inside the cluster's mutual TLS (see
// transport.go), on the Raft port. A request carrying headerForwarded was
// already forwarded once and is not forwarded again, so a stale leader view
// cannot make requests loop.
const (
	headerForwarded = "X-Gslb-Forwarded"
	headerError     = "X-Gslb-Error"
	headerIndex     = "X-Gslb-Index"
	maxBody         = 64 << 20
)

type apiServer struct {
	s      *Store
	srv    *http.Server
	client *http.Client
}

func newAPIServer(s *Store) *apiServer {
	a := &apiServer{s: s}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/apply", a.handleApply)
	mux.HandleFunc("POST /v1/join", a.handleMember)
	mux.HandleFunc("POST /v1/remove", a.handleMember)
	mux.HandleFunc("POST /v1/readindex", a.handleReadIndex)
	mux.HandleFunc("GET /v1/contacts", a.handleContacts)
	mux.HandleFunc("POST /v1/tell", a.handleTell) // tell.go
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	a.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return s.mux.dialPurpose(ctx, addr, purposeAPI)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}}
	return a
}

func (a *apiServer) serve(l net.Listener) { a.srv.Serve(l) }

func (a *apiServer) close() {
	a.srv.Close()
	a.client.CloseIdleConnections()
}

func (a *apiServer) handleApply(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := Decode(data); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	var idx uint64
	if a.s.raft.State() == raft.Leader {
		idx, err = a.s.applyLocal(ctx, data)
	} else if r.Header.Get(headerForwarded) == "" {
		err = a.forwardOnce(ctx, data)
	} else {
		err = ErrNotLeader
	}
	writeResult(w, idx, err)
}

// forwardOnce forwards a request that reached a follower (a stale leader
// view at the sender) one more hop.
func (a *apiServer) forwardOnce(ctx context.Context, data []byte) error {
	addr, _ := a.s.raft.LeaderWithID()
	if addr == "" {
		return ErrNoQuorum
	}
	_, err := a.post(ctx, string(addr), "/v1/apply", data, true)
	return err
}

func (a *apiServer) handleReadIndex(w http.ResponseWriter, r *http.Request) {
	var idx uint64
	var err error
	switch {
	case a.s.raft.State() == raft.Leader:
		idx, err = a.s.leaderReadIndex(r.Context())
	case r.Header.Get(headerForwarded) == "":
		addr, _ := a.s.raft.LeaderWithID()
		if addr == "" {
			err = ErrNoQuorum
		} else {
			idx, err = a.post(r.Context(), string(addr), "/v1/readindex", nil, true)
		}
	default:
		err = ErrNotLeader
	}
	writeResult(w, idx, err)
}

func (a *apiServer) handleMember(w http.ResponseWriter, r *http.Request) {
	var p Peer
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var err error
	switch {
	case a.s.raft.State() == raft.Leader:
		err = a.s.memberLocal(r.Context(), r.URL.Path, p)
	case r.Header.Get(headerForwarded) == "":
		addr, _ := a.s.raft.LeaderWithID()
		if addr == "" {
			err = ErrNoQuorum
		} else {
			err = a.forwardMember(r.Context(), string(addr), r.URL.Path, p, true)
		}
	default:
		err = ErrNotLeader
	}
	writeResult(w, 0, err)
}

// contact is when the leader last heard from a member, as an age: the
// clocks of two nodes need not agree.
type contact struct {
	ID  string        `json:"id"`
	Age time.Duration `json:"age_ns"` // -1: never
}

// handleContacts gives the leader's view of every member's last contact,
// for followers' Stats.
func (a *apiServer) handleContacts(w http.ResponseWriter, r *http.Request) {
	if a.s.raft.State() != raft.Leader {
		writeResult(w, 0, ErrNotLeader)
		return
	}
	now := time.Now()
	var out []contact
	for _, m := range a.s.memberStatus(a.s.cfg.NodeID) {
		c := contact{ID: m.ID, Age: -1}
		if !m.LastContact.IsZero() {
			c.Age = now.Sub(m.LastContact)
		}
		if !m.Self {
			out = append(out, c)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// contacts asks the leader at addr for its view of the members' last
// contact, as times on this node's clock.
func (a *apiServer) contacts(ctx context.Context, addr string) (map[string]time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/contacts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("contacts from %s: %s", addr, resp.Status)
	}
	var cs []contact
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&cs); err != nil {
		return nil, fmt.Errorf("contacts from %s: %w", addr, err)
	}
	now := time.Now()
	out := make(map[string]time.Time, len(cs))
	for _, c := range cs {
		if c.Age >= 0 {
			out[c.ID] = now.Add(-c.Age)
		}
	}
	return out, nil
}

func writeResult(w http.ResponseWriter, idx uint64, err error) {
	var rej *RejectedError
	switch {
	case err == nil:
		w.Header().Set(headerIndex, strconv.FormatUint(idx, 10))
		w.WriteHeader(http.StatusOK)
	case errors.As(err, &rej):
		w.Header().Set(headerIndex, strconv.FormatUint(idx, 10))
		http.Error(w, rej.Reason, http.StatusConflict)
	case errors.Is(err, ErrNotLeader):
		w.Header().Set(headerError, "not-leader")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, ErrNoQuorum):
		w.Header().Set(headerError, "no-quorum")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, ErrClosed):
		w.Header().Set(headerError, "closed")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		http.Error(w, err.Error(), http.StatusGatewayTimeout)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (a *apiServer) forwardApply(ctx context.Context, addr string, data []byte) (uint64, error) {
	return a.post(ctx, addr, "/v1/apply", data, false)
}

func (a *apiServer) forwardMember(ctx context.Context, addr, path string, p Peer, forwarded bool) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = a.post(ctx, addr, path, b, forwarded)
	return err
}

// post sends one request to the node at addr and maps its reply back to
// the error the remote side returned.
func (a *apiServer) post(ctx context.Context, addr, path string, body []byte, forwarded bool) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if forwarded {
		req.Header.Set(headerForwarded, "1")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("forward to %s: %w", addr, ctx.Err())
		}
		if errors.Is(err, ErrAuth) {
			return 0, fmt.Errorf("forward to %s: %w", addr, err)
		}
		// The leader we knew is unreachable: treat like a leader change so
		// the caller retries with a fresh view until its deadline.
		return 0, fmt.Errorf("%w: forward to %s: %w", ErrNotLeader, addr, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	text := string(bytes.TrimSpace(msg))
	idx, _ := strconv.ParseUint(resp.Header.Get(headerIndex), 10, 64)
	switch resp.StatusCode {
	case http.StatusOK:
		return idx, nil
	case http.StatusConflict:
		return idx, &RejectedError{Reason: text}
	case http.StatusServiceUnavailable:
		switch resp.Header.Get(headerError) {
		case "no-quorum":
			return 0, ErrNoQuorum
		default:
			return 0, fmt.Errorf("%w: %s: %s", ErrNotLeader, addr, text)
		}
	case http.StatusGatewayTimeout:
		return 0, fmt.Errorf("forward to %s: %w: %s", addr, context.DeadlineExceeded, text)
	}
	return 0, fmt.Errorf("forward to %s: %s: %s", addr, resp.Status, text)
}
