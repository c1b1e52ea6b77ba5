package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Replica is one tenantgate process of the stack.
type Replica struct {
	// GRPC and HTTP are its listen addresses (GRPC is "unix:<path>" with
	// LinkUnix).
	GRPC, HTTP string
}

// replicaName is replica i's process (and log file) name: tenantgate,
// tenantgate-1, tenantgate-2, ...
func replicaName(i int) string {
	if i == 0 {
		return "tenantgate"
	}
	return fmt.Sprintf("tenantgate-%d", i)
}

// replicaConfig is replica i's configuration file.
func (s *Stack) replicaConfig(i int) string {
	return filepath.Join(s.Dir, replicaName(i)+".yaml")
}

// ReplicaConfig is the configuration file replica i was started with.
func (s *Stack) ReplicaConfig(i int) string { return s.replicaConfig(i) }

// StopReplica stops replica i with SIGTERM and waits for it to exit (its
// drain and grace periods), killing it after 30s.
func (s *Stack) StopReplica(i int) error {
	p, err := s.takeReplica(i)
	if p == nil || err != nil {
		return err
	}
	return p.stopWithin(30 * time.Second)
}

// KillReplica kills replica i with SIGKILL (no drain) and waits for it to exit.
func (s *Stack) KillReplica(i int) error {
	p, err := s.takeReplica(i)
	if p == nil || err != nil {
		return err
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		return fmt.Errorf("stack: kill %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// SignalReplica sends sig (e.g. SIGHUP) to a running replica i.
func (s *Stack) SignalReplica(i int, sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.tenantgates) || s.tenantgates[i] == nil {
		return fmt.Errorf("stack: tenantgate replica %d is not running", i)
	}
	if err := s.tenantgates[i].cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("stack: signal %s: %w", s.tenantgates[i].name, err)
	}
	return nil
}

// ReplicaExited reports whether replica i's process has exited (or was
// never started), with its wait error.
func (s *Stack) ReplicaExited(i int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.tenantgates[i]
	if p == nil {
		return true, nil
	}
	if p.exited() {
		return true, p.waitErr
	}
	return false, nil
}

func (s *Stack) takeReplica(i int) (*proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.tenantgates) {
		return nil, fmt.Errorf("stack: no tenantgate replica %d", i)
	}
	p := s.tenantgates[i]
	s.tenantgates[i] = nil
	return p, nil
}

// UpdateTenantgateConfig lets edit change the configuration every replica
// shares (everything but the server section, which the stack owns) and
// rewrites every replica's file atomically. Running replicas are not
// signalled.
func (s *Stack) UpdateTenantgateConfig(edit func(cfg map[string]any)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(s.tgDoc)
	return s.writeReplicaConfigs()
}

// WaitReplicaHealthy waits until Envoy's health checks report replica i
// healthy (want true) or not (want false).
func (s *Stack) WaitReplicaHealthy(ctx context.Context, i int, want bool, timeout time.Duration) error {
	line := healthyLine(s.Replicas[i])
	deadline := time.Now().Add(timeout)
	for {
		body, err := HTTPGet(ctx, s.EnvoyAdminURL+"/clusters")
		if err == nil && strings.Contains(body, line) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack: replica %d healthy=%v not seen by Envoy within %v", i, want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
