package store

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// watchedTransport is Raft's network transport with the leader's commit
// index read off the AppendEntries requests this node receives. Raft keeps
// a follower's commit index at or below its own last log index, so a
// follower that cannot store entries would otherwise look up to date.
type watchedTransport struct {
	*raft.NetworkTransport
	ch           chan raft.RPC
	leaderCommit atomic.Uint64
}

func newWatchedTransport(t *raft.NetworkTransport, done <-chan struct{}) *watchedTransport {
	w := &watchedTransport{NetworkTransport: t, ch: make(chan raft.RPC)}
	go func() {
		in := t.Consumer()
		for {
			select {
			case rpc := <-in:
				if ae, ok := rpc.Command.(*raft.AppendEntriesRequest); ok && ae.LeaderCommitIndex > 0 {
					w.leaderCommit.Store(ae.LeaderCommitIndex)
				}
				select {
				case w.ch <- rpc:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	return w
}

// Consumer implements raft.Transport.
func (w *watchedTransport) Consumer() <-chan raft.RPC { return w.ch }

// HasQuorum reports whether this node is in contact with a leader that has
// a quorum and applies what is committed: it is the leader, or a leader is
// known and has been heard from within the heartbeat timeout; and its
// databases accept writes (Stats.CanApply). Without quorum the node keeps
// serving its last committed state.
func (s *Store) HasQuorum() bool {
	if ok, _, _ := s.health.status(); !ok {
		return false
	}
	return s.inContact()
}

func (s *Store) inContact() bool {
	switch s.raft.State() {
	case raft.Leader:
		return true
	case raft.Follower:
		addr, _ := s.raft.LeaderWithID()
		return addr != "" && time.Since(s.raft.LastContact()) < s.tun.HeartbeatTimeout
	}
	return false
}

// Stats is a point-in-time summary of the node's Raft and state.
type Stats struct {
	NodeID string
	State  string // Leader, Follower, Candidate, Shutdown
	Leader string // leader ID, empty when unknown
	// Quorum is HasQuorum: in contact with a leader, and able to apply.
	Quorum    bool
	Term      uint64
	LastIndex uint64 // last entry in this node's log
	// CommitIndex is this node's commit index. Raft keeps it at or below
	// LastIndex, so it cannot show a follower that fails to store entries:
	// compare LeaderCommitIndex.
	CommitIndex uint64
	// LeaderCommitIndex is the leader's commit index: this node's own on
	// the leader, else the last one the leader sent (0 before any).
	LeaderCommitIndex uint64
	// AppliedIndex is the last entry this node's state machine has applied
	// (Raft's applied index; while a batch is being written, the end of
	// the last batch written).
	AppliedIndex uint64
	// Behind is LeaderCommitIndex - AppliedIndex when positive: committed
	// entries this node has not applied. A few while entries stream in is
	// normal; a number that grows means the node cannot keep up or apply.
	Behind     uint64
	StateIndex uint64 // index of the last command in State
	// LastContact is when this follower last heard from the leader (zero on
	// the leader).
	LastContact  time.Time
	StateRecords int

	// CanApply is false while a write to state.db or raft.db fails (a full
	// or failing disk): the node then applies nothing, serves its last
	// state and reports no quorum. ApplyError is the last such error and
	// CannotApplySince when the failing began; both are zero when CanApply.
	CanApply         bool
	ApplyError       string
	CannotApplySince time.Time
	// ApplyErrors counts failed writes, to state.db and raft.db, since
	// start.
	ApplyErrors uint64
	// Restoring is true until the state machine has applied what the local
	// snapshot and log held at start (see WaitRestored).
	Restoring bool

	// Members is the Raft configuration with this node's view of each
	// member, sorted by ID.
	Members []MemberStatus
}

// MemberStatus is one member of the cluster as this node sees it.
type MemberStatus struct {
	ID     string
	Addr   string
	Voter  bool
	Leader bool
	Self   bool
	// LastContact is when ReportedBy last heard from the member; zero when
	// unknown, and for Self. The leader knows it for every member: the last
	// response it read on a Raft connection to that member (heartbeats go
	// every HeartbeatTimeout/10, so a live member is a fraction of a second
	// old). A follower knows it for the leader (Raft's last contact), and
	// for the others asks the leader once per HeartbeatTimeout; while it
	// cannot, they are zero.
	LastContact time.Time
	// ReportedBy is the ID of the node whose view LastContact is: this
	// node, or the leader for other members on a follower.
	ReportedBy string
}

// leaderView is the leader's view of the members' last contact, fetched
// by a follower.
type leaderView struct {
	leader   string
	at       time.Time
	contacts map[string]time.Time
}

// pollContacts keeps a follower's copy of the leader's view fresh.
func (s *Store) pollContacts() {
	every := s.tun.HeartbeatTimeout
	t := time.NewTicker(every)
	defer t.Stop()
	base, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		<-s.done
		stop()
	}()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		addr, id := s.raft.LeaderWithID()
		if s.raft.State() == raft.Leader || addr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(base, every)
		cs, err := s.api.contacts(ctx, string(addr))
		cancel()
		if err == nil {
			s.contacts.Store(&leaderView{leader: string(id), at: time.Now(), contacts: cs})
		}
	}
}

// Stats returns the node's current Stats.
func (s *Store) Stats() Stats {
	_, leader := s.raft.LeaderWithID()
	st := Stats{
		NodeID:       s.cfg.NodeID,
		State:        s.raft.State().String(),
		Leader:       string(leader),
		Term:         s.raft.CurrentTerm(),
		LastIndex:    s.raft.LastIndex(),
		CommitIndex:  s.raft.CommitIndex(),
		AppliedIndex: s.appliedIndex(),
		StateIndex:   s.State().Index(),
		LastContact:  s.raft.LastContact(),
		StateRecords: s.State().Len(),
		ApplyErrors:  s.health.stateErrs.Load() + s.health.raftErrs.Load(),
		Restoring:    s.isRestoring(),
	}
	st.LeaderCommitIndex = s.leaderCommitIndex()
	if st.LeaderCommitIndex > st.AppliedIndex {
		st.Behind = st.LeaderCommitIndex - st.AppliedIndex
	}
	ok, since, err := s.health.status()
	st.CanApply, st.CannotApplySince = ok, since
	if err != nil {
		st.ApplyError = err.Error()
	}
	st.Quorum = ok && s.inContact()
	if st.State == raft.Leader.String() {
		st.LastContact = time.Time{}
	}
	st.Members = s.memberStatus(string(leader))
	return st
}

// appliedIndex is Raft's applied index, which Raft advances when it hands
// a batch to the state machine; while a batch is being written (or a
// failing write is retried) it is the end of the last batch written.
func (s *Store) appliedIndex() uint64 {
	if s.fsm.busy.Load() {
		return s.fsm.done.Load()
	}
	return s.raft.AppliedIndex()
}

func (s *Store) leaderCommitIndex() uint64 {
	if s.raft.State() == raft.Leader {
		return s.raft.CommitIndex()
	}
	return s.trans.leaderCommit.Load()
}

func (s *Store) memberStatus(leader string) []MemberStatus {
	cf := s.raft.GetConfiguration()
	if cf.Error() != nil {
		return nil
	}
	isLeader := s.raft.State() == raft.Leader
	view := s.contacts.Load()
	if view != nil && (view.leader != leader || time.Since(view.at) > 3*s.tun.HeartbeatTimeout) {
		view = nil
	}
	var out []MemberStatus
	for _, sv := range cf.Configuration().Servers {
		m := MemberStatus{
			ID:     string(sv.ID),
			Addr:   string(sv.Address),
			Voter:  sv.Suffrage == raft.Voter,
			Leader: string(sv.ID) == leader,
			Self:   string(sv.ID) == s.cfg.NodeID,
		}
		switch {
		case m.Self:
		case isLeader:
			m.LastContact, m.ReportedBy = s.mux.lastHeard(m.Addr), s.cfg.NodeID
		case m.Leader:
			m.LastContact, m.ReportedBy = s.raft.LastContact(), s.cfg.NodeID
		case view != nil:
			m.LastContact, m.ReportedBy = view.contacts[m.ID], leader
		}
		if m.LastContact.IsZero() {
			m.ReportedBy = ""
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
