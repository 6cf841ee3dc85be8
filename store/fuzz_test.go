package store

import (
	"bytes"
	"io"
	"testing"
)

// FuzzDecode: any byte string decodes to a valid command or an error,
// never a panic; a decoded command re-encodes and decodes to itself.
func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 2, '{', '}'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := Decode(b)
		if err != nil {
			return
		}
		if cmd.validate() != nil {
			return // the proposer would have refused it; Apply may still see it from an older binary
		}
		again, err := Encode(cmd)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", cmd, err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("decode of re-encoded %q: %v", again, err)
		}
	})
}

// FuzzRestore: a damaged snapshot is refused without a panic and without
// touching the state.
func FuzzRestore(f *testing.F) {
	src, err := openFSM(f.TempDir() + "/src.db")
	if err != nil {
		f.Fatal(err)
	}
	defer src.close()
	src.ApplyBatch(logsF(f, 1, sampleCommands()...))
	snap, _ := src.Snapshot()
	var sink bufSink
	snap.Persist(&sink)
	snap.Release()
	f.Add(sink.Bytes())
	f.Add([]byte(snapMagic + "\x01E\x00\x00\x00\x00"))
	dst, err := openFSM(f.TempDir() + "/dst.db")
	if err != nil {
		f.Fatal(err)
	}
	defer dst.close()
	f.Fuzz(func(t *testing.T, b []byte) {
		_, before, _ := dst.fingerprint()
		if err := dst.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			if _, after, _ := dst.fingerprint(); after != before {
				t.Fatalf("failed restore (%v) changed the state", err)
			}
		}
	})
}
