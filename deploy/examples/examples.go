// Package examples embeds the example configurations and fixtures under
// deploy/examples, so that the demo runs the very rules users read, and tests
// can run every example.
package examples

import "embed"

// FS holds <name>/config.yaml and <name>/fixtures/* of every example.
//
//go:embed */config.yaml */fixtures
var FS embed.FS
