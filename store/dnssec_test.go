package store

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestDNSSECKeysApply (DNSSEC-40): sealed keys are applied when made from
// the keys as committed (Prev = Seq), refused with ErrRejected otherwise,
// kept across a reopen and carried by a snapshot.
func TestDNSSECKeysApply(t *testing.T) {
	f := newTestFSM(t)
	first := &DNSSECKeys{Sealed: []byte("v1"), By: "n1", At: t0}
	racing := &DNSSECKeys{Sealed: []byte("other"), By: "n2", At: t0}
	second := &DNSSECKeys{Sealed: []byte("v2"), Prev: 1, By: "n2", At: t0}
	resp := f.ApplyBatch(logs(t, 1, first, racing, second))
	if resp[0] != nil || resp[2] != nil {
		t.Fatalf("responses %v: want the first and third applied", resp)
	}
	if err, _ := resp[1].(error); !errors.Is(err, ErrRejected) {
		t.Fatalf("a change made from stale keys: %v, want ErrRejected", resp[1])
	}
	k, ok := f.current().DNSSECKeys()
	if !ok || k.Seq != 2 || !bytes.Equal(k.Sealed, []byte("v2")) {
		t.Fatalf("committed keys %+v, want v2 at seq 2", k)
	}
	if _, err := Encode(&DNSSECKeys{}); err == nil {
		t.Error("an empty sealed blob encodes")
	}

	var snap bufSink
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Persist(&snap); err != nil {
		t.Fatal(err)
	}
	s.Release()
	g := newTestFSM(t)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if k2, ok := g.current().DNSSECKeys(); !ok || k2.Seq != 2 || !bytes.Equal(k2.Sealed, k.Sealed) {
		t.Fatalf("restored keys %+v, want %+v", k2, k)
	}
}
