package daemon

import (
	"slices"
	"testing"
)

func TestExportedSeries(t *testing.T) {
	got, err := ExportedSeries()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Series{}
	for _, s := range got {
		byName[s.Name] = s
	}
	// One of each kind the daemon registers: its own vectors, its single gauge, the targets'
	// histogram, and the Go collector.
	tests := []struct {
		name, typ string
		labels    []string
	}{
		{"backupd_last_success_timestamp_seconds", "gauge", []string{"job", "policy"}},
		{"backupd_job_runs_total", "counter", []string{"job", "policy", "result"}},
		{"backupd_open_alerts", "gauge", nil},
		{"backupd_drill_rto_seconds", "gauge", []string{"policy"}},
		{"backupd_target_operation_duration_seconds", "histogram", []string{"op", "target"}},
		{"go_goroutines", "gauge", nil},
	}
	for _, tt := range tests {
		s, ok := byName[tt.name]
		if !ok {
			t.Errorf("%s: not exported; got %d series", tt.name, len(got))
			continue
		}
		if s.Type != tt.typ || !slices.Equal(s.Labels, tt.labels) {
			t.Errorf("%s: got %s %v, want %s %v", tt.name, s.Type, s.Labels, tt.typ, tt.labels)
		}
	}
}
