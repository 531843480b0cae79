package consumer

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Group: "g", Topics: []string{"t"}, DeadLetterTopic: "dlq"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Topics: []string{"dlq"}, DeadLetterTopic: "dlq", MaxBatchEvents: 1001, MapWorkers: -1, Linger: -1,
		MaxUnsettledBytes: -1, DeadLetterMaxBytes: 100}
	err := bad.Validate()
	for _, want := range []string{"group id", "also the dead-letter topic", "max batch events", "map workers", "linger",
		"max unsettled bytes", "dead-letter max bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	redrive := Config{Group: "g", Topics: []string{"dlq"}, DeadLetterTopic: "dlq", AllowDeadLetterSource: true}
	if err := redrive.Validate(); err != nil {
		t.Fatalf("redrive config: %v", err)
	}
}
