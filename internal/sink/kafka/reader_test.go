package kafka

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/das-mysql/das/pkg/dasrecord"
)

// A plain (non-idempotent) producer's retry can write a record twice; the
// reader drops such exact duplicates, and only those.
func TestReaderDropsExactDuplicates(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "das"))
	ch := newChain("cluster-DUP", 64)
	var lines [][]byte
	for range 4 {
		_, l := ch.next()
		lines = append(lines, l)
	}
	// A different record claiming seq 3: not a duplicate, verify must see it.
	forged := append([]byte(nil), lines[2]...)
	forged[len(`{"type":"DatabaseActivityMonitoringRecords","version":"1.2","databaseActivityEvents":"`)] ^= 1
	sent := [][]byte{lines[0], lines[1], lines[2], lines[1], lines[2], lines[3], lines[3], forged}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("das"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, l := range sent {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte("cluster-DUP"), Value: l}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	got, where, r := readAll(t, readerOptions(c, "das"))
	want := [][]byte{lines[0], lines[1], lines[2], lines[3], forged}
	if len(got) != len(want) {
		t.Fatalf("read %d records (%v), want %d", len(got), where, len(want))
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("record %d (%s) is not the expected one", i, where[i])
		}
	}
	if where[3] != "das/0/5" || r.Duplicates() != 3 {
		t.Fatalf("where %v, %d duplicates; want das/0/5 for seq 4 and 3 duplicates", where, r.Duplicates())
	}
}

func writeN(t testing.TB, s *Sink, ch *chain, n int) {
	t.Helper()
	w := startWriter(s)
	for range n {
		w.append(ch.next())
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderConsumerGroup(t *testing.T) {
	c := newCluster(t)
	s := openSink(t, sinkOptions(c, "das", "cluster-GRP"))
	ch := newChain("cluster-GRP", 100)
	writeN(t, s, ch, 300)

	o := readerOptions(c, "das")
	o.Group = "auditors"
	o.IdleTimeout = 2 * time.Second
	lines, _, _ := readAll(t, o)
	if n := checkChains(t, lines); n["cluster-GRP"] != 300 {
		t.Fatalf("first group read: %v", n)
	}
	// The group resumes after what it was given.
	writeN(t, s, ch, 50)
	lines, _, _ = readAll(t, o)
	if len(lines) != 50 {
		t.Fatalf("second group read: %d records, want the 50 new ones", len(lines))
	}
	if r, _ := dasrecord.Parse(lines[0]); r.Seq != 301 {
		t.Fatalf("second group read starts at seq %d, want 301", r.Seq)
	}
	// Another group reads everything.
	o.Group = "siem"
	if lines, _, _ = readAll(t, o); len(lines) != 350 {
		t.Fatalf("new group read %d records, want 350", len(lines))
	}
	// start=partition:offset does not mix with a group.
	o.Start = "0:5"
	if _, err := OpenReader(context.Background(), o); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Fatalf("group with explicit offsets: %v", err)
	}
}

func TestReaderStartAndFollow(t *testing.T) {
	c := newCluster(t)
	s := openSink(t, sinkOptions(c, "das", "cluster-FOL"))
	ch := newChain("cluster-FOL", 100)
	writeN(t, s, ch, 20)
	p := s.Partition()

	// Explicit offset: from record 11 on.
	o := readerOptions(c, "das")
	o.Start = strconv.Itoa(int(p)) + ":10"
	lines, where, _ := readAll(t, o)
	if len(lines) != 10 || !strings.HasSuffix(where[0], "/10") {
		t.Fatalf("start=%s: %d records from %v", o.Start, len(lines), where)
	}
	// latest without follow: nothing.
	o.Start = "latest"
	if lines, _, _ = readAll(t, o); len(lines) != 0 {
		t.Fatalf("start=latest read %d old records", len(lines))
	}
	// latest with follow: the records written after open, as they come.
	o.Follow = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := OpenReader(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wrote := make(chan error, 1)
	go func() {
		w := startWriter(s)
		for range 5 {
			w.append(ch.next())
		}
		wrote <- w.finish()
	}()
	for i := range 5 {
		line, _, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rec, _ := dasrecord.Parse(line); rec.Seq != uint64(21+i) {
			t.Fatalf("followed record %d has seq %d", i, rec.Seq)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// Following waits: the context ends it.
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if _, _, err := r.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follow at the end: %v", err)
	}
	if _, _, err := readAllErr(o, "start=9:0"); err == nil || !strings.Contains(err.Error(), "partition 9") {
		t.Fatalf("start on a missing partition: %v", err)
	}
}

func readAllErr(o ReaderOptions, start string) ([][]byte, *Reader, error) {
	o.Start = strings.TrimPrefix(start, "start=")
	r, err := OpenReader(context.Background(), o)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var out [][]byte
	for {
		l, _, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		out = append(out, l)
	}
}

func TestDasFields(t *testing.T) {
	for _, tc := range []struct {
		line string
		id   string
		seq  uint64
		ok   bool
	}{
		{`{"type":"DatabaseActivityMonitoringRecords","version":"1.2","databaseActivityEvents":"AAA","key":"BBB","dasStreamId":"cluster-X","dasSeq":42,"dasPrev":"ab"}`, "cluster-X", 42, true},
		{`{"type":"DatabaseActivityMonitoringRecords","version":"1.2","databaseActivityEvents":"AAA","key":"BBB"}`, "", 0, false},
		{`{"type":"x,\"dasStreamId\":\"evil\",\"dasSeq\":1","dasStreamId":"cluster-Y","dasSeq":7,"dasPrev":""}`, "cluster-Y", 7, true},
		{`garbage,"dasStreamId":`, "", 0, false},
	} {
		id, seq, ok := dasFields([]byte(tc.line))
		if id != tc.id || seq != tc.seq || ok != tc.ok {
			t.Errorf("dasFields(%s) = %q %d %v", tc.line, id, seq, ok)
		}
	}
}
