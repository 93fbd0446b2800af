package app

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"

	"relay/internal/config"
	"relay/internal/payloadcodec"
	"relay/server"
)

// setupCodec makes the payload codec from RELAY_PAYLOAD_KEYS; without keys, payloads go
// to Temporal in the clear, and the log says so once.
func (s *System) setupCodec() error {
	if s.Config.PayloadKeys == "" {
		s.logger.Warn("payloads are written to Temporal in the clear: set RELAY_PAYLOAD_KEYS to encrypt them (README: Encrypted payloads)")
		return nil
	}
	keys, err := payloadcodec.ParseKeys(s.Config.PayloadKeys)
	if err != nil {
		return fmt.Errorf("RELAY_PAYLOAD_KEYS: %w", err) // config has parsed them; a dev key file may be bad
	}
	if s.codec, err = payloadcodec.New(keys); err != nil {
		return err
	}
	s.logger.Info("payloads to Temporal are encrypted", "key_id", s.codec.ActiveKeyID(), "keys", len(keys))
	return nil
}

// payloadCodec is the codec for the API's codec endpoint and memos, nil without one (an
// interface holding a nil *Codec would not be nil).
func (s *System) payloadCodec() converter.PayloadCodec {
	if s.codec == nil {
		return nil
	}
	return s.codec
}

// The files dev keeps its own secrets in, in its data dir (0600).
const (
	devKeysFile  = "payload-keys"
	devIDKeyFile = "workflow-id-key"
)

// devSecrets gives dev what RELAY_PAYLOAD_KEYS and RELAY_WORKFLOW_ID_KEY leave unset, so
// that a newcomer's histories hold no customer data, as production's: made once and kept
// in the data dir, or, in memory, made for this process only.
func devSecrets(cfg *config.Config, inMemory bool) error {
	if cfg.PayloadKeys == "" {
		keys, err := devSecret(cfg.DataDir, devKeysFile, inMemory, func() (string, error) {
			_, keys, err := payloadcodec.NewKey("dev-" + time.Now().UTC().Format("20060102"))
			return keys, err
		}, func(s string) error { _, err := payloadcodec.ParseKeys(s); return err })
		if err != nil {
			return err
		}
		cfg.PayloadKeys = keys
	}
	if cfg.WorkflowIDKey == "" {
		key, err := devSecret(cfg.DataDir, devIDKeyFile, inMemory, func() (string, error) {
			b := make([]byte, 32)
			_, err := rand.Read(b)
			return base64.StdEncoding.EncodeToString(b), err
		}, func(s string) error {
			if len(s) < config.MinWorkflowIDKey {
				return fmt.Errorf("%d characters: want at least %d", len(s), config.MinWorkflowIDKey)
			}
			return nil
		})
		if err != nil {
			return err
		}
		cfg.WorkflowIDKey = key
	}
	return nil
}

// devSecret reads dataDir/name, or makes a secret and keeps it there (only makes it when
// inMemory). A file that does not check is an error naming it.
func devSecret(dataDir, name string, inMemory bool, create func() (string, error), check func(string) error) (string, error) {
	if inMemory {
		return create()
	}
	path := filepath.Join(dataDir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if err := check(s); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("dev secret: %w", err)
	}
	s, err := create()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev secret: %w", err)
	}
	return s, nil
}

// codecEndpoint is the codec endpoint of relay's API on httpAddr, as a browser on this
// machine reaches it; "" when the port is not known before listening.
func codecEndpoint(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil || port == "0" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + server.CodecPath
}
