package otlp

// Metric names. The first seven are the product contract (DESIGN.md "Metrics"); the telegen.*
// ones are the agent's own health. docs/OTLP.md lists every name with its attributes.
const (
	MetricPackets     = "network.packets"
	MetricBytes       = "network.bytes"
	MetricErrors      = "network.errors"
	MetricFlowPackets = "flow.packets"
	MetricFlowBytes   = "flow.bytes"
	MetricLatency     = "network.latency" // the key of aggregate.Snapshot.Latency too
	MetricTCPRTT      = "tcp.rtt"         // the key of aggregate.Snapshot.Latency too

	MetricJobAttached    = "telegen.job.attached"
	MetricJobsRunning    = "telegen.jobs.running"
	MetricJobsStarted    = "telegen.jobs.started"
	MetricJobsEnded      = "telegen.jobs.ended"
	MetricExportFailures = "telegen.otlp.export.failures"
	MetricBPFRunTime     = "telegen.bpf.run_time" // per job, while the kernel accounts it
	MetricBPFRuns        = "telegen.bpf.runs"
)

// Attribute keys.
const (
	AttrJobID      = "telegen.job.id" // on every point of a job, and on its instrumentation scope
	AttrDevice     = "device"         // the netdev the job's programs are attached to
	AttrPort       = "port"           // the SONiC port the job watches (a CONFIG_DB PORT key)
	AttrDirection  = "direction"      // ingress or egress
	AttrVLAN       = "vlan"           // network.*: only when the job filters on one VLAN; flow.*: 0 = untagged
	AttrIPProtocol = "ip_protocol"    // network.*: only when the job filters on one IP protocol
	AttrErrorType  = "error.type"     // l2_crc, l3_checksum, tcp_retrans, malformed
	AttrSrc        = "src"
	AttrDst        = "dst"
	AttrL4SrcPort  = "l4_sport"
	AttrL4DstPort  = "l4_dport"
	AttrProtocol   = "protocol" // TCP, UDP, ICMP, ICMPV6, SCTP or the number, as in top_flows
	AttrStatus     = "status"   // telegen.jobs.ended
	AttrReason     = "reason"   // telegen.jobs.ended: the reason's code, without its details
)

// Resource attribute keys: the resource names the switch.
const (
	ResServiceName = "service.name"
	ResHostName    = "host.name"
	ResPlatform    = "sonic.platform"
	ResHWSKU       = "sonic.hwsku"
)

// ServiceName is the service.name of every export.
const ServiceName = "telegen-sonic"

// ScopeName is the instrumentation scope of everything exported.
const ScopeName = "github.com/telegen-sonic/telegen-sonic/pkg/otlp"
