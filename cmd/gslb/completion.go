package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"
)

// flagLine matches a flag in a command's usage ("  -name ...").
var flagLine = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// commandFlags returns the flags of command name, as "--name", read from
// the usage it prints for -h: the completion cannot drift from the flags.
func commandFlags(name string) []string {
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	old := os.Stderr
	os.Stderr = w
	commands[name].run([]string{"-h"})
	os.Stderr = old
	w.Close()
	var flags []string
	for _, m := range flagLine.FindAllSubmatch(<-done, -1) {
		flags = append(flags, "--"+string(m[1]))
	}
	return flags
}

func runCompletion(args []string) int { return completion(args, os.Stdout, os.Stderr) }

// completion is `gslb completion bash|zsh`, and `gslb completion names
// region|pool|member`, which the scripts call to complete override targets
// from the node at $GSLB_ADMIN (nothing when it does not answer).
func completion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("completion", "bash|zsh",
		"Prints a completion script. Load it with\n\n"+
			"  source <(gslb completion bash)       # in ~/.bashrc\n"+
			"  source <(gslb completion zsh)        # in ~/.zshrc, after compinit\n\n"+
			"Override targets (gslb drain region TAB) are asked from the node at\n$GSLB_ADMIN (default 127.0.0.1:9153).", stderr)
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 1 && (pos[0] == "bash" || pos[0] == "zsh"):
		return writeScript(stdout, pos[0])
	case len(pos) == 2 && pos[0] == "names":
		printNames(stdout, pos[1])
		return 0
	}
	fs.Usage()
	return 2
}

func writeScript(w io.Writer, shell string) int {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	data := struct {
		Commands string
		Flags    [][2]string
	}{Commands: strings.Join(names, " ")}
	for _, n := range names {
		data.Flags = append(data.Flags, [2]string{n, strings.Join(commandFlags(n), " ")})
	}
	t := template.Must(template.New(shell).Parse(map[string]string{"bash": bashScript, "zsh": zshScript}[shell]))
	if err := t.Execute(w, data); err != nil {
		fmt.Fprintln(os.Stderr, "gslb completion:", err)
		return 1
	}
	return 0
}

// printNames prints the regions, pools or members the node at
// $GSLB_ADMIN knows, one a line.
func printNames(w io.Writer, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, _, err := client(defaultServer(), os.Getenv("GSLB_ADMIN_TOKEN")).Status(ctx)
	if err != nil {
		return
	}
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			fmt.Fprintln(w, s)
		}
	}
	switch kind {
	case "region":
		for _, r := range st.Regions {
			add(r.Name)
		}
	case "pool":
		for _, p := range st.Pools {
			add(p.Name)
		}
	case "member":
		for _, p := range st.Pools {
			for _, m := range p.Members {
				add(m.Addr)
				add(p.Name + "/" + m.Addr)
			}
		}
	}
}

const bashScript = `# bash completion for gslb; load with: source <(gslb completion bash)
_gslb() {
    local cur prev cmd words
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=( $(compgen -W "{{.Commands}} --help --version" -- "$cur") )
        return
    fi
    cmd="${COMP_WORDS[1]}"
    case "$prev" in
    --config|-config|--zones|-zones|--data|-data|--geoip|-geoip|--cpuprofile|-cpuprofile)
        COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    esac
    case "$cmd" in
    check-zone)
        if [[ "$cur" != -* ]]; then COMPREPLY=( $(compgen -f -- "$cur") ); return; fi ;;
    completion)
        COMPREPLY=( $(compgen -W "bash zsh" -- "$cur") ); return ;;
    demo)
        if [ "$COMP_CWORD" -eq 2 ] && [[ "$cur" != -* ]]; then COMPREPLY=( $(compgen -W "kill kill-servers start" -- "$cur") ); return; fi
        if [ "$prev" = kill ] || [ "$prev" = kill-servers ] || [ "$prev" = start ]; then COMPREPLY=( $(compgen -W "us-east eu-west ap-south" -- "$cur") ); return; fi ;;
    drain|undrain|force-up|force-down)
        case "$prev" in
        region|pool|member)
            COMPREPLY=( $(compgen -W "$(gslb completion names "$prev" 2>/dev/null)" -- "$cur") ); return ;;
        esac
        if [ "$COMP_CWORD" -eq 2 ] && [[ "$cur" != -* ]]; then COMPREPLY=( $(compgen -W "region pool member" -- "$cur") ); return; fi ;;
    dnssec)
        if [ "$COMP_CWORD" -eq 2 ] && [[ "$cur" != -* ]]; then COMPREPLY=( $(compgen -W "ds rollover" -- "$cur") ); return; fi
        if [ "$COMP_CWORD" -eq 4 ] && [ "${COMP_WORDS[2]}" = rollover ]; then COMPREPLY=( $(compgen -W "prepublish switch remove" -- "$cur") ); return; fi ;;
    explain)
        if [[ "$cur" != -* ]] && [ "$prev" != --client ] && [ "$prev" != --subnet ] && [ "$prev" != --server ]; then
            COMPREPLY=( $(compgen -W "A AAAA" -- "$cur") ); return
        fi ;;
    esac
    case "$cmd" in
{{- range .Flags}}
    {{index . 0}}) words="{{index . 1}}" ;;
{{- end}}
    *) words="" ;;
    esac
    COMPREPLY=( $(compgen -W "$words --help" -- "$cur") )
}
complete -o default -F _gslb gslb
`

const zshScript = `#compdef gslb
# zsh completion for gslb; load with: source <(gslb completion zsh)
_gslb() {
    local -a cmds
    cmds=({{.Commands}})
    if (( CURRENT == 2 )); then
        compadd -- $cmds --help --version
        return
    fi
    local cmd=${words[2]} prev=${words[CURRENT-1]}
    case $prev in
    --config|-config|--zones|-zones|--data|-data|--geoip|-geoip|--cpuprofile|-cpuprofile)
        _files; return ;;
    esac
    case $cmd in
    check-zone)
        if [[ ${words[CURRENT]} != -* ]]; then _files; return; fi ;;
    completion)
        compadd -- bash zsh; return ;;
    demo)
        if (( CURRENT == 3 )) && [[ ${words[CURRENT]} != -* ]]; then compadd -- kill kill-servers start; return; fi
        if [[ $prev == kill || $prev == kill-servers || $prev == start ]]; then compadd -- us-east eu-west ap-south; return; fi ;;
    drain|undrain|force-up|force-down)
        case $prev in
        region|pool|member)
            compadd -- ${(f)"$(gslb completion names $prev 2>/dev/null)"}; return ;;
        esac
        if (( CURRENT == 3 )) && [[ ${words[CURRENT]} != -* ]]; then compadd -- region pool member; return; fi ;;
    dnssec)
        if (( CURRENT == 3 )) && [[ ${words[CURRENT]} != -* ]]; then compadd -- ds rollover; return; fi
        if (( CURRENT == 5 )) && [[ ${words[3]} == rollover ]]; then compadd -- prepublish switch remove; return; fi ;;
    esac
    local -a flags
    case $cmd in
{{- range .Flags}}
    {{index . 0}}) flags=({{index . 1}}) ;;
{{- end}}
    esac
    compadd -- $flags --help
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _gslb "$@"
else
    compdef _gslb gslb
fi
`
