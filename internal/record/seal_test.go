package record

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/esdk"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/pkg/dasrecord"
)

const streamID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"

func localKMS(t testing.TB) *kms.Local {
	t.Helper()
	p, err := kms.OpenLocal(filepath.Join(t.TempDir(), "kms", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func events(n, textLen int) []event.Event {
	evs := make([]event.Event, n)
	now := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	for i := range evs {
		e := event.New(now)
		e.Command = event.CommandQuery
		e.DBUserName = "app"
		e.RemoteHost, e.RemotePort = "10.1.2.3", "51000"
		e.SessionID = "42"
		e.StatementID = int64(i)
		text := fmt.Sprintf("SELECT * FROM orders WHERE id = %d AND note = '", i)
		e.CommandText = text + strings.Repeat("x", max(0, textLen-len(text)-1)) + "'"
		evs[i] = e
	}
	return evs
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, suite := range []esdk.Suite{esdk.SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, esdk.SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384} {
		t.Run(fmt.Sprintf("%#04x", uint16(suite)), func(t *testing.T) {
			p := localKMS(t)
			keys := kms.NewKeyCache(p, dasrecord.ContextFor(streamID), 1000, time.Hour)
			defer keys.Close()
			s, err := NewSealer(keys, Options{StreamID: streamID, InstanceID: "das-test", Suite: suite})
			if err != nil {
				t.Fatal(err)
			}
			in := events(16, 1024)
			first, err := s.Seal(context.Background(), in, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			second, err := s.Seal(context.Background(), in[:1], 2, &first.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(first.Line), "\n") {
				t.Fatal("a record line holds a newline")
			}
			d := &dasrecord.Decrypter{KMS: p}
			o, err := d.Decrypt(context.Background(), first.Line)
			if err != nil {
				t.Fatal(err)
			}
			if o.Payload.ClusterID != streamID || o.Payload.InstanceID != "das-test" || o.Payload.Type != "DatabaseActivityMonitoringRecord" {
				t.Fatalf("payload envelope %+v", o.Payload)
			}
			if len(o.Payload.Events) != 16 || o.Payload.Events[7].CommandText != in[7].CommandText {
				t.Fatal("events did not survive sealing")
			}
			o2, err := d.Decrypt(context.Background(), second.Line)
			if err != nil {
				t.Fatal(err)
			}
			if o2.Record.Seq != 2 || o2.Record.Prev != first.Digest.String() || o2.Record.StreamID != streamID {
				t.Fatalf("integrity fields %+v", o2.Record)
			}
			// The record is what DAS consumers expect, field for field.
			var raw map[string]any
			if err := json.Unmarshal(first.Line, &raw); err != nil {
				t.Fatal(err)
			}
			if raw["type"] != "DatabaseActivityMonitoringRecords" || raw["version"] != "1.2" {
				t.Fatalf("record header %v", raw)
			}
			msg, _ := base64.StdEncoding.DecodeString(raw["databaseActivityEvents"].(string))
			// v1: version, type, suite id; v2: version, suite id.
			got := uint16(msg[1])<<8 | uint16(msg[2])
			if msg[0] == 1 {
				got = uint16(msg[2])<<8 | uint16(msg[3])
			}
			if got != uint16(suite) {
				t.Fatalf("message suite %#04x, want %#04x", got, uint16(suite))
			}
			if o.Context[dasrecord.ContextCluster] != streamID {
				t.Fatalf("message context %v lacks aws:rds:dbc-id", o.Context)
			}
		})
	}
}

func TestDataKeyReuseIsBounded(t *testing.T) {
	p := localKMS(t)
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(streamID), 3, time.Hour)
	defer keys.Close()
	s, _ := NewSealer(keys, Options{StreamID: streamID})
	seen := map[string]int{}
	var prev *dasrecord.Digest
	for i := range 7 {
		r, err := s.Seal(context.Background(), events(1, 10), uint64(i+1), prev)
		if err != nil {
			t.Fatal(err)
		}
		prev = &r.Digest
		rec, _ := dasrecord.Parse(r.Line)
		seen[rec.Key]++
	}
	if len(seen) != 3 {
		t.Fatalf("7 records used %d data keys, want 3 (at most 3 uses each)", len(seen))
	}
	for _, n := range seen {
		if n > 3 {
			t.Fatalf("a data key sealed %d records", n)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	p := localKMS(t)
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(streamID), 1000, time.Hour)
	defer keys.Close()
	s, _ := NewSealer(keys, Options{StreamID: streamID})
	r, err := s.Seal(context.Background(), events(2, 100), 5, &dasrecord.Digest{1})
	if err != nil {
		t.Fatal(err)
	}
	line := string(r.Line)
	tests := []struct {
		name string
		line string
		d    dasrecord.Decrypter
		want error
	}{
		{"not json", "{", dasrecord.Decrypter{KMS: p}, dasrecord.ErrNotRecord},
		{"wrong type", strings.Replace(line, "MonitoringRecords", "MonitoringRecordz", 1), dasrecord.Decrypter{KMS: p}, dasrecord.ErrNotRecord},
		{"seq moved", strings.Replace(line, `"dasSeq":5`, `"dasSeq":6`, 1), dasrecord.Decrypter{KMS: p}, dasrecord.ErrBinding},
		{"prev rewritten", strings.Replace(line, `"dasPrev":"01`, `"dasPrev":"02`, 1), dasrecord.Decrypter{KMS: p}, dasrecord.ErrBinding},
		{"other stream asked", line, dasrecord.Decrypter{KMS: p, ResourceID: "cluster-OTHER"}, dasrecord.ErrOtherStream},
		{"stream relabelled", strings.Replace(line, streamID, "cluster-OTHER", 1), dasrecord.Decrypter{KMS: p}, dasrecord.ErrKey},
		{"wrong master key", line, dasrecord.Decrypter{KMS: localKMS(t)}, dasrecord.ErrKey},
		{"message altered", flipEvents(line), dasrecord.Decrypter{KMS: p}, dasrecord.ErrMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.d.Decrypt(context.Background(), []byte(tt.line))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func flipEvents(line string) string {
	i := strings.Index(line, `"databaseActivityEvents":"`) + 300
	c := byte('A')
	if line[i] == 'A' {
		c = 'B'
	}
	return line[:i] + string(c) + line[i+1:]
}

// BenchmarkSeal measures sealing on one goroutine: events/s for 1 KiB
// commandText in batches of 1, 16 and 256 events.
func BenchmarkSeal(b *testing.B) {
	for _, suite := range []esdk.Suite{esdk.SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, esdk.SuiteAES256GCMHKDFSHA512CommitKey} {
		// 4096 short statements: a record of the audit tailer's under load.
		for _, c := range []struct{ n, text int }{{1, 1024}, {16, 1024}, {256, 1024}, {4096, 60}} {
			n := c.n
			b.Run(fmt.Sprintf("suite=%04x/batch=%d/text=%d", uint16(suite), n, c.text), func(b *testing.B) {
				p := localKMS(b)
				keys := kms.NewKeyCache(p, dasrecord.ContextFor(streamID), 1<<30, time.Hour)
				defer keys.Close()
				s, _ := NewSealer(keys, Options{StreamID: streamID, Suite: suite})
				defer s.Close()
				evs := events(n, c.text)
				var prev dasrecord.Digest
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					r, err := s.Seal(context.Background(), evs, uint64(i+1), &prev)
					if err != nil {
						b.Fatal(err)
					}
					prev = r.Digest
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
