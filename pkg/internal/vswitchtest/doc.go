// Package vswitchtest owns the end-to-end test of scripts/vswitch, the virtual SONiC switch,
// with scripts/trafgen sending into its ports.
package vswitchtest
