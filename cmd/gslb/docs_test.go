package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/node"
	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/zones"
	"gopkg.in/yaml.v3"
)

// docFiles are the Markdown files whose snippets TestDocSnippets checks.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md", "../../examples/cluster/README.md")
	return files
}

// block is one code block of a Markdown file.
type block struct {
	file string
	line int    // of the block's first line
	lang string // of a fenced block; "" for indented blocks
	text string
}

var fence = regexp.MustCompile("^```\\s*([a-z]*)")

// codeBlocks returns the fenced and the indented (4 spaces, after a blank
// line) code blocks of a Markdown file.
func codeBlocks(file, text string) []block {
	var out []block
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		if m := fence.FindStringSubmatch(lines[i]); m != nil {
			b := block{file: file, line: i + 2, lang: m[1]}
			var body []string
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				body = append(body, lines[i])
			}
			b.text = strings.Join(body, "\n") + "\n"
			out = append(out, b)
			continue
		}
		if strings.HasPrefix(lines[i], "    ") && (i == 0 || strings.TrimSpace(lines[i-1]) == "") {
			b := block{file: file, line: i + 1}
			var body []string
			for ; i < len(lines) && (strings.HasPrefix(lines[i], "    ") || strings.TrimSpace(lines[i]) == ""); i++ {
				body = append(body, strings.TrimPrefix(lines[i], "    "))
			}
			b.text = strings.Join(body, "\n")
			out = append(out, b)
		}
	}
	return out
}

var (
	cmdLine   = regexp.MustCompile(`^(?:\$ )?gslb ([a-z|-]+)(.*)$`)
	inlineCmd = regexp.MustCompile("`(gslb [^`]+)`")
	flagWord  = regexp.MustCompile(`(?:^|[\s\[(|])(-{1,2}[a-z][a-z0-9-]*)`)
	makeLine  = regexp.MustCompile(`^(?:\$ )?make ([a-z0-9-]+)`)
)

// TestDocSnippets: every node config (yaml) in the docs loads and
// validates, every proxy config parses, every complete zone parses, links
// and compiles, every `gslb ...` command line names a command and flags it
// has, and every `make TARGET` is a target of the Makefile.
func TestDocSnippets(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string][]string{}
	counts := map[string]int{}
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range codeBlocks(filepath.Base(f), string(data)) {
			where := b.file + ":" + itoa(b.line)
			switch {
			case b.lang == "yaml":
				counts["yaml"]++
				checkYAML(t, where, b.text)
			case (b.lang == "" || b.lang == "zone") && strings.Contains(b.text, " SOA "):
				counts["zone"]++
				checkZoneText(t, where, b.text)
			}
			if b.lang != "" && b.lang != "sh" && b.lang != "console" {
				continue
			}
			// In a block with "$ " prompts, only the prompted lines are
			// commands; the others are their output.
			prompted := regexp.MustCompile(`(?m)^\s*\$ `).MatchString(b.text)
			for i, line := range strings.Split(b.text, "\n") {
				line = strings.TrimSpace(line)
				if prompted && !strings.HasPrefix(line, "$ ") {
					continue
				}
				if c, _, ok := strings.Cut(line, " #"); ok {
					line = strings.TrimSpace(c)
				}
				at := b.file + ":" + itoa(b.line+i)
				if m := makeLine.FindStringSubmatch(line); m != nil {
					counts["make"]++
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m[1]) + `:`).Match(makefile) {
						t.Errorf("%s: make %s: no such target in the Makefile", at, m[1])
					}
				}
				if checkCommand(t, at, line, flags) {
					counts["gslb"]++
				}
			}
		}
		// Inline code: `gslb drain\|undrain region NAME [--for DUR]` in tables
		// and prose.
		for _, m := range inlineCmd.FindAllStringSubmatchIndex(string(data), -1) {
			span := strings.ReplaceAll(string(data[m[2]:m[3]]), `\|`, "|")
			at := filepath.Base(f) + ":" + itoa(1+strings.Count(string(data[:m[0]]), "\n"))
			if checkCommand(t, at, span, flags) {
				counts["gslb"]++
			}
		}
	}
	t.Logf("checked %v", counts)
	if counts["yaml"] == 0 || counts["zone"] == 0 || counts["gslb"] < 10 {
		t.Errorf("too few snippets found (%v): is the docs layout what this test expects?", counts)
	}
}

// checkCommand checks a `gslb ...` line: its command (or each of
// "drain|undrain") exists and has every flag the line names. It reports
// whether line was a gslb command line.
func checkCommand(t *testing.T, at, line string, flags map[string][]string) bool {
	t.Helper()
	m := cmdLine.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	for _, name := range strings.Split(m[1], "|") {
		switch name {
		case "", "help", "-h", "--help", "-v", "-version", "--version":
			continue
		}
		if _, ok := commands[name]; !ok {
			t.Errorf("%s: %q: no command %q", at, line, name)
			continue
		}
		if _, ok := flags[name]; !ok {
			flags[name] = commandFlags(name)
		}
		for _, fm := range flagWord.FindAllStringSubmatch(m[2], -1) {
			f := "--" + strings.TrimLeft(fm[1], "-")
			if f == "--h" || f == "--help" {
				continue
			}
			if !slices.Contains(flags[name], f) {
				t.Errorf("%s: %q: gslb %s has no flag %s (it has %v)", at, line, name, fm[1], flags[name])
			}
		}
	}
	return true
}

// checkYAML loads a node config, or a proxy config when proxy: is its only
// key. A node config is also validated when it is complete (it has zones:
// or cluster:); a fragment (dns: alone, say) is only loaded, which still
// refuses unknown keys and wrong types.
func checkYAML(t *testing.T, where, text string) {
	t.Helper()
	var top map[string]any
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		t.Errorf("%s: yaml: %v", where, err)
		return
	}
	if _, ok := top["proxy"]; ok && len(top) == 1 {
		if _, err := proxy.Parse([]byte(text)); err != nil {
			t.Errorf("%s: proxy config: %v", where, err)
		}
		return
	}
	f := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := node.LoadConfig(f)
	if err != nil {
		t.Errorf("%s: node config: %v", where, err)
		return
	}
	_, hasZones := top["zones"]
	_, hasCluster := top["cluster"]
	if !hasZones && !hasCluster {
		return
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: node config: %v", where, err)
	}
}

func checkZoneText(t *testing.T, where, text string) {
	t.Helper()
	z, err := zones.Parse([]byte(text), where, "", false)
	if err != nil {
		t.Errorf("%s: zone: %v", where, err)
		return
	}
	if err := zones.Link([]*zones.Zone{z}); err != nil {
		t.Errorf("%s: zone: %v", where, err)
		return
	}
	if _, err := gslb.Compile([]*zones.Zone{z}, gslb.Env{}); err != nil {
		t.Errorf("%s: zone: %v", where, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
