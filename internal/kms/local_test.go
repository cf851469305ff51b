package kms

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var streamCtx = map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"}

func openTestLocal(t testing.TB) (*Local, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "kms", "master.key")
	l, err := OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	return l, path
}

func TestOpenLocalCreates(t *testing.T) {
	l, path := openTestLocal(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("key dir mode = %04o, want 0700", got)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(b) {
		t.Errorf("key file is not 64 hex digits and a newline (%d bytes)", len(b))
	}
	if got, want := l.Name(), "local:"+path; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(l.KeyID()) {
		t.Errorf("KeyID() = %q, want 16 hex digits", l.KeyID())
	}
	// No temporary files left beside the key.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("kms dir holds %d entries, want only master.key", len(ents))
	}
}

func TestLocalRoundTripAcrossReopen(t *testing.T) {
	ctx := context.Background()
	l1, path := openTestLocal(t)
	dk, err := l1.GenerateDataKey(ctx, streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dk.Plaintext) != 32 || len(dk.Ciphertext) != localBlobLen || dk.KeyID != l1.KeyID() {
		t.Fatalf("data key: %d-byte plaintext, %d-byte blob, key id %q", len(dk.Plaintext), len(dk.Ciphertext), dk.KeyID)
	}
	l2, err := OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	if l2.KeyID() != l1.KeyID() {
		t.Fatalf("reopened key id %s, want %s", l2.KeyID(), l1.KeyID())
	}
	pt, err := l2.Decrypt(ctx, dk.Ciphertext, map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pt, dk.Plaintext) {
		t.Fatal("reopened provider unwrapped a different key")
	}
	dk2, err := l1.GenerateDataKey(ctx, streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(dk2.Plaintext, dk.Plaintext) || bytes.Equal(dk2.Ciphertext[16:28], dk.Ciphertext[16:28]) {
		t.Fatal("two data keys share plaintext or nonce")
	}
}

func TestLocalEmptyContext(t *testing.T) {
	ctx := context.Background()
	l, _ := openTestLocal(t)
	dk, err := l.GenerateDataKey(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Decrypt(ctx, dk.Ciphertext, map[string]string{}); err != nil {
		t.Fatalf("nil and empty context should be the same: %v", err)
	}
}

func TestLocalWrongContext(t *testing.T) {
	ctx := context.Background()
	l, _ := openTestLocal(t)
	dk, err := l.GenerateDataKey(ctx, streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ctx  map[string]string
	}{
		{"other value", map[string]string{"aws:rds:dbc-id": "cluster-OTHER"}},
		{"other key", map[string]string{"aws:rds:db-id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"}},
		{"extra pair", map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "x": "y"}},
		{"empty", nil},
		// Length prefixes keep these apart although their concatenations match.
		{"shifted boundary", map[string]string{"aws:rds:dbc-idc": "luster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Decrypt(ctx, dk.Ciphertext, tc.ctx)
			if !errors.Is(err, ErrContextMismatch) {
				t.Fatalf("err = %v, want ErrContextMismatch", err)
			}
			if !strings.Contains(err.Error(), "encryption context mismatch") {
				t.Errorf("error does not say what is wrong: %v", err)
			}
			if c := ClassifyError(err); c != ClassInvalidCiphertext {
				t.Errorf("ClassifyError = %q, want %q", c, ClassInvalidCiphertext)
			}
		})
	}
}

func TestLocalWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	l1, _ := openTestLocal(t)
	l2, _ := openTestLocal(t)
	dk, err := l1.GenerateDataKey(ctx, streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l2.Decrypt(ctx, dk.Ciphertext, streamCtx)
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("err = %v, want ErrWrongMasterKey", err)
	}
	want := "wrapped by local key " + l1.KeyID() + ", this is local key " + l2.KeyID()
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestLocalCorruptedBlob(t *testing.T) {
	ctx := context.Background()
	l, _ := openTestLocal(t)
	dk, err := l.GenerateDataKey(ctx, streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(dk.Ciphertext)
		b[i] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name string
		blob []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrMalformedBlob, "bad magic"},
		{"bad magic", flip(0), ErrMalformedBlob, "bad magic"},
		{"future version", append([]byte("DLK\x02"), dk.Ciphertext[4:]...), ErrMalformedBlob, "version 2"},
		{"truncated", dk.Ciphertext[:len(dk.Ciphertext)-1], ErrMalformedBlob, "75 bytes, want 76"},
		{"trailing byte", append(bytes.Clone(dk.Ciphertext), 0), ErrMalformedBlob, "77 bytes"},
		{"nonce bit", flip(20), ErrAuthFailed, "authentication failed"},
		{"ciphertext bit", flip(30), ErrAuthFailed, "authentication failed"},
		{"tag bit", flip(len(dk.Ciphertext) - 1), ErrAuthFailed, "authentication failed"},
		{"AWS blob", append([]byte{0x01, 0x02, 0x02, 0x00}, make([]byte, 180)...), ErrMalformedBlob, "bad magic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := l.Decrypt(ctx, tc.blob, streamCtx)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if pt != nil {
				t.Error("returned plaintext along with an error")
			}
		})
	}
}

