#!/usr/bin/env bash
# One-shot [program:start] of the telegen container: prepare what telegend and telegen-rest
# expect, then exit 0 so that supervisord's dependent-startup starts them. No configuration is
# rendered here: both programs read CONFIG_DB themselves.
set -euo pipefail

if [[ -z ${RUNTIME_OWNER:-} ]]; then
	RUNTIME_OWNER=local
fi
# SONiC's container bookkeeping (FEATURE owner/version in STATE_DB), when the image has it.
CTR_SCRIPT=/usr/share/sonic/scripts/container_startup.py
if [[ -x $CTR_SCRIPT ]]; then
	"$CTR_SCRIPT" -f telegen -o "$RUNTIME_OWNER" -v "${IMAGE_VERSION:-}"
fi

# telegend's --state-dir and telegen-rest's unix socket live here (bind-mounted from the host, so
# host tools can reach the socket).
RUN_DIR=${TELEGEN_RUN_DIR:-/var/run/telegen}
mkdir -p "$RUN_DIR"
chmod 0755 "$RUN_DIR"

# telegend pins per-job objects under /sys/fs/bpf/telegen so that a restarted daemon can adopt
# running jobs; that needs the host's bpffs mounted at /sys/fs/bpf (see manifest.json).
BPFFS=${TELEGEN_BPFFS:-/sys/fs/bpf}
if [[ $(stat -f -c %T "$BPFFS" 2>/dev/null) != bpf_fs ]]; then
	echo "start.sh: $BPFFS is not a bpffs mount; telegend cannot pin jobs across restarts" >&2
fi
