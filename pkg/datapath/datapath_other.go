//go:build !linux

package datapath

import (
	"context"
	"errors"
	"log/slog"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

var errNotLinux = errors.New("datapath: eBPF tc programs need linux")

// Manager is unavailable outside linux; New fails.
type Manager struct{}

// New fails outside linux.
func New(Config, *slog.Logger) (*Manager, error) { return nil, errNotLinux }

// Start fails outside linux.
func (*Manager) Start(context.Context, Job) (*Run, error) { return nil, errNotLinux }

// Adopt fails outside linux.
func (*Manager) Adopt(string) (*Run, error) { return nil, errNotLinux }

// CleanUp fails outside linux.
func (*Manager) CleanUp(func(string) bool) error { return errNotLinux }

// Attachments fails outside linux.
func (*Manager) Attachments() ([]Attachment, error) { return nil, errNotLinux }

// StateDir is empty outside linux.
func (*Manager) StateDir() string { return "" }

// Run is unavailable outside linux.
type Run struct{}

// Counters fails outside linux.
func (*Run) Counters() (Counters, error) { return Counters{}, errNotLinux }

// Snapshot fails outside linux.
func (*Run) Snapshot(bool) (aggregate.Snapshot, error) { return aggregate.Snapshot{}, errNotLinux }

// Samples is nil outside linux.
func (*Run) Samples() <-chan Sample { return nil }

// SampleRate is 0 outside linux.
func (*Run) SampleRate() uint32 { return 0 }

// Interface is empty outside linux.
func (*Run) Interface() string { return "" }

// Mode is empty outside linux.
func (*Run) Mode() string { return "" }

// Close does nothing outside linux.
func (*Run) Close() error { return nil }
