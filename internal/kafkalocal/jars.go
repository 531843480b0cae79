// Package kafkalocal runs a real Apache Kafka broker (single node, KRaft,
// combined broker and controller) on the local JDK, from jars that Maven
// fetches from Maven Central. It needs `java` (17 or newer) and, the first
// time, `mvn` on PATH; it needs no Docker engine and no Kafka distribution.
//
// EnsureJars fetches the jars once into a cache folder; Start runs a broker
// on free loopback ports and returns once a client can produce to it.
package kafkalocal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Version is the Apache Kafka version that EnsureJars fetches and Start runs.
const Version = "4.4.0"

// pom lists what the broker needs at run time. kafka_2.13 brings log4j-core
// and slf4j-api 1.7 but no slf4j binding; without log4j-slf4j-impl the
// broker's Java classes (controller, raft, group coordinator) would log
// nowhere.
const pom = `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by capirelay internal/kafkalocal: the runtime jars of Apache Kafka ` + Version + `. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.capirelay</groupId>
  <artifactId>kafkalocal-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>` + Version + `</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.25.5</version>
    </dependency>
  </dependencies>
</project>
`

// DefaultHome is the jar cache used when none is given:
// $CAPIRELAY_KAFKA_HOME if set, else $HOME/.cache/capirelay/kafka.
func DefaultHome() string {
	if h := os.Getenv("CAPIRELAY_KAFKA_HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "capirelay", "kafka")
	}
	return filepath.Join(os.TempDir(), "capirelay-kafka")
}

// EnsureJars makes sure that home/<Version>/libs holds every runtime jar of
// the Kafka broker and returns that folder. The first call runs Maven
// (`mvn dependency:copy-dependencies` on a generated pom.xml) and writes a
// stamp file when the copy is complete; later calls only check the stamp.
//
// It is safe to call from several processes at once: the fetch runs under an
// exclusive flock on home/<Version>/.lock, and the folder is filled under a
// temporary name and renamed into place, so no caller ever sees a partial
// libs folder. ctx bounds both the wait for the lock and the Maven run.
func EnsureJars(ctx context.Context, home string) (string, error) {
	if home == "" {
		home = DefaultHome()
	}
	dir := filepath.Join(home, Version)
	libs := filepath.Join(dir, "libs")
	stamp := filepath.Join(dir, ".complete")
	sum := sha256.Sum256([]byte(pom))
	want := hex.EncodeToString(sum[:])
	done := func() bool {
		b, err := os.ReadFile(stamp)
		return err == nil && strings.TrimSpace(string(b)) == want
	}
	if done() {
		return libs, nil
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("kafkalocal: create jar cache %s: %w", dir, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if done() { // another process fetched while we waited for the lock
		return libs, nil
	}

	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", fmt.Errorf("kafkalocal: Maven (mvn) is needed once to fetch the Kafka %s jars into %s: %w", Version, libs, err)
	}
	pomPath := filepath.Join(dir, "pom.xml")
	if err := os.WriteFile(pomPath, []byte(pom), 0o644); err != nil {
		return "", fmt.Errorf("kafkalocal: write %s: %w", pomPath, err)
	}
	tmp := libs + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("kafkalocal: clear %s: %w", tmp, err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, mvn, "-B", "-q", "-f", pomPath,
		"dependency:copy-dependencies", "-DoutputDirectory="+tmp, "-DincludeScope=runtime")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kafkalocal: mvn dependency:copy-dependencies for %s failed after %s: %w\n%s",
			pomPath, time.Since(start).Round(time.Millisecond), err, lastLines(out.String(), 40))
	}
	if _, err := os.Stat(filepath.Join(tmp, "kafka_2.13-"+Version+".jar")); err != nil {
		return "", fmt.Errorf("kafkalocal: Maven finished but %s lacks the broker jar: %w", tmp, err)
	}
	if err := os.RemoveAll(libs); err != nil {
		return "", fmt.Errorf("kafkalocal: clear %s: %w", libs, err)
	}
	if err := os.Rename(tmp, libs); err != nil {
		return "", fmt.Errorf("kafkalocal: move jars into place: %w", err)
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("kafkalocal: write stamp %s: %w", stamp, err)
	}
	return libs, nil
}

// lockFile takes an exclusive flock on path, polling so that ctx can end the
// wait, and returns the function that releases it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kafkalocal: open lock %s: %w", path, err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("kafkalocal: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("kafkalocal: waiting for lock %s (another process is fetching jars): %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// lastLines returns at most the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
