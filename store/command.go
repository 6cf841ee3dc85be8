package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CommandType is the permanent first byte of every encoded command. A value
// is never renumbered or reused, because the Raft log and snapshots outlive
// any one binary.
type CommandType byte

// The command types. New types take the next free number.
const (
	TypeReportBatch  CommandType = 1
	TypeOverride     CommandType = 2
	TypeZoneUpdate   CommandType = 3
	TypeMemberChange CommandType = 4
	// TypeDNSSECKeys CommandType = 5 (dnssec.go)
	// TypeLoadReport CommandType = 6 (load.go)
)

func (t CommandType) String() string {
	switch t {
	case TypeReportBatch:
		return "report-batch"
	case TypeOverride:
		return "override"
	case TypeZoneUpdate:
		return "zone-update"
	case TypeMemberChange:
		return "member-change"
	case TypeDNSSECKeys:
		return "dnssec-keys"
	case TypeLoadReport:
		return "load-report"
	}
	return fmt.Sprintf("type-%d", byte(t))
}

// ErrUnknownCommand is wrapped by Decode for a type byte or a version byte
// that this binary does not know. Such an entry is refused, never guessed at.
var ErrUnknownCommand = errors.New("unknown command")

// A Command is one typed change to the replicated state: *ReportBatch,
// *Override, *ZoneUpdate or *MemberChange. Times inside a command are
// stamped by the proposer; applying a command never reads the clock.
type Command interface {
	// Type returns the command's permanent type byte.
	Type() CommandType
	// validate checks the command before it is proposed.
	validate() error
}

// commandVersion is the body encoding version that Encode writes for each
// type. Decode accepts exactly the versions listed in decoders.
var commandVersion = map[CommandType]byte{
	TypeReportBatch:  2,
	TypeOverride:     1,
	TypeZoneUpdate:   1,
	TypeMemberChange: 1,
	TypeDNSSECKeys:   1,
	TypeLoadReport:   1,
}

// decoders is the explicit registry of (type, version) body decoders.
var decoders = map[CommandType]map[byte]func([]byte) (Command, error){
	TypeReportBatch:  {1: decodeReportBatchV1, 2: decodeJSON[ReportBatch]},
	TypeOverride:     {1: decodeJSON[Override]},
	TypeZoneUpdate:   {1: decodeJSON[ZoneUpdate]},
	TypeMemberChange: {1: decodeJSON[MemberChange]},
	TypeDNSSECKeys:   {1: decodeJSON[DNSSECKeys]},
	TypeLoadReport:   {1: decodeJSON[LoadReport]},
}

func decodeJSON[T any, P interface {
	*T
	Command
}](body []byte) (Command, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	return P(&v), nil
}

// Encode validates cmd and encodes it as type byte, version byte, body.
func Encode(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, errors.New("encode command: nil")
	}
	t := cmd.Type()
	ver, ok := commandVersion[t]
	if !ok {
		return nil, fmt.Errorf("encode command %v: %w", t, ErrUnknownCommand)
	}
	if err := cmd.validate(); err != nil {
		return nil, fmt.Errorf("%v: %w", t, err)
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command %v: %w", t, err)
	}
	out := make([]byte, 0, 2+len(body))
	out = append(out, byte(t), ver)
	return append(out, body...), nil
}

// Decode decodes an encoded command. An unknown type or version is an error
// wrapping ErrUnknownCommand.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("decode command: %d bytes, want at least 2", len(b))
	}
	t, ver := CommandType(b[0]), b[1]
	vers, ok := decoders[t]
	if !ok {
		return nil, fmt.Errorf("decode command: type byte %d: %w", b[0], ErrUnknownCommand)
	}
	dec, ok := vers[ver]
	if !ok {
		return nil, fmt.Errorf("decode command %v: version %d: %w", t, ver, ErrUnknownCommand)
	}
	cmd, err := dec(b[2:])
	if err != nil {
		return nil, fmt.Errorf("decode command %v version %d: %w", t, ver, err)
	}
	return cmd, nil
}

