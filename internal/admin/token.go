package admin

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// TokenEnv names the environment variable that may hold the admin token.
const TokenEnv = "DAS_ADMIN_TOKEN"

// TokenFileName is the generated token's file in the data dir.
const TokenFileName = "admin.token"

// minTokenLen refuses tokens short enough to guess; generated ones are 43.
const minTokenLen = 16

// LoadOrCreateToken finds das serve's admin token: the file tokenFile when
// one is named (it must exist), else $DAS_ADMIN_TOKEN when set, else
// <dataDir>/admin.token, generated (0600) on first start.
func LoadOrCreateToken(dataDir, tokenFile string) (string, error) {
	return findToken(dataDir, tokenFile, true)
}

// LoadToken finds the token the way LoadOrCreateToken does, without
// creating one: what the CLI verbs use.
func LoadToken(dataDir, tokenFile string) (string, error) {
	return findToken(dataDir, tokenFile, false)
}

func findToken(dataDir, tokenFile string, create bool) (string, error) {
	if tokenFile != "" {
		return readToken(tokenFile)
	}
	if v, ok := os.LookupEnv(TokenEnv); ok {
		v = strings.TrimSpace(v)
		if len(v) < minTokenLen {
			return "", fmt.Errorf("admin: $%s is %d characters; use at least %d (for example: head -c 32 /dev/urandom | base64)", TokenEnv, len(v), minTokenLen)
		}
		return v, nil
	}
	if dataDir == "" {
		return "", errors.New("admin: no data dir to keep the admin token in; set --data-dir, --admin-token-file or $" + TokenEnv)
	}
	path := filepath.Join(dataDir, TokenFileName)
	tok, err := readToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	if !create {
		return "", fmt.Errorf("admin: no token: %s does not exist (das serve creates it on first start; or set --admin-token-file or $%s)", path, TokenEnv)
	}
	return createToken(path)
}

// readToken reads a token file, refusing one that others may read.
func readToken(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("admin: token file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("admin: token file %s has mode %#o: group or others may read it; fix with: chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("admin: token file %s holds %d characters; use at least %d (or delete it to have das serve generate one)", path, len(tok), minTokenLen)
	}
	return tok, nil
}

// createToken writes a new random token to path. The file appears whole or
// not at all (written aside, then linked into place), so two das processes
// starting together agree on one token.
func createToken(path string) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("admin: token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("admin: token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	f, err := os.CreateTemp(dir, ".admin.token-*")
	if err != nil {
		return "", fmt.Errorf("admin: token: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	// CreateTemp makes the file 0600; Chmod anyway in case of an odd umask.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(tok + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("admin: token %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readToken(path) // another process won the race
		}
		return "", fmt.Errorf("admin: token %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return tok, nil
}
