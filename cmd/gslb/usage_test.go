package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// captureOutput runs f with os.Stderr and os.Stdout going to pipes and
// returns what f wrote to each.
func captureOutput(t *testing.T, f func()) (stdout, stderr string) {
	t.Helper()
	read := func(p **os.File) func() string {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := *p
		*p = w
		done := make(chan string)
		go func() {
			b, _ := io.ReadAll(r)
			done <- string(b)
		}()
		return func() string { w.Close(); *p = old; return <-done }
	}
	getOut := read(&os.Stdout)
	getErr := read(&os.Stderr)
	f()
	return getOut(), getErr()
}

// TestHelpEveryCommand: -h and --help exit 0 and print one usage style,
// "usage: gslb NAME ...", for every command.
func TestHelpEveryCommand(t *testing.T) {
	for name := range commands {
		for _, h := range []string{"-h", "--help"} {
			t.Run(name+"/"+h, func(t *testing.T) {
				var code int
				_, errOut := captureOutput(t, func() { code = run([]string{name, h}) })
				if code != 0 {
					t.Errorf("gslb %s %s: exit %d, want 0", name, h, code)
				}
				if !strings.HasPrefix(errOut, "usage: gslb "+name) {
					t.Errorf("gslb %s %s: usage starts %q, want \"usage: gslb %s\"", name, h, firstLine(errOut), name)
				}
				if strings.Contains(errOut, "Usage of") {
					t.Errorf("gslb %s %s: Go's default usage:\n%s", name, h, errOut)
				}
			})
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "drain"}, {"demo", "kill", "-h"}, {"demo", "kill-servers", "-h"}, {"demo", "start", "--help"}} {
		var code int
		captureOutput(t, func() { code = run(args) })
		if code != 0 {
			t.Errorf("gslb %s: exit %d, want 0", strings.Join(args, " "), code)
		}
	}
}

// TestUsageErrorsExit2: a wrong flag or a missing argument prints the
// usage and exits 2.
func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--nosuch"}, {"status", "extra"}, {"drain", "region"}, {"proxy"},
		{"check-zone"}, {"geo"}, {"secret", "x"}, {"version", "x"}, {"completion", "fish"},
		{"demo", "stop"}, {"demo", "kill"}, {"nosuch"},
	} {
		var code int
		_, errOut := captureOutput(t, func() { code = run(args) })
		if code != 2 {
			t.Errorf("gslb %s: exit %d, want 2\n%s", strings.Join(args, " "), code, errOut)
		}
	}
}

// TestCompletionFlags: the completion offers each command's flags as its
// usage shows them.
func TestCompletionFlags(t *testing.T) {
	for name, want := range map[string][]string{
		"serve":   {"--config", "--dns", "--zones-poll", "--probes"},
		"status":  {"--json", "--server", "--token"},
		"drain":   {"--for", "--json", "--server", "--token"},
		"demo":    {"--fails", "--interval", "--port"},
		"version": nil,
	} {
		got := commandFlags(name)
		for _, f := range want {
			if !slices.Contains(got, f) {
				t.Errorf("gslb %s: completion flags %v lack %s", name, got, f)
			}
		}
		if want == nil && len(got) > 0 {
			t.Errorf("gslb %s: completion flags %v, want none", name, got)
		}
	}
}

// TestCompletionBash loads the bash script and completes a few words.
func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	var script bytes.Buffer
	if code := completion([]string{"bash"}, &script, io.Discard); code != 0 {
		t.Fatalf("gslb completion bash: exit %d", code)
	}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"gslb dr", []string{"drain"}},
		{"gslb drain ", []string{"member", "pool", "region"}},
		{"gslb status --se", []string{"--server"}},
		{"gslb serve --zones-", []string{"--zones-poll"}},
		{"gslb completion ", []string{"bash", "zsh"}},
		{"gslb demo kill e", []string{"eu-west"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			cmd := exec.Command("bash", "-c", script.String()+`
COMP_WORDS=($LINE); [[ "$LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]}-1))
_gslb; printf '%s\n' "${COMPREPLY[@]}" | sort`)
			cmd.Env = append(os.Environ(), "LINE="+tc.line, "GSLB_ADMIN=127.0.0.1:1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := strings.Fields(string(out)); !slices.Equal(got, tc.want) {
				t.Errorf("%q completes to %v, want %v", tc.line, got, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := printVersion(nil, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "gslb ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("gslb version: %q", out.String())
	}
	b := buildInfo{}
	fillBuild(&b, &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-03T12:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}})
	b.Go = "go1.26.8"
	if got, want := b.String(), "gslb v1.2.3 (commit 0123456789ab-dirty, built 2026-12-03T12:00:00Z, go1.26.8 "; !strings.HasPrefix(got, want) {
		t.Errorf("version from build info: %q, want prefix %q", got, want)
	}
	b = buildInfo{Version: "v2.0.0", Commit: "abc"}
	fillBuild(&b, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "zzz"}}})
	if b.Version != "v2.0.0" || b.Commit != "abc" {
		t.Errorf("linker flags must win over build info: %+v", b)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
