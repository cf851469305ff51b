package mysql

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MaxPayload is the largest payload of one frame. A logical packet of
// MaxPayload bytes or more is split into frames of MaxPayload bytes followed
// by a shorter frame, possibly empty.
const MaxPayload = 1<<24 - 1

// HeaderLen is the size of a frame header: 3-byte length, 1-byte sequence id.
const HeaderLen = 4

// FrameCount is the number of frames a payload of n bytes occupies on the wire.
func FrameCount(n int) int { return n/MaxPayload + 1 }

// ReadPacket reads one logical packet, joining continued frames, into buf
// (reused if large enough) and returns its payload and the sequence id of its
// first frame. Continuation frames must carry consecutive sequence ids
// (ErrSequence). A payload longer than maxLen (if maxLen > 0) fails with
// ErrPacketTooLarge before its body is read; the stream is then unusable.
// io.EOF is returned only if the stream ended cleanly before a packet.
func ReadPacket(r *bufio.Reader, buf []byte, maxLen int) (payload []byte, seq uint8, err error) {
	payload = buf[:0]
	for frames := 0; ; frames++ {
		hdr, err := r.Peek(HeaderLen)
		if err != nil {
			if err == io.EOF && (frames > 0 || len(hdr) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, err
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		s := hdr[3]
		if _, err := r.Discard(HeaderLen); err != nil {
			return nil, 0, err
		}
		if frames == 0 {
			seq = s
		} else if want := seq + uint8(frames); s != want {
			return nil, 0, continuationErr(frames, s, want)
		}
		total := len(payload) + n
		if maxLen > 0 && total > maxLen {
			return nil, 0, tooLargeErr(total, maxLen)
		}
		if total > cap(payload) {
			// Size for what is announced (bounded by maxLen), plus one
			// more frame when the packet continues.
			newCap := total
			if n == MaxPayload {
				newCap += MaxPayload
			}
			if maxLen > 0 && newCap > maxLen {
				newCap = maxLen
			}
			grown := make([]byte, len(payload), newCap)
			copy(grown, payload)
			payload = grown
		}
		payload = payload[:total]
		if _, err := io.ReadFull(r, payload[total-n:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, fmt.Errorf("mysql: reading %d-byte frame: %w", n, err)
		}
		if n < MaxPayload {
			return payload, seq, nil
		}
	}
}

func continuationErr(frame int, got, want uint8) error {
	return fmt.Errorf("mysql: continuation frame %d: sequence id %d, want %d: %w", frame, got, want, ErrSequence)
}

func tooLargeErr(total, maxLen int) error {
	return fmt.Errorf("mysql: packet of at least %d bytes exceeds the maximum of %d: %w", total, maxLen, ErrPacketTooLarge)
}

// ScanPacket finds the logical packet at the start of b, as ReadPacket reads
// it from a stream: end is the length of its frames in b, seq the sequence id
// of the first. While the packet is incomplete, end is 0 and need is how many
// bytes of b it takes to go on (at least the next frame). The checks and
// errors are ReadPacket's.
func ScanPacket(b []byte, maxLen int) (end int, seq uint8, need int, err error) {
	total := 0
	for frames := 0; ; frames++ {
		if len(b)-end < HeaderLen {
			return 0, 0, end + HeaderLen, nil
		}
		n := int(b[end]) | int(b[end+1])<<8 | int(b[end+2])<<16
		if frames == 0 {
			seq = b[end+3]
		} else if want := seq + uint8(frames); b[end+3] != want {
			return 0, 0, 0, continuationErr(frames, b[end+3], want)
		}
		total += n
		if maxLen > 0 && total > maxLen {
			return 0, 0, 0, tooLargeErr(total, maxLen)
		}
		if len(b)-end-HeaderLen < n {
			return 0, 0, end + HeaderLen + n, nil
		}
		end += HeaderLen + n
		if n < MaxPayload {
			return end, seq, 0, nil
		}
	}
}

// PacketPayload returns the payload of a packet that ScanPacket found:
// a slice of frames when it is one frame, else the frames' bodies joined.
func PacketPayload(frames []byte) []byte {
	n := int(frames[0]) | int(frames[1])<<8 | int(frames[2])<<16
	if HeaderLen+n == len(frames) {
		return frames[HeaderLen:]
	}
	payload := make([]byte, 0, len(frames))
	for len(frames) > 0 {
		n := int(frames[0]) | int(frames[1])<<8 | int(frames[2])<<16
		payload = append(payload, frames[HeaderLen:HeaderLen+n]...)
		frames = frames[HeaderLen+n:]
	}
	return payload
}

// ReadFrame reads one frame (header and body) into buf, reused if large
// enough, for relaying byte for byte. more reports that the body is
// MaxPayload long, so the logical packet continues in the next frame.
func ReadFrame(r *bufio.Reader, buf []byte) (frame []byte, more bool, err error) {
	hdr, err := r.Peek(HeaderLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	total := HeaderLen + n
	if total > cap(buf) {
		buf = make([]byte, total)
	}
	frame = buf[:total]
	if _, err := io.ReadFull(r, frame); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, fmt.Errorf("mysql: reading %d-byte frame: %w", n, err)
	}
	return frame, n == MaxPayload, nil
}

// FrameSeq returns the sequence id of a frame returned by ReadFrame.
func FrameSeq(frame []byte) uint8 { return frame[3] }

// FramePayload returns the body of a frame returned by ReadFrame.
func FramePayload(frame []byte) []byte { return frame[HeaderLen:] }

// AppendPacket appends payload to dst as frames starting at sequence id seq,
// splitting it as the protocol requires, and returns the extended buffer and
// the sequence id of the next packet.
func AppendPacket(dst []byte, seq uint8, payload []byte) ([]byte, uint8) {
	for {
		n := len(payload)
		if n > MaxPayload {
			n = MaxPayload
		}
		dst = append(dst, byte(n), byte(n>>8), byte(n>>16), seq)
		dst = append(dst, payload[:n]...)
		seq++
		payload = payload[n:]
		if n < MaxPayload {
			return dst, seq
		}
	}
}

// WritePacket writes payload as one logical packet starting at sequence id
// seq and returns the sequence id of the next packet.
func WritePacket(w io.Writer, seq uint8, payload []byte) (uint8, error) {
	for {
		n := len(payload)
		if n > MaxPayload {
			n = MaxPayload
		}
		hdr := [HeaderLen]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}
		if _, err := w.Write(hdr[:]); err != nil {
			return seq, fmt.Errorf("mysql: write packet: %w", err)
		}
		if n > 0 {
			if _, err := w.Write(payload[:n]); err != nil {
				return seq, fmt.Errorf("mysql: write packet: %w", err)
			}
		}
		seq++
		payload = payload[n:]
		if n < MaxPayload {
			return seq, nil
		}
	}
}

// SeqChecker verifies sequence ids within one exchange. Reset it when a new
// command starts (the client's command has sequence id 0).
type SeqChecker struct{ next uint8 }

// Reset starts a new exchange: the next packet must have sequence id 0.
func (c *SeqChecker) Reset() { c.next = 0 }

// Next returns the sequence id expected next.
func (c *SeqChecker) Next() uint8 { return c.next }

// Check verifies a packet read with ReadPacket (the sequence id of its first
// frame and its payload length) and advances past all of its frames.
func (c *SeqChecker) Check(seq uint8, payloadLen int) error {
	if seq != c.next {
		return fmt.Errorf("mysql: sequence id %d, want %d: %w", seq, c.next, ErrSequence)
	}
	c.next += uint8(FrameCount(payloadLen))
	return nil
}

// CheckFrame verifies the sequence id of one frame and advances by one.
func (c *SeqChecker) CheckFrame(seq uint8) error {
	if seq != c.next {
		return fmt.Errorf("mysql: sequence id %d, want %d: %w", seq, c.next, ErrSequence)
	}
	c.next++
	return nil
}