func TestOpenLocalPermissions(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o640, false},
		{0o604, false},
		{0o644, false},
		{0o660, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			_, path := openTestLocal(t)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := OpenLocal(path)
			if tc.ok {
				if err != nil {
					t.Fatalf("mode %04o refused: %v", tc.mode, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("mode %04o accepted", tc.mode)
			}
			for _, want := range []string{path, "chmod 600 " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestOpenLocalKeyFileFormats(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xab}, 32)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lRaw, err := OpenLocal(write("raw.key", raw))
	if err != nil {
		t.Fatalf("32 raw bytes refused: %v", err)
	}
	lHex, err := OpenLocal(write("hex.key", []byte(hex.EncodeToString(raw)+"\r\n")))
	if err != nil {
		t.Fatalf("hex key refused: %v", err)
	}
	if lRaw.KeyID() != lHex.KeyID() {
		t.Errorf("raw and hex forms of one key have ids %s and %s", lRaw.KeyID(), lHex.KeyID())
	}
	for name, b := range map[string][]byte{
		"short.key":  []byte("abcd\n"),
		"nonhex.key": []byte(strings.Repeat("zz", 32)),
		"empty.key":  nil,
	} {
		p := write(name, b)
		if _, err := OpenLocal(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want a refusal naming the file", name, err)
		}
	}
	if _, err := OpenLocal(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as key file: err = %v", err)
	}
}

// Racing first opens must agree on one key.
func TestOpenLocalConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms", "master.key")
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := OpenLocal(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = l.KeyID()
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent opens disagree: %v", ids)
		}
	}
}

// The golden blob pins format version 1: a blob written by any earlier build
// must still unwrap.
type localGolden struct {
	MasterKey string            `json:"master_key"`
	KeyID     string            `json:"key_id"`
	Context   map[string]string `json:"context"`
	Blob      string            `json:"blob"`
	Plaintext string            `json:"plaintext"`
}

func TestLocalGoldenV1(t *testing.T) {
	ctx := context.Background()
	goldenPath := filepath.Join("testdata", "local-v1.json")
	keyPath := filepath.Join(t.TempDir(), "master.key")
	if *update {
		l, _ := openTestLocal(t)
		dk, err := l.GenerateDataKey(ctx, streamCtx)
		if err != nil {
			t.Fatal(err)
		}
		mk, err := os.ReadFile(strings.TrimPrefix(l.Name(), "local:"))
		if err != nil {
			t.Fatal(err)
		}
		g := localGolden{string(bytes.TrimSpace(mk)), l.KeyID(), streamCtx,
			hex.EncodeToString(dk.Ciphertext), hex.EncodeToString(dk.Plaintext)}
		b, _ := json.MarshalIndent(g, "", "  ")
		if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var g localGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(g.MasterKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLocal(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if l.KeyID() != g.KeyID {
		t.Errorf("key id %s, golden %s", l.KeyID(), g.KeyID)
	}
	blob, _ := hex.DecodeString(g.Blob)
	pt, err := l.Decrypt(ctx, blob, g.Context)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(pt) != g.Plaintext {
		t.Error("golden blob unwrapped to a different key")
	}
}

func TestCanonicalContext(t *testing.T) {
	a := canonicalContext(map[string]string{"b": "2", "a": "1"})
	b := canonicalContext(map[string]string{"a": "1", "b": "2"})
	want := "\x00\x00\x00\x02" + "\x00\x00\x00\x01a\x00\x00\x00\x011" + "\x00\x00\x00\x01b\x00\x00\x00\x012"
	if string(a) != want || string(b) != want {
		t.Errorf("canonicalContext = %q / %q, want %q", a, b, want)
	}
	if got := string(canonicalContext(nil)); got != "\x00\x00\x00\x00" {
		t.Errorf("canonicalContext(nil) = %q", got)
	}
}

func BenchmarkLocalGenerateDataKey(b *testing.B) {
	l, _ := openTestLocal(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.GenerateDataKey(ctx, streamCtx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocalDecrypt(b *testing.B) {
	l, _ := openTestLocal(b)
	ctx := context.Background()
	dk, err := l.GenerateDataKey(ctx, streamCtx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Decrypt(ctx, dk.Ciphertext, streamCtx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDataKeyPrintsNoPlaintext(t *testing.T) {
	dk := DataKey{Plaintext: []byte("SECRETSECRETSECRETSECRETSECRET!!"), Ciphertext: []byte("blob"), KeyID: "k"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(f, dk) + fmt.Sprintf(f, &dk)
		if strings.Contains(out, "SECRET") || strings.Contains(out, "5345435245") || strings.Contains(out, "83 69 67") {
			t.Errorf("%s prints the plaintext: %s", f, out)
		}
	}
}
