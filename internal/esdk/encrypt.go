package esdk

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Body AAD content strings (message-body-aad in the spec).
const (
	aadRegularFrame = "AWSKMSEncryptionClient Frame"
	aadFinalFrame   = "AWSKMSEncryptionClient Final Frame"
	aadSingleBlock  = "AWSKMSEncryptionClient Single Block"
)

// Encrypt seals plaintext into an ESDK message with framed content, one
// encrypted data key wrapped by k, and (for signed suites) an ECDSA footer.
// The output is allocated once at its exact size.
func Encrypt(k Keyring, plaintext []byte, o EncryptOptions) ([]byte, error) {
	return encrypt(k, plaintext, o, contentFramed)
}

func encrypt(k Keyring, pt []byte, o EncryptOptions, contentType byte) (out []byte, err error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	id := o.Suite
	if id == 0 {
		id = DefaultSuite
	}
	si := lookupSuite(id)
	if si == nil {
		return nil, fmt.Errorf("%w: unknown algorithm suite 0x%04X", ErrInvalid, uint16(id))
	}
	rnd := o.Rand
	if rnd == nil {
		rnd = rand.Reader
	}

	// Content layout.
	frameLen, nFrames, finalLen := 0, 0, 0
	var bodyLen int
	if contentType == contentFramed {
		frameLen = o.FrameLength
		if frameLen == 0 {
			frameLen = DefaultFrameLength
		}
		if frameLen < 0 || int64(frameLen) > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: frame length %d out of range 1..2^32-1", ErrInvalid, frameLen)
		}
		// A plaintext that is a whole number of frames ends with a full final
		// frame (the spec's SHOULD); an empty one is a single empty final frame.
		nFrames = max(1, (len(pt)+frameLen-1)/frameLen)
		if int64(nFrames) > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: %d bytes need more than 2^32-1 frames of %d", ErrInvalid, len(pt), frameLen)
		}
		finalLen = len(pt) - (nFrames-1)*frameLen
		bodyLen = (nFrames-1)*(4+gcmIVLen+gcmTagLen) + 4 + 4 + gcmIVLen + 4 + gcmTagLen + len(pt)
	} else {
		if int64(len(pt)) > maxNonFramedLen {
			return nil, fmt.Errorf("%w: %d bytes exceed the non-framed limit", ErrInvalid, len(pt))
		}
		bodyLen = gcmIVLen + 8 + len(pt) + gcmTagLen
	}

	// Encryption context, with the verification key for signed suites.
	pairs := make([]pair, 0, len(o.EncryptionContext)+1)
	for ck, cv := range o.EncryptionContext {
		if strings.HasPrefix(ck, reservedPrefix) {
			return nil, fmt.Errorf("%w: encryption context key %q uses the reserved prefix %q", ErrInvalid, ck, reservedPrefix)
		}
		if err := validContextEntry(ck, cv); err != nil {
			return nil, err
		}
		pairs = append(pairs, pair{ck, cv})
	}
	signer := o.SigningKey
	footerLen := 0
	if si.curve != nil {
		if signer == nil {
			if signer, err = ecdsaGenerate(si); err != nil {
				return nil, fmt.Errorf("esdk: generate signing key: %w", err)
			}
		} else if !sameCurve(signer.Curve, si.curve) {
			return nil, fmt.Errorf("%w: suite %v signs with %s, signing key is %s",
				ErrInvalid, si.id, si.curve.Params().Name, signer.Curve.Params().Name)
		}
		point, err := compressPoint(&signer.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: signing key: %v", ErrInvalid, err)
		}
		pairs = append(pairs, pair{publicKeyContextKey, base64.StdEncoding.EncodeToString(point)})
		footerLen = 2 + si.sigLen
	}
	sortPairs(pairs)
	ecLen := contextLen(pairs)
	if ecLen > 0xFFFF {
		return nil, fmt.Errorf("%w: serialized encryption context is %d bytes, limit 65535", ErrInvalid, ecLen)
	}

	idLen := si.msgIDLen()
	infoLen := len(k.Name) + 8 + gcmIVLen
	edkCtLen := si.keyLen + gcmTagLen
	hdrLen := 1 + 2 + idLen + 2 + ecLen + 2 + (2 + len(k.Namespace)) + (2 + infoLen) + (2 + edkCtLen) + 1 + 4
	if si.version == 1 {
		hdrLen += 1 + 4 + 1 + gcmIVLen + gcmTagLen // type, reserved, IV length; auth IV and tag
	} else {
		hdrLen += 32 + gcmTagLen // commitment; auth tag
	}
	out = make([]byte, 0, hdrLen+bodyLen+footerLen)

	dataKey := make([]byte, si.keyLen)
	defer clear(dataKey)
	if _, err := io.ReadFull(rnd, dataKey); err != nil {
		return nil, fmt.Errorf("esdk: random data key: %w", err)
	}

	// Header body.
	out = append(out, si.version)
	if si.version == 1 {
		out = append(out, 0x80)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(si.id))
	msgIDAt := len(out)
	out = out[:msgIDAt+idLen]
	msgID := out[msgIDAt:]
	if _, err := io.ReadFull(rnd, msgID); err != nil {
		return nil, fmt.Errorf("esdk: random message id: %w", err)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(ecLen))
	ecAt := len(out)
	out = appendContext(out, pairs)
	serializedEC := out[ecAt:]

	out = binary.BigEndian.AppendUint16(out, 1) // one encrypted data key
	out = binary.BigEndian.AppendUint16(out, uint16(len(k.Namespace)))
	out = append(out, k.Namespace...)
	out = binary.BigEndian.AppendUint16(out, uint16(infoLen))
	out = append(out, k.Name...)
	out = binary.BigEndian.AppendUint32(out, gcmTagLen*8)
	out = binary.BigEndian.AppendUint32(out, gcmIVLen)
	ivAt := len(out)
	out = out[:ivAt+gcmIVLen]
	wrapIV := out[ivAt:]
	if _, err := io.ReadFull(rnd, wrapIV); err != nil {
		return nil, fmt.Errorf("esdk: random IV: %w", err)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(edkCtLen))
	wrap, err := newGCM(k.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: wrapping key: %v", ErrInvalid, err)
	}
	out = wrap.Seal(out, wrapIV, dataKey, serializedEC)

	contentKey, commitKey, err := deriveKeys(si, dataKey, msgID)
	if err != nil {
		return nil, fmt.Errorf("esdk: derive keys: %w", err)
	}
	defer clear(contentKey)
	out = append(out, contentType)
	if si.version == 1 {
		out = append(out, 0, 0, 0, 0, gcmIVLen)
		out = binary.BigEndian.AppendUint32(out, uint32(frameLen))
	} else {
		out = binary.BigEndian.AppendUint32(out, uint32(frameLen))
		out = append(out, commitKey...)
	}
	hdrBodyLen := len(out)

	// Header authentication: a GCM tag over the header body, zero IV.
	aead, err := newGCM(contentKey)
	if err != nil {
		return nil, fmt.Errorf("esdk: content key: %w", err)
	}
	var iv [gcmIVLen]byte
	if si.version == 1 {
		out = append(out, iv[:]...)
	}
	out = aead.Seal(out, iv[:], nil, out[:hdrBodyLen])

	var h hash.Hash
	if si.curve != nil {
		h = si.hash()
		h.Write(out)
	}

	// Body. One AAD buffer for all frames: message id || label || seq || length.
	aad := make([]byte, 0, 32+len(aadSingleBlock)+12)
	aad = append(aad, msgID...)
	if contentType == contentFramed {
		aad = append(aad, aadRegularFrame...)
		seqAt := len(aad)
		aad = binary.BigEndian.AppendUint32(aad, 0)
		aad = binary.BigEndian.AppendUint64(aad, uint64(frameLen))
		off := 0
		for seq := uint32(1); seq < uint32(nFrames); seq++ {
			at := len(out)
			binary.BigEndian.PutUint32(iv[8:], seq)
			binary.BigEndian.PutUint32(aad[seqAt:], seq)
			out = binary.BigEndian.AppendUint32(out, seq)
			out = append(out, iv[:]...)
			out = aead.Seal(out, iv[:], pt[off:off+frameLen], aad)
			off += frameLen
			if h != nil {
				h.Write(out[at:])
			}
		}
		at := len(out)
		seq := uint32(nFrames)
		aad = append(aad[:len(msgID)], aadFinalFrame...)
		aad = binary.BigEndian.AppendUint32(aad, seq)
		aad = binary.BigEndian.AppendUint64(aad, uint64(finalLen))
		binary.BigEndian.PutUint32(iv[8:], seq)
		out = binary.BigEndian.AppendUint32(out, finalFrameMarker)
		out = binary.BigEndian.AppendUint32(out, seq)
		out = append(out, iv[:]...)
		out = binary.BigEndian.AppendUint32(out, uint32(finalLen))
		out = aead.Seal(out, iv[:], pt[off:], aad)
		if h != nil {
			h.Write(out[at:])
		}
	} else {
		at := len(out)
		aad = append(aad, aadSingleBlock...)
		aad = binary.BigEndian.AppendUint32(aad, 1)
		aad = binary.BigEndian.AppendUint64(aad, uint64(len(pt)))
		binary.BigEndian.PutUint32(iv[8:], 1)
		out = append(out, iv[:]...)
		out = binary.BigEndian.AppendUint64(out, uint64(len(pt)))
		out = aead.Seal(out, iv[:], pt, aad)
		if h != nil {
			h.Write(out[at:])
		}
	}

	if h != nil {
		var sum [64]byte
		sig, err := sign(si, signer, h.Sum(sum[:0]), o.Nonces)
		if err != nil {
			return nil, fmt.Errorf("esdk: sign: %w", err)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(sig)))
		out = append(out, sig...)
	}
	return out, nil
}