// Transition is one prober's verdict change for one checked target, with
// what the prober knew of the target when it changed.
type Transition struct {
	Prober string    `json:"prober"`
	Region string    `json:"region,omitempty"`
	Key    string    `json:"key"` // what was checked (the check's identity)
	Up     bool      `json:"up"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	// Target is the check, readable ("http://192.0.2.10:80/healthz").
	Target string `json:"target,omitempty"`
	// RTT and MinRTT are the prober's smoothed and least recent connect
	// or query times to the target (0 until measured).
	RTT    time.Duration `json:"rtt,omitempty"`
	MinRTT time.Duration `json:"min_rtt,omitempty"`
	// CertExpiry is an https target's certificate NotAfter.
	CertExpiry time.Time `json:"cert_expiry,omitzero"`
}

// RTT target kinds.
const (
	RTTRegion  = "region"  // a region's node; Name is the region
	RTTNetwork = "network" // a client network; Name is the prefix
)

// RTTSummary is one prober's smoothed round-trip time to a region's node or
// to a client network.
type RTTSummary struct {
	Prober string `json:"prober"`
	Kind   string `json:"kind"` // RTTRegion or RTTNetwork
	Name   string `json:"name"`
	Addr   string `json:"addr,omitempty"` // the address measured
	// Target is Kind/Name, the summary's key in the state (set by the
	// store; version 1 commands carried "kind:name" here).
	Target string        `json:"target,omitempty"`
	EWMA   time.Duration `json:"ewma"`
	Min    time.Duration `json:"min"`
	At     time.Time     `json:"at"`
}

func (r *RTTSummary) key() string { return r.Kind + "/" + r.Name }

// Heartbeat says a prober is alive: At is when it last reported, Every its
// report period. Other nodes count a prober's votes only while its
// heartbeat is recent.
type Heartbeat struct {
	Prober string        `json:"prober"`
	Region string        `json:"region,omitempty"`
	At     time.Time     `json:"at"`
	Every  time.Duration `json:"every"`
}

// ReportBatch is a prober's report: verdict transitions, RTT summaries and
// a heartbeat. It never carries individual probe results; the prober sends
// a transition only when its hysteresis flips, and RTT summaries with a
// heartbeat once per report period.
type ReportBatch struct {
	Prober      string       `json:"prober"`
	Heartbeat   *Heartbeat   `json:"heartbeat,omitempty"`
	Transitions []Transition `json:"transitions,omitempty"`
	RTTs        []RTTSummary `json:"rtts,omitempty"`
}

// decodeReportBatchV1 reads the first encoding, whose RTT targets were
// "kind:name" strings and whose heartbeat was an RTT summary with the
// target "heartbeat" (At: the report time, EWMA: the report period).
func decodeReportBatchV1(body []byte) (Command, error) {
	var b ReportBatch
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	rtts := b.RTTs[:0]
	for _, r := range b.RTTs {
		if r.Target == "heartbeat" {
			b.Heartbeat = &Heartbeat{Prober: b.Prober, At: r.At, Every: r.EWMA}
			continue
		}
		r.Kind, r.Name, _ = strings.Cut(r.Target, ":")
		r.Target = r.key()
		rtts = append(rtts, r)
	}
	b.RTTs = rtts
	return &b, nil
}

// Type implements Command.
func (*ReportBatch) Type() CommandType { return TypeReportBatch }

func (b *ReportBatch) validate() error {
	if b.Prober == "" {
		return errors.New("prober: must be set")
	}
	if len(b.Transitions) == 0 && len(b.RTTs) == 0 && b.Heartbeat == nil {
		return errors.New("empty report batch")
	}
	if h := b.Heartbeat; h != nil {
		if h.At.IsZero() {
			return errors.New("heartbeat.at: must be set")
		}
		if h.Every < 0 {
			return errors.New("heartbeat.every: negative duration")
		}
		if h.Prober != "" && h.Prober != b.Prober {
			return fmt.Errorf("heartbeat.prober: %q differs from batch prober %q", h.Prober, b.Prober)
		}
	}
	for i, t := range b.Transitions {
		if t.Key == "" {
			return fmt.Errorf("transitions[%d].key: must be set", i)
		}
		if t.Prober != "" && t.Prober != b.Prober {
			return fmt.Errorf("transitions[%d].prober: %q differs from batch prober %q", i, t.Prober, b.Prober)
		}
		if t.At.IsZero() {
			return fmt.Errorf("transitions[%d].at: must be set", i)
		}
	}
	for i, r := range b.RTTs {
		if r.Kind != RTTRegion && r.Kind != RTTNetwork {
			return fmt.Errorf("rtts[%d].kind: %q is not %s or %s", i, r.Kind, RTTRegion, RTTNetwork)
		}
		if r.Name == "" {
			return fmt.Errorf("rtts[%d].name: must be set", i)
		}
		if r.Prober != "" && r.Prober != b.Prober {
			return fmt.Errorf("rtts[%d].prober: %q differs from batch prober %q", i, r.Prober, b.Prober)
		}
		if r.EWMA < 0 || r.Min < 0 {
			return fmt.Errorf("rtts[%d]: negative duration", i)
		}
		if r.At.IsZero() {
			return fmt.Errorf("rtts[%d].at: must be set", i)
		}
	}
	return nil
}

// Override kinds and actions.
const (
	KindRegion = "region"
	KindPool   = "pool"
	KindMember = "member"

	ActionDrain     = "drain"
	ActionUndrain   = "undrain"
	ActionForceUp   = "force-up"
	ActionForceDown = "force-down"
)

// Override is an operator's decision about a region, pool or member. At most
// one override exists per (Kind, Name): a new one replaces it, and undrain
// removes it whatever it was. Until is the expiry (zero means none); readers
// ignore an override whose Until has passed, and applying any later override
// command removes those that expired before its At.
type Override struct {
	Kind   string    `json:"kind"`
	Name   string    `json:"name"`
	Action string    `json:"action"`
	Until  time.Time `json:"until,omitzero"`
	At     time.Time `json:"at"` // when the operator asked (stamped by the proposer)
}

// Type implements Command.
func (*Override) Type() CommandType { return TypeOverride }

func (o *Override) validate() error {
	switch o.Kind {
	case KindRegion, KindPool, KindMember:
	default:
		return fmt.Errorf("kind: %q is not region, pool or member", o.Kind)
	}
	if o.Name == "" {
		return errors.New("name: must be set")
	}
	switch o.Action {
	case ActionDrain, ActionUndrain, ActionForceUp, ActionForceDown:
	default:
		return fmt.Errorf("action: %q is not drain, undrain, force-up or force-down", o.Action)
	}
	if o.At.IsZero() {
		return errors.New("at: must be set")
	}
	if !o.Until.IsZero() && !o.Until.After(o.At) {
		return fmt.Errorf("until: %s is not after %s", o.Until.Format(time.RFC3339), o.At.Format(time.RFC3339))
	}
	return nil
}

// Active reports whether o is in force at now.
func (o Override) Active(now time.Time) bool {
	return o.Until.IsZero() || now.Before(o.Until)
}

// ZoneUpdate sets the content of one zone for the whole cluster. A nil
// Content removes the zone. An update whose serial is older than the
// committed one (RFC 1982 serial arithmetic), or equal with different
// content, is rejected.
type ZoneUpdate struct {
	Name    string `json:"name"` // lower-case FQDN, e.g. "example.com."
	Serial  uint32 `json:"serial"`
	Content []byte `json:"content"`
}

// Type implements Command.
func (*ZoneUpdate) Type() CommandType { return TypeZoneUpdate }

func (z *ZoneUpdate) validate() error {
	if z.Name == "" {
		return errors.New("name: must be set")
	}
	if z.Name[len(z.Name)-1] != '.' {
		return fmt.Errorf("name: %q is not fully qualified", z.Name)
	}
	return nil
}

// Membership operations recorded by MemberChange.
const (
	MemberJoin  = "join"
	MemberLeave = "leave"
)

// MemberChange records a node joining or leaving the cluster. The Raft
// configuration itself is changed by Join, Leave and Remove; this command
// keeps the cluster's own record of its members in the replicated state.
type MemberChange struct {
	Op    string    `json:"op"`
	ID    string    `json:"id"`
	Addr  string    `json:"addr,omitempty"`
	Voter bool      `json:"voter,omitempty"`
	At    time.Time `json:"at"`
}

// Type implements Command.
func (*MemberChange) Type() CommandType { return TypeMemberChange }

func (m *MemberChange) validate() error {
	if m.Op != MemberJoin && m.Op != MemberLeave {
		return fmt.Errorf("op: %q is not join or leave", m.Op)
	}
	if m.ID == "" {
		return errors.New("id: must be set")
	}
	return nil
}
