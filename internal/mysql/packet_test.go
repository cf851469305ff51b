package mysql

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadWritePacketRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 250, MaxPayload - 1, MaxPayload, MaxPayload + 1, 2 * MaxPayload, 2*MaxPayload + 7}
	for _, n := range sizes {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		var wire bytes.Buffer
		next, err := WritePacket(&wire, 3, payload)
		if err != nil {
			t.Fatal(err)
		}
		frames := FrameCount(n)
		if want := uint8(3 + frames); next != want {
			t.Errorf("size %d: next seq %d, want %d", n, next, want)
		}
		if wire.Len() != n+HeaderLen*frames {
			t.Errorf("size %d: %d bytes on the wire, want %d", n, wire.Len(), n+HeaderLen*frames)
		}
		appended, _ := AppendPacket(nil, 3, payload)
		if !bytes.Equal(appended, wire.Bytes()) {
			t.Errorf("size %d: AppendPacket differs from WritePacket", n)
		}
		raw := bytes.Clone(wire.Bytes())

		got, seq, err := ReadPacket(bufio.NewReader(bytes.NewReader(raw)), nil, 0)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if seq != 3 || !bytes.Equal(got, payload) {
			t.Errorf("size %d: got %d bytes seq %d", n, len(got), seq)
		}
		var sc SeqChecker
		sc.Reset()
		for range 3 {
			_ = sc.CheckFrame(sc.Next())
		}
		if err := sc.Check(seq, len(got)); err != nil || sc.Next() != next {
			t.Errorf("size %d: SeqChecker: %v, next %d want %d", n, err, sc.Next(), next)
		}

		// Frame by frame, the relayed bytes are the input bytes.
		r := bufio.NewReader(bytes.NewReader(raw))
		var relayed []byte
		count := 0
		for {
			f, more, err := ReadFrame(r, nil)
			if err != nil {
				t.Fatalf("size %d frame %d: %v", n, count, err)
			}
			relayed = append(relayed, f...)
			count++
			if !more {
				break
			}
		}
		if count != frames || !bytes.Equal(relayed, raw) {
			t.Errorf("size %d: %d frames relayed (want %d), equal=%v", n, count, frames, bytes.Equal(relayed, raw))
		}
	}
}

func TestReadPacketExactMultipleEndsWithEmptyFrame(t *testing.T) {
	payload := bytes.Repeat([]byte{0xab}, MaxPayload)
	var wire bytes.Buffer
	if _, err := WritePacket(&wire, 0, payload); err != nil {
		t.Fatal(err)
	}
	tail := wire.Bytes()[wire.Len()-HeaderLen:]
	if !bytes.Equal(tail, []byte{0, 0, 0, 1}) {
		t.Fatalf("last frame header % x, want empty frame with seq 1", tail)
	}
	// Followed by another packet: the reader must stop after the empty frame.
	_, _ = WritePacket(&wire, 2, []byte("next"))
	r := bufio.NewReader(&wire)
	got, _, err := ReadPacket(r, nil, 0)
	if err != nil || len(got) != MaxPayload {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	got, seq, err := ReadPacket(r, nil, 0)
	if err != nil || string(got) != "next" || seq != 2 {
		t.Fatalf("second packet %q seq %d %v", got, seq, err)
	}
}

func TestReadPacketErrors(t *testing.T) {
	big := bytes.Repeat([]byte{1}, MaxPayload+10)
	var wire bytes.Buffer
	_, _ = WritePacket(&wire, 0, big)
	badSeq := bytes.Clone(wire.Bytes())
	badSeq[HeaderLen+MaxPayload+3] = 5

	tests := []struct {
		name   string
		in     []byte
		maxLen int
		want   error
	}{
		{"too large", wire.Bytes(), MaxPayload, ErrPacketTooLarge},
		{"small limit", []byte{10, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 9, ErrPacketTooLarge},
		{"continuation seq", badSeq, 0, ErrSequence},
		{"truncated body", []byte{10, 0, 0, 0, 1, 2}, 0, io.ErrUnexpectedEOF},
		{"truncated header", []byte{10, 0}, 0, io.ErrUnexpectedEOF},
		{"clean EOF", nil, 0, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadPacket(bufio.NewReader(bytes.NewReader(tt.in)), nil, tt.maxLen)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadPacketReusesBuffer(t *testing.T) {
	var wire bytes.Buffer
	_, _ = WritePacket(&wire, 0, []byte("hello"))
	buf := make([]byte, 0, 64)
	got, _, err := ReadPacket(bufio.NewReader(&wire), buf, 0)
	if err != nil || &got[0] != &buf[:1][0] {
		t.Fatalf("buffer not reused (%v)", err)
	}
}

func TestSeqChecker(t *testing.T) {
	var c SeqChecker
	if err := c.Check(0, 10); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(2, 10); !errors.Is(err, ErrSequence) {
		t.Fatalf("want ErrSequence, got %v", err)
	}
	if err := c.Check(1, MaxPayload); err != nil || c.Next() != 3 {
		t.Fatalf("err %v next %d", err, c.Next())
	}
}
