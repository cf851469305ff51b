package dasrecord_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// FuzzDecrypt feeds arbitrary record lines to the decoder: it must never
// panic, and every failure must name its kind with one of the package's
// errors, so that consume and verify can report it precisely.
func FuzzDecrypt(f *testing.F) {
	p, err := kms.OpenLocal(filepath.Join(f.TempDir(), "kms", "master.key"))
	if err != nil {
		f.Fatal(err)
	}
	const id = "cluster-FUZZFUZZFUZZFUZZFUZZFUZZFU"
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(id), 1000, time.Hour)
	defer keys.Close()
	s, err := record.NewSealer(keys, record.Options{StreamID: id})
	if err != nil {
		f.Fatal(err)
	}
	e := event.New(time.Now())
	e.Command, e.CommandText = "QUERY", "SELECT 1"
	sealed, err := s.Seal(context.Background(), []event.Event{e, e}, 1, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed.Line)
	f.Add([]byte(`{"type":"DatabaseActivityMonitoringRecords","version":"1.2","databaseActivityEvents":"AAAA","key":"AAAA"}`))
	f.Add([]byte(`{}`))
	d := &dasrecord.Decrypter{KMS: p, ResourceID: id}
	sentinels := []error{dasrecord.ErrNotRecord, dasrecord.ErrKey, dasrecord.ErrMessage, dasrecord.ErrBinding, dasrecord.ErrPayload, dasrecord.ErrOtherStream}
	f.Fuzz(func(t *testing.T, line []byte) {
		o, err := d.Decrypt(context.Background(), line)
		if err == nil {
			if o == nil || o.Record == nil {
				t.Fatal("nil result without an error")
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error of no known kind: %v", err)
	})
}
