package kms

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Errors a Local provider returns from Decrypt, for errors.Is. The returned
// error always carries the specifics (key ids, lengths) in its message.
var (
	ErrMalformedBlob   = errors.New("not a local data key blob")
	ErrWrongMasterKey  = errors.New("wrong local master key")
	ErrContextMismatch = errors.New("encryption context mismatch")
	ErrAuthFailed      = errors.New("authentication failed (blob corrupted)")
)

// Local blob layout, version 1 (76 bytes):
//
//	0  magic "DLK" (das local key)
//	3  version 0x01
//	4  master key id: first 8 bytes of SHA-256(master key)
//	12 context fingerprint: first 4 bytes of SHA-256(canonical context)
//	16 nonce (12 bytes)
//	28 AES-256-GCM ciphertext of the 32-byte data key + 16-byte tag
//
// The AAD is bytes 0..16 followed by the canonical context, so the header and
// the context are both authenticated. The fingerprint only exists to tell a
// context mismatch apart from corruption; the context is not secret (KMS logs
// it in the clear too).
const (
	localMagic      = "DLK"
	localVersion    = 1
	localIDLen      = 8
	localFPLen      = 4
	localNonceLen   = 12
	localHeaderLen  = 4 + localIDLen + localFPLen // authenticated header
	localBlobLen    = localHeaderLen + localNonceLen + DataKeySize + 16
	masterKeySize   = 32
	masterKeyHexLen = 2 * masterKeySize
)

// DataKeySize is the size of every data key: 256 bits.
const DataKeySize = 32

// Local is the embedded default provider: a 256-bit master key in a file that
// wraps data keys with AES-256-GCM. It needs nothing external to start.
type Local struct {
	path  string
	id    string // hex of idRaw
	idRaw [localIDLen]byte
	aead  cipher.AEAD
}

