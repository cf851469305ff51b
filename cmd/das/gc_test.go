package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tests := []struct {
		name        string
		gogc        string
		pct         int
		want        int
		wantApplied bool
	}{
		{name: "config applies", pct: 400, want: 400, wantApplied: true},
		{name: "GOGC wins", gogc: "150", pct: 400, want: 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What the runtime read from GOGC at start, when it is set.
			debug.SetGCPercent(150)
			got, applied := tuneGC(tt.pct, func(k string) string {
				if k == "GOGC" {
					return tt.gogc
				}
				return ""
			})
			now := debug.SetGCPercent(100)
			if got != tt.want || applied != tt.wantApplied || now != tt.want {
				t.Fatalf("tuneGC = %d, %v; runtime at %d; want %d, %v", got, applied, now, tt.want, tt.wantApplied)
			}
		})
	}
}
