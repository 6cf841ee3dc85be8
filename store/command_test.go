package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		cmd  Command
		typ  CommandType
	}{
		{"report", &ReportBatch{Prober: "us-east", Transitions: []Transition{{Prober: "us-east", Region: "eu-west", Key: "web-eu/198.51.100.10", Up: false, Reason: "connect refused", At: t0}}, RTTs: []RTTSummary{{Kind: RTTRegion, Name: "eu-west", EWMA: 81 * time.Millisecond, Min: 79 * time.Millisecond, At: t0}}, Heartbeat: &Heartbeat{Prober: "us-east", At: t0, Every: 5 * time.Second}}, TypeReportBatch},
		{"override", &Override{Kind: KindPool, Name: "web-us", Action: ActionForceDown, Until: t0.Add(time.Hour), At: t0}, TypeOverride},
		{"zone", &ZoneUpdate{Name: "example.com.", Serial: 2026112301, Content: []byte("$ORIGIN example.com.\n")}, TypeZoneUpdate},
		{"member", &MemberChange{Op: MemberJoin, ID: "n4", Addr: "127.0.0.1:7000", Voter: true, At: t0}, TypeMemberChange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.cmd)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if CommandType(b[0]) != tc.typ || b[1] != commandVersion[tc.typ] {
				t.Fatalf("header = %d %d, want %d %d", b[0], b[1], tc.typ, commandVersion[tc.typ])
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.cmd) {
				t.Fatalf("round trip = %+v, want %+v", got, tc.cmd)
			}
		})
	}
}

// The type byte values are permanent: this pins them.
func TestCommandTypesArePermanent(t *testing.T) {
	want := map[CommandType]byte{TypeReportBatch: 1, TypeOverride: 2, TypeZoneUpdate: 3, TypeMemberChange: 4}
	for typ, b := range want {
		if byte(typ) != b {
			t.Errorf("%v = %d, want %d", typ, byte(typ), b)
		}
	}
}

func TestDecodeRefusesUnknown(t *testing.T) {
	good, err := Encode(&ZoneUpdate{Name: "example.com.", Serial: 1, Content: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	newer := append([]byte{good[0], 2}, good[2:]...)
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown version", newer, "decode command zone-update: version 2: unknown command"},
		{"unknown type", append([]byte{99, 1}, good[2:]...), "decode command: type byte 99: unknown command"},
		{"version zero", append([]byte{good[0], 0}, good[2:]...), "version 0: unknown command"},
		{"short", []byte{3}, "decode command: 1 bytes, want at least 2"},
		{"bad body", []byte{3, 1, '{'}, "decode command zone-update version 1: unexpected end of JSON input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := Decode(tc.in)
			if err == nil {
				t.Fatalf("Decode(%q) = %+v, want error", tc.in, cmd)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if tc.name != "short" && tc.name != "bad body" && !errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("error %q does not match ErrUnknownCommand", err)
			}
		})
	}
}

