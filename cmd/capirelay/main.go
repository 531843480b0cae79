// Command capirelay relays domain events from Kafka topics to the OpenAI Ads
// Conversions API, and holds the tools around it.
//
//	capirelay check --config FILE
//	capirelay mapping test --config FILE [--update] [FIXTURE...]
//
// Each subcommand parses its own flags with the standard flag package. Exit
// codes: 0 success, 1 a check or test failed, 2 a usage error.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

// command is one subcommand. run gets the arguments after the subcommand's
// name and returns the exit code.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands; add new ones here.
var commands = []command{
	{"check", "validate a config file and compile its mapping rules", runCheck},
	{"mapping", "mapping tools: `mapping test` runs rule fixtures", runMapping},
	{"version", "print the version", func(_ []string, stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, "capirelay", version)
		return 0
	}},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run dispatches args to a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "capirelay: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: capirelay <command> [flags]\n\ncommands:")
	cs := append([]command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `capirelay <command> -h` for a command's flags.")
}
