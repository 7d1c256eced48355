# docker image for telegen-sonic (sonic-buildimage: rules/docker-telegen.mk)
#
# Skeleton for building the telegen container into a SONiC image. Copy this directory's parent to
# dockers/docker-telegen-sonic, this file to rules/, telegen.service.j2 to files/build_templates/,
# and add to rules/config:  INCLUDE_TELEGEN ?= y
# and to files/build_templates/init_cfg.json.j2 (the FEATURE entry of init_cfg.json):
#   {%- if include_telegen == "y" %}{% do features.append(("telegen", "disabled", false, "enabled")) %}{% endif %}
# and to slave.mk:  export include_telegen="$(INCLUDE_TELEGEN)"
#
# This is the built-in ("legacy") route: slave.mk renders docker_image_ctl.j2 with _RUN_OPT,
# which is the only route that can grant capabilities. sonic-package-manager packages
# (SONIC_PACKAGES_LOCAL) get their docker options from the manifest, which has no field for them.

# The Go binaries as one deb (src/telegen-sonic: `make build` + debian/; not part of this skeleton).
TELEGEN_SONIC_VERSION = 0.1.0
TELEGEN_SONIC = telegen-sonic_$(TELEGEN_SONIC_VERSION)_$(CONFIGURED_ARCH).deb
$(TELEGEN_SONIC)_SRC_PATH = $(SRC_PATH)/telegen-sonic
SONIC_MAKE_DEBS += $(TELEGEN_SONIC)

DOCKER_TELEGEN_STEM = docker-telegen-sonic
DOCKER_TELEGEN = $(DOCKER_TELEGEN_STEM).gz
DOCKER_TELEGEN_DBG = $(DOCKER_TELEGEN_STEM)-$(DBG_IMAGE_MARK).gz

$(DOCKER_TELEGEN)_PATH = $(DOCKERS_PATH)/$(DOCKER_TELEGEN_STEM)
$(DOCKER_TELEGEN)_DEPENDS += $(TELEGEN_SONIC)
$(DOCKER_TELEGEN)_DBG_DEPENDS = $($(DOCKER_CONFIG_ENGINE_TRIXIE)_DBG_DEPENDS)
$(DOCKER_TELEGEN)_DBG_IMAGE_PACKAGES = $($(DOCKER_CONFIG_ENGINE_TRIXIE)_DBG_IMAGE_PACKAGES)
$(DOCKER_TELEGEN)_LOAD_DOCKERS += $(DOCKER_CONFIG_ENGINE_TRIXIE)
$(DOCKER_TELEGEN)_VERSION = 1.0.0
$(DOCKER_TELEGEN)_PACKAGE_NAME = telegen

SONIC_DOCKER_IMAGES += $(DOCKER_TELEGEN)
SONIC_TRIXIE_DOCKERS += $(DOCKER_TELEGEN)
SONIC_DOCKER_DBG_IMAGES += $(DOCKER_TELEGEN_DBG)
SONIC_TRIXIE_DBG_DOCKERS += $(DOCKER_TELEGEN_DBG)
ifeq ($(INCLUDE_TELEGEN), y)
SONIC_INSTALL_DOCKER_IMAGES += $(DOCKER_TELEGEN)
SONIC_INSTALL_DOCKER_DBG_IMAGES += $(DOCKER_TELEGEN_DBG)
endif

$(DOCKER_TELEGEN)_CONTAINER_NAME = telegen
# Least privilege (docs/SONIC-INSTALL.md): load and attach eBPF programs, no --privileged.
$(DOCKER_TELEGEN)_RUN_OPT += -t --cap-add=BPF --cap-add=PERFMON --cap-add=NET_ADMIN
# The host's bpffs, so that per-job pins outlive a container restart and can be adopted.
$(DOCKER_TELEGEN)_RUN_OPT += -v /sys/fs/bpf:/sys/fs/bpf:rw
# telegen-rest's unix socket, reachable from the host.
$(DOCKER_TELEGEN)_RUN_OPT += -v /var/run/telegen:/var/run/telegen:rw
$(DOCKER_TELEGEN)_RUN_OPT += -v /etc/sonic:/etc/sonic:ro
# (/var/run/redis is mounted by docker_image_ctl.j2 for every container.)

$(DOCKER_TELEGEN)_BASE_IMAGE_FILES += telegen-sonic:/usr/bin/telegen-sonic
$(DOCKER_TELEGEN)_BASE_IMAGE_FILES += monit_telegen:/etc/monit/conf.d
