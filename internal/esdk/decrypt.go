package esdk

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// reader walks a message. The first short read sets err and every later read
// returns zero values, so callers check err only where a value steers a loop
// or an allocation. Reads never allocate: they slice the message.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("%s: needs %d bytes at offset %d, message has %d", what, n, r.off, len(r.b)-r.off)
		return nil
	}
	b := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8(what string) byte {
	if b := r.bytes(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(what string) int {
	if b := r.bytes(2, what); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.bytes(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if b := r.bytes(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Decrypt opens an ESDK message with the raw AES keyring k: it checks the
// header, unwraps the data key, checks key commitment (format 2), the header
// tag, every frame's tag, the signature (signed suites), and that nothing
// follows the message. No allocation exceeds len(msg).
func Decrypt(k Keyring, msg []byte, o DecryptOptions) (*Message, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	r := &reader{b: msg}

	version := r.u8("version")
	if r.err != nil {
		return nil, r.err
	}
	switch version {
	case 1:
		if t := r.u8("type"); r.err == nil && t != 0x80 {
			return nil, fmt.Errorf("%w: message type 0x%02X at offset 1", ErrUnsupported, t)
		}
	case 2:
	default:
		return nil, fmt.Errorf("%w: message format version %d at offset 0", ErrUnsupported, version)
	}
	suiteAt := r.off
	id := Suite(r.u16("algorithm suite"))
	if r.err != nil {
		return nil, r.err
	}
	si := lookupSuite(id)
	if si == nil {
		return nil, fmt.Errorf("%w: algorithm suite 0x%04X at offset %d", ErrUnsupported, uint16(id), suiteAt)
	}
	if si.version != version {
		return nil, fmt.Errorf("%w: suite %v belongs to format %d, header is format %d", ErrMalformed, id, si.version, version)
	}
	if o.RequireCommitment && !si.commit {
		return nil, fmt.Errorf("%w: policy requires a committing suite, message uses %v", ErrCommitment, id)
	}
	msgID := r.bytes(si.msgIDLen(), "message id")

	aadLen := r.u16("AAD length")
	ecAt := r.off
	ecRaw := r.bytes(aadLen, "encryption context")
	if r.err != nil {
		return nil, r.err
	}
	ec, keyringAAD, err := parseContext(ecRaw, ecAt)
	if err != nil {
		return nil, err
	}

	edkAt := r.off
	edkCount := r.u16("encrypted data key count")
	if r.err != nil {
		return nil, r.err
	}
	if edkCount == 0 {
		return nil, fmt.Errorf("%w: no encrypted data keys at offset %d", ErrMalformed, edkAt)
	}
	if o.MaxEncryptedDataKeys > 0 && edkCount > o.MaxEncryptedDataKeys {
		return nil, fmt.Errorf("%w: %d encrypted data keys, limit %d", ErrTooManyKeys, edkCount, o.MaxEncryptedDataKeys)
	}
	var (
		dataKey  []byte
		named    int   // EDKs that name this keyring
		unwrapEr error // why the last named one failed
		wrap     cipher.AEAD
	)
	defer func() { clear(dataKey) }()
	for i := 0; i < edkCount; i++ {
		provider := r.bytes(r.u16("key provider id length"), "key provider id")
		info := r.bytes(r.u16("key provider info length"), "key provider info")
		ct := r.bytes(r.u16("encrypted data key length"), "encrypted data key")
		if r.err != nil {
			return nil, r.err
		}
		if dataKey != nil || string(provider) != k.Namespace {
			continue
		}
		iv, ok := parseProviderInfo(info, k.Name)
		if !ok {
			continue
		}
		named++
		if wrap == nil {
			if wrap, err = newGCM(k.Key); err != nil {
				return nil, fmt.Errorf("%w: wrapping key: %v", ErrInvalid, err)
			}
		}
		if len(ct) < gcmTagLen {
			unwrapEr = fmt.Errorf("encrypted data key %d is %d bytes", i, len(ct))
			continue
		}
		key, err := wrap.Open(nil, iv, ct, keyringAAD)
		switch {
		case err != nil:
			unwrapEr = fmt.Errorf("encrypted data key %d: %v", i, err)
		case len(key) != si.keyLen:
			unwrapEr = fmt.Errorf("encrypted data key %d holds %d bytes, suite needs %d", i, len(key), si.keyLen)
			clear(key)
		default:
			dataKey = key
		}
	}

	ctAt := r.off
	contentType := r.u8("content type")
	var frameLen uint32
	var commitment []byte
	if version == 1 {
		resAt := r.off
		if res := r.bytes(4, "reserved"); r.err == nil && !bytes.Equal(res, []byte{0, 0, 0, 0}) {
			return nil, fmt.Errorf("%w: reserved bytes %x at offset %d are not zero", ErrMalformed, res, resAt)
		}
		ivLenAt := r.off
		if n := r.u8("IV length"); r.err == nil && n != gcmIVLen {
			return nil, fmt.Errorf("%w: IV length %d at offset %d, suite uses %d", ErrMalformed, n, ivLenAt, gcmIVLen)
		}
		frameLen = r.u32("frame length")
	} else {
		frameLen = r.u32("frame length")
		commitment = r.bytes(32, "key commitment")
	}
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case contentType == contentNonFramed && frameLen != 0:
		return nil, fmt.Errorf("%w: non-framed content with frame length %d", ErrMalformed, frameLen)
	case contentType == contentFramed && frameLen == 0:
		return nil, fmt.Errorf("%w: framed content with frame length 0", ErrMalformed)
	case contentType != contentNonFramed && contentType != contentFramed:
		return nil, fmt.Errorf("%w: content type 0x%02X at offset %d", ErrUnsupported, contentType, ctAt)
	}
	hdrEnd := r.off
	var headerIV []byte
	if version == 1 {
		headerIV = r.bytes(gcmIVLen, "header IV")
	} else {
		headerIV = make([]byte, gcmIVLen)
	}
	headerTag := r.bytes(gcmTagLen, "header authentication tag")
	if r.err != nil {
		return nil, r.err
	}

	if dataKey == nil {
		if named == 0 {
			return nil, fmt.Errorf("%w: none of %d encrypted data keys is for %s/%s", ErrNoMatchingKey, edkCount, k.Namespace, k.Name)
		}
		return nil, fmt.Errorf("%w: %s/%s does not unwrap the data key (wrong key?): %v", ErrNoMatchingKey, k.Namespace, k.Name, unwrapEr)
	}
	contentKey, commitKey, err := deriveKeys(si, dataKey, msgID)
	if err != nil {
		return nil, fmt.Errorf("esdk: derive keys: %w", err)
	}
	defer clear(contentKey)
	if si.commit && subtle.ConstantTimeCompare(commitKey, commitment) != 1 {
		return nil, fmt.Errorf("%w: commitment in header does not match the data key", ErrCommitment)
	}
	aead, err := newGCM(contentKey)
	if err != nil {
		return nil, fmt.Errorf("esdk: content key: %w", err)
	}
	if _, err := aead.Open(nil, headerIV, headerTag, msg[:hdrEnd]); err != nil {
		return nil, fmt.Errorf("%w: header tag at offset %d", ErrAuthentication, hdrEnd)
	}

	// The verification key is checked before the body so a bad one fails fast.
	var pub *ecdsa.PublicKey
	if si.curve != nil {
		b64, ok := ec[publicKeyContextKey]
		if !ok {
			return nil, fmt.Errorf("%w: signed suite %v without %q in the encryption context", ErrMalformed, id, publicKeyContextKey)
		}
		point, err := base64.StdEncoding.DecodeString(b64)
		if err == nil {
			pub, err = parseCompressedPoint(si.curve, point)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, publicKeyContextKey, err)
		}
	}

	// Body. The body holds at least as many bytes as its plaintext, so the
	// remaining length bounds the allocation whatever the lengths claim.
	plaintext := make([]byte, 0, len(msg)-r.off)
	aad := make([]byte, 0, 32+len(aadSingleBlock)+12)
	aad = append(aad, msgID...)
	if contentType == contentFramed {
		for want := uint32(1); ; want++ {
			at := r.off
			seq := r.u32("frame sequence number")
			final := seq == finalFrameMarker
			if final {
				seq = r.u32("final frame sequence number")
			}
			if r.err != nil {
				return nil, r.err
			}
			if seq != want {
				return nil, fmt.Errorf("%w: frame at offset %d has sequence number %d, want %d", ErrMalformed, at, seq, want)
			}
			iv := r.bytes(gcmIVLen, "frame IV")
			n := frameLen
			label := aadRegularFrame
			if final {
				label = aadFinalFrame
				lenAt := r.off
				if n = r.u32("final frame length"); r.err == nil && n > frameLen {
					return nil, fmt.Errorf("%w: final frame length %d at offset %d exceeds frame length %d", ErrMalformed, n, lenAt, frameLen)
				}
			}
			sealed := r.bytes(int(n)+gcmTagLen, "frame content")
			if r.err != nil {
				return nil, r.err
			}
			aad = append(aad[:len(msgID)], label...)
			aad = binary.BigEndian.AppendUint32(aad, seq)
			aad = binary.BigEndian.AppendUint64(aad, uint64(n))
			if plaintext, err = aead.Open(plaintext, iv, sealed, aad); err != nil {
				return nil, fmt.Errorf("%w: frame %d at offset %d", ErrAuthentication, seq, at)
			}
			if final {
				break
			}
			if want == finalFrameMarker-1 {
				return nil, fmt.Errorf("%w: no final frame after 2^32-2 frames", ErrMalformed)
			}
		}
	} else {
		at := r.off
		iv := r.bytes(gcmIVLen, "IV")
		n := r.u64("content length")
		if r.err != nil {
			return nil, r.err
		}
		if n > maxNonFramedLen || n > uint64(len(msg)-r.off) {
			return nil, fmt.Errorf("%w: content length %d at offset %d exceeds the message", ErrMalformed, n, at+gcmIVLen)
		}
		sealed := r.bytes(int(n)+gcmTagLen, "content")
		if r.err != nil {
			return nil, r.err
		}
		aad = append(aad, aadSingleBlock...)
		aad = binary.BigEndian.AppendUint32(aad, 1)
		aad = binary.BigEndian.AppendUint64(aad, n)
		if plaintext, err = aead.Open(plaintext, iv, sealed, aad); err != nil {
			return nil, fmt.Errorf("%w: content at offset %d", ErrAuthentication, at)
		}
	}
	bodyEnd := r.off

	if pub != nil {
		sig := r.bytes(r.u16("signature length"), "signature")
		if r.err != nil {
			return nil, r.err
		}
		h := si.hash()
		h.Write(msg[:bodyEnd])
		var sum [64]byte
		if !ecdsa.VerifyASN1(pub, h.Sum(sum[:0]), sig) {
			return nil, fmt.Errorf("%w: footer at offset %d", ErrSignature, bodyEnd)
		}
	}
	if r.off != len(msg) {
		return nil, fmt.Errorf("%w: %d trailing bytes at offset %d", ErrMalformed, len(msg)-r.off, r.off)
	}
	return &Message{
		Suite:             id,
		Version:           version,
		MessageID:         append([]byte(nil), msgID...),
		EncryptionContext: ec,
		Plaintext:         plaintext,
	}, nil
}

// parseProviderInfo splits a raw AES keyring's provider info (key name ||
// tag bits || IV length || IV) and returns the IV when it is for this key
// name with GCM IV 12 / tag 16.
func parseProviderInfo(info []byte, name string) ([]byte, bool) {
	if len(info) != len(name)+8+gcmIVLen || string(info[:len(name)]) != name {
		return nil, false
	}
	rest := info[len(name):]
	if binary.BigEndian.Uint32(rest) != gcmTagLen*8 || binary.BigEndian.Uint32(rest[4:]) != gcmIVLen {
		return nil, false
	}
	return rest[8:], true
}

// parseContext reads the serialized encryption context (the AAD field) that
// starts at offset base. It returns the context and its canonical
// serialization, the raw AES keyring's AAD: the raw bytes when already
// sorted, as every SDK writes them.
func parseContext(raw []byte, base int) (map[string]string, []byte, error) {
	ec := map[string]string{}
	if len(raw) == 0 {
		return ec, nil, nil
	}
	r := &reader{b: raw}
	count := r.u16("encryption context pair count")
	if r.err != nil {
		return nil, nil, fmt.Errorf("%w (AAD at offset %d)", r.err, base)
	}
	if count == 0 {
		// Older SDKs wrote an empty context as count 0; the ESDK still reads it.
		if len(raw) != 2 {
			return nil, nil, fmt.Errorf("%w: encryption context of 0 pairs in %d bytes at offset %d", ErrMalformed, len(raw), base)
		}
		return ec, nil, nil
	}
	if count*4 > len(raw)-2 {
		return nil, nil, fmt.Errorf("%w: %d encryption context pairs cannot fit %d bytes at offset %d", ErrMalformed, count, len(raw), base)
	}
	sorted := true
	var prev []byte
	for i := 0; i < count; i++ {
		at := base + r.off
		key := r.bytes(r.u16("context key length"), "context key")
		val := r.bytes(r.u16("context value length"), "context value")
		if r.err != nil {
			return nil, nil, fmt.Errorf("%w (AAD at offset %d)", r.err, base)
		}
		if !utf8.Valid(key) || !utf8.Valid(val) {
			return nil, nil, fmt.Errorf("%w: encryption context pair %d at offset %d is not UTF-8", ErrMalformed, i, at)
		}
		if _, dup := ec[string(key)]; dup {
			return nil, nil, fmt.Errorf("%w: duplicate encryption context key %q at offset %d", ErrMalformed, key, at)
		}
		if i > 0 && bytes.Compare(prev, key) > 0 {
			sorted = false
		}
		prev = key
		ec[string(key)] = string(val)
	}
	if r.off != len(raw) {
		return nil, nil, fmt.Errorf("%w: AAD length %d but pairs end after %d bytes (offset %d)", ErrMalformed, len(raw), r.off, base)
	}
	if sorted {
		return ec, raw, nil
	}
	pairs := make([]pair, 0, len(ec))
	for k, v := range ec {
		pairs = append(pairs, pair{k, v})
	}
	sortPairs(pairs)
	return ec, appendContext(make([]byte, 0, len(raw)), pairs), nil
}
