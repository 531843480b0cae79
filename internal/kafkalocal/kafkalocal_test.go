package kafkalocal

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// These tests run a real JVM; -short skips them.

func TestStartStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:PORT", b.Addr())
	}
	if !Running(b.PID(), b.Dir()) {
		t.Errorf("Running(%d, %s) = false right after Start", b.PID(), b.Dir())
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if Running(b.PID(), b.Dir()) {
		t.Errorf("JVM %d still running after Stop", b.PID())
	}
	if _, err := os.Stat(b.Dir()); !os.IsNotExist(err) {
		t.Errorf("broker folder %s still there after Stop (stat: %v)", b.Dir(), err)
	}
	if err := b.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStartTimeoutKillsAndShowsLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM")
	}
	parent := t.TempDir()
	_, err := Start(context.Background(), Options{ParentDir: parent, StartTimeout: time.Nanosecond})
	if err == nil {
		t.Fatal("Start with a 1ns timeout succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "not ready within") || !strings.Contains(msg, "last lines of") {
		t.Errorf("error lacks the reason or the log tail:\n%s", msg)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("failed Start left %d entries in %s", len(left), parent)
	}
}