// OpenLocal opens the master key at path, creating it (mode 0600, directory
// 0700) on first use. It refuses an existing key file that group or others can
// access, as a leaked master key unwraps every data key ever made with it.
func OpenLocal(path string) (*Local, error) {
	path = filepath.Clean(path)
	key, err := readMasterKey(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err = createMasterKey(path)
	}
	if err != nil {
		return nil, err
	}
	defer zero(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("kms: local %s: %w", path, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("kms: local %s: %w", path, err)
	}
	sum := sha256.Sum256(key)
	l := &Local{path: path, id: hex.EncodeToString(sum[:localIDLen]), aead: aead}
	copy(l.idRaw[:], sum[:localIDLen])
	return l, nil
}

// readMasterKey reads a key file holding either 64 hex digits (what we write,
// and what `openssl rand -hex 32` makes) or 32 raw bytes.
func readMasterKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("kms: local master key %s: %w", path, err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kms: local master key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("kms: local master key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("kms: local master key %s has mode %04o, open to group or others; "+
			"refusing to use it (fix: chmod 600 %s)", path, perm, path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("kms: local master key %s: %w", path, err)
	}
	defer zero(raw)
	if len(raw) == masterKeySize {
		return bytes.Clone(raw), nil
	}
	text := bytes.TrimSpace(raw)
	if len(text) == masterKeyHexLen {
		key := make([]byte, masterKeySize)
		if _, err := hex.Decode(key, text); err == nil {
			return key, nil
		}
		zero(key)
	}
	return nil, fmt.Errorf("kms: local master key %s: want 64 hex digits or 32 raw bytes, file has %d bytes",
		path, len(raw))
}

// createMasterKey writes a fresh key to a temporary file and links it into
// place, so that a concurrent opener never sees a partial file, and two racing
// creators agree on whichever key landed first.
func createMasterKey(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kms: local master key: create %s: %w", dir, err)
	}
	key := make([]byte, masterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("kms: local master key: %w", err)
	}
	defer zero(key)
	text := make([]byte, masterKeyHexLen+1)
	defer zero(text)
	hex.Encode(text, key)
	text[masterKeyHexLen] = '\n'

	tmp, err := os.CreateTemp(dir, ".master.key.*")
	if err != nil {
		return nil, fmt.Errorf("kms: local master key: create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod states the intent and ignores umask quirks.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(text)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("kms: local master key: write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		// No hard links here (some FUSE and network filesystems): fall back to
		// an exclusive create, never to a rename that could replace a key.
		if err := writeExclusive(path, text); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("kms: local master key: create %s: %w", path, err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	// Read back whatever is in place: ours, or the winner of a race.
	return readMasterKey(path)
}

func writeExclusive(path string, text []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // a partial key must not be found by the next open
	}
	return err
}

// Name implements Provider.
func (l *Local) Name() string { return "local:" + l.path }

// KeyID is the master key's id as it appears in blobs and errors: 16 hex digits.
func (l *Local) KeyID() string { return l.id }

// GenerateDataKey implements Provider.
func (l *Local) GenerateDataKey(ctx context.Context, encCtx map[string]string) (DataKey, error) {
	if err := ctx.Err(); err != nil {
		return DataKey{}, fmt.Errorf("kms: %s: generate data key: %w", l.Name(), err)
	}
	pt := make([]byte, DataKeySize)
	blob := make([]byte, localHeaderLen+localNonceLen, localBlobLen)
	copy(blob, localMagic)
	blob[3] = localVersion
	copy(blob[4:4+localIDLen], l.idRaw[:])
	cc := canonicalContext(encCtx)
	fp := sha256.Sum256(cc)
	copy(blob[4+localIDLen:localHeaderLen], fp[:localFPLen])
	if _, err := rand.Read(pt); err != nil {
		return DataKey{}, fmt.Errorf("kms: %s: generate data key: %w", l.Name(), err)
	}
	if _, err := rand.Read(blob[localHeaderLen:]); err != nil {
		return DataKey{}, fmt.Errorf("kms: %s: generate data key: %w", l.Name(), err)
	}
	nonce := blob[localHeaderLen : localHeaderLen+localNonceLen]
	blob = l.aead.Seal(blob, nonce, pt, l.aad(blob[:localHeaderLen], cc))
	return DataKey{Plaintext: pt, Ciphertext: blob, KeyID: l.id}, nil
}

// Decrypt implements Provider.
func (l *Local) Decrypt(ctx context.Context, ciphertext []byte, encCtx map[string]string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kms: %s: decrypt: %w", l.Name(), err)
	}
	if len(ciphertext) < 4 || string(ciphertext[:3]) != localMagic {
		return nil, fmt.Errorf("kms: %s: decrypt: %w (bad magic)", l.Name(), ErrMalformedBlob)
	}
	if v := ciphertext[3]; v != localVersion {
		return nil, fmt.Errorf("kms: %s: decrypt: %w (version %d, this build reads version %d)",
			l.Name(), ErrMalformedBlob, v, localVersion)
	}
	if len(ciphertext) != localBlobLen {
		return nil, fmt.Errorf("kms: %s: decrypt: %w (%d bytes, want %d)",
			l.Name(), ErrMalformedBlob, len(ciphertext), localBlobLen)
	}
	if id := ciphertext[4 : 4+localIDLen]; !bytes.Equal(id, l.idRaw[:]) {
		return nil, fmt.Errorf("kms: %s: decrypt: %w: wrapped by local key %x, this is local key %s",
			l.Name(), ErrWrongMasterKey, id, l.id)
	}
	cc := canonicalContext(encCtx)
	fp := sha256.Sum256(cc)
	if !bytes.Equal(ciphertext[4+localIDLen:localHeaderLen], fp[:localFPLen]) {
		return nil, fmt.Errorf("kms: %s: decrypt: %w: the data key was bound to a different encryption context than %s",
			l.Name(), ErrContextMismatch, formatContext(encCtx))
	}
	nonce := ciphertext[localHeaderLen : localHeaderLen+localNonceLen]
	pt, err := l.aead.Open(nil, nonce, ciphertext[localHeaderLen+localNonceLen:], l.aad(ciphertext[:localHeaderLen], cc))
	if err != nil {
		return nil, fmt.Errorf("kms: %s: decrypt: %w", l.Name(), ErrAuthFailed)
	}
	return pt, nil
}

func (l *Local) aad(header, cc []byte) []byte {
	aad := make([]byte, 0, len(header)+len(cc))
	return append(append(aad, header...), cc...)
}

// formatContext renders a context for error messages, keys sorted.
func formatContext(encCtx map[string]string) string {
	keys := make([]string, 0, len(encCtx))
	for k := range encCtx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %q", k, encCtx[k])
	}
	b.WriteByte('}')
	return b.String()
}
