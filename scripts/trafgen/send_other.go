//go:build !linux

package main

import "errors"

type packetSender struct{}

func openSender(iface string) (*packetSender, error) {
	return nil, errors.New("-send: AF_PACKET sockets need Linux")
}

func (s *packetSender) send([]byte) error       { return nil }
func (s *packetSender) dropped() (uint64, bool) { return 0, false }
func (s *packetSender) Close() error            { return nil }
