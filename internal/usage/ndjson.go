package usage

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// NDJSONSink appends records to a file, one JSON object per line. It is
// the sink of the tenants-file store; request ids written since it was
// opened are written once.
type NDJSONSink struct {
	mu   sync.Mutex
	f    *os.File
	seen map[string]struct{}
}

// maxSeen bounds the in-memory set of written request ids.
const maxSeen = 1 << 16

// OpenNDJSON opens (creating, mode 0600) path for appending.
func OpenNDJSON(path string) (*NDJSONSink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("usage: open ndjson sink: %w", err)
	}
	return &NDJSONSink{f: f, seen: map[string]struct{}{}}, nil
}

// Write appends recs and syncs the file.
func (s *NDJSONSink) Write(_ context.Context, recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := bufio.NewWriter(s.f)
	enc := json.NewEncoder(w)
	var ids []string
	for _, r := range recs {
		if _, dup := s.seen[r.RequestID]; dup {
			continue
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("usage: encode record: %w", err)
		}
		ids = append(ids, r.RequestID)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("usage: write ndjson sink: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("usage: sync ndjson sink: %w", err)
	}
	if len(s.seen)+len(ids) > maxSeen {
		s.seen = map[string]struct{}{}
	}
	for _, id := range ids {
		s.seen[id] = struct{}{}
	}
	return nil
}

// Close closes the file.
func (s *NDJSONSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}