func TestCommandValidation(t *testing.T) {
	cases := []struct {
		name string
		cmd  Command
		want string
	}{
		{"no prober", &ReportBatch{Transitions: []Transition{{Key: "k", At: t0}}}, "report-batch: prober: must be set"},
		{"empty batch", &ReportBatch{Prober: "p"}, "empty report batch"},
		{"no key", &ReportBatch{Prober: "p", Transitions: []Transition{{At: t0}}}, "transitions[0].key: must be set"},
		{"other prober", &ReportBatch{Prober: "p", Transitions: []Transition{{Prober: "q", Key: "k", At: t0}}}, `transitions[0].prober: "q" differs from batch prober "p"`},
		{"no time", &ReportBatch{Prober: "p", RTTs: []RTTSummary{{Kind: RTTNetwork, Name: "t"}}}, "rtts[0].at: must be set"},
		{"bad kind", &Override{Kind: "zone", Name: "x", Action: ActionDrain, At: t0}, `override: kind: "zone" is not region, pool or member`},
		{"bad action", &Override{Kind: KindPool, Name: "x", Action: "kill", At: t0}, `action: "kill" is not`},
		{"until before at", &Override{Kind: KindPool, Name: "x", Action: ActionForceUp, At: t0, Until: t0}, "until: 2026-11-23T12:00:00Z is not after"},
		{"relative zone", &ZoneUpdate{Name: "example.com", Content: []byte("x")}, `zone-update: name: "example.com" is not fully qualified`},
		{"bad op", &MemberChange{Op: "kick", ID: "n1"}, `member-change: op: "kick" is not join or leave`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encode(tc.cmd)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Encode(%+v) error = %v, want %q", tc.cmd, err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{NodeID: "n1", DataDir: "/tmp/x", RaftAddr: "127.0.0.1:0", Secret: "7f3a9c0e5b12d84f6a0c3e91b7d25f48"}
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"good", func(*Config) {}, ""},
		{"no secret", func(c *Config) { c.Secret = "" }, "cluster.secret: must be set"},
		{"weak secret", func(c *Config) { c.Secret = "aaaaaaaaaaaaaaaa" }, "cluster.secret: 16 characters with an estimated 32 bits of entropy, want at least 128"},
		{"no id", func(c *Config) { c.NodeID = "" }, "cluster.node_id: must be set"},
		{"no dir", func(c *Config) { c.DataDir = "" }, "cluster.data_dir: must be set"},
		{"bad addr", func(c *Config) { c.RaftAddr = "localhost" }, `cluster.raft_addr: "localhost"`},
		{"dup peer", func(c *Config) {
			c.Peers = []Peer{{ID: "a", Addr: "127.0.0.1:1", Voter: true}, {ID: "a", Addr: "127.0.0.1:2"}}
		}, `cluster.peers[1].id: "a" listed twice`},
		{"no voter", func(c *Config) { c.Peers = []Peer{{ID: "a", Addr: "127.0.0.1:1"}} }, "cluster.peers: no voter"},
		{"lease", func(c *Config) { c.Tuning.LeaderLeaseTimeout = 2 * time.Second }, "cluster.tuning.leader_lease_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReportBatchV1: a version 1 report batch, whose RTT targets were
// "kind:name" strings and whose heartbeat was an RTT summary to the target
// "heartbeat", decodes into the typed form.
func TestReportBatchV1(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	body := `{"prober":"p1","transitions":[{"prober":"p1","key":"k","up":true,"at":"2026-11-30T12:00:00Z"}],` +
		`"rtts":[{"prober":"p1","target":"heartbeat","ewma":5000000000,"min":0,"at":"2026-11-30T12:00:00Z"},` +
		`{"prober":"p1","target":"region:eu-west","ewma":80000000,"min":75000000,"at":"2026-11-30T12:00:00Z"},` +
		`{"prober":"p1","target":"network:81.2.69.0/24","ewma":20000000,"min":18000000,"at":"2026-11-30T12:00:00Z"}]}`
	cmd, err := Decode(append([]byte{byte(TypeReportBatch), 1}, body...))
	if err != nil {
		t.Fatal(err)
	}
	b := cmd.(*ReportBatch)
	if b.Heartbeat == nil || !b.Heartbeat.At.Equal(t0) || b.Heartbeat.Every != 5*time.Second {
		t.Errorf("heartbeat = %+v, want at %v every 5s", b.Heartbeat, t0)
	}
	want := []RTTSummary{
		{Prober: "p1", Kind: RTTRegion, Name: "eu-west", Target: "region/eu-west", EWMA: 80 * time.Millisecond, Min: 75 * time.Millisecond, At: t0},
		{Prober: "p1", Kind: RTTNetwork, Name: "81.2.69.0/24", Target: "network/81.2.69.0/24", EWMA: 20 * time.Millisecond, Min: 18 * time.Millisecond, At: t0},
	}
	if len(b.RTTs) != 2 || b.RTTs[0] != want[0] || b.RTTs[1] != want[1] {
		t.Errorf("rtts = %+v\nwant %+v", b.RTTs, want)
	}
	if err := b.validate(); err != nil {
		t.Errorf("the decoded batch does not validate: %v", err)
	}
}
