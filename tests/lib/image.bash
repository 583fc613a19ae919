# Building and running the Dockerfile's image with buildah (no container
# engine runs here: buildah builds with --isolation chroot and runs
# commands in the result the same way).  Used by tests/4004-deploy-image.bats.
#
#   image_need            skips the test, saying why, when buildah cannot
#                         work here (not root, buildah or debootstrap
#                         missing); sets IMAGE_BASE, the name FROM takes
#                         for this machine's Debian release (debian:N-slim)
#   image_base            imports a minimal root of this release
#                         (debootstrap --variant=minbase, the tarball kept in
#                         $KWH_IMAGE_CACHE) under $IMAGE_BASE
#   image_build TAG       builds the Dockerfile with --build-arg BASE
#   image_buildah ARGS... buildah with this suite's storage
#   image_clean           removes the storage (call from teardown_file)
#
# The storage (vfs: no overlay inside a chroot or on an overlay root) is
# made per run and removed afterwards: a build writes some GB through vfs.
# What takes time and network is cached in $KWH_IMAGE_CACHE (default
# ~/.cache/kwh-images): the base root's tarball and the .deb files the
# build's apt-get downloads (a volume at /var/cache/apt/archives).

KWH_IMAGE_CACHE=${KWH_IMAGE_CACHE:-${HOME:-/root}/.cache/kwh-images}
# shellcheck source=debian-mirror.sh
. "$TESTS_DIR/lib/debian-mirror.sh"

image_need() {
	[ "$(id -u)" -eq 0 ] || skip "buildah needs root here (chroot isolation, no user namespaces set up)"
	command -v buildah >/dev/null || skip "buildah is not installed (KWH_DEPS=all share/kwh/install-deps installs it)"
	command -v debootstrap >/dev/null || skip "debootstrap is not installed (KWH_DEPS=all share/kwh/install-deps installs it)"
	# containers-storage remounts / when it applies a layer: a chroot
	# whose root is no mount point cannot (.ci/run bind-mounts it)
	mountpoint -q / || skip "/ is not a mount point here (a chroot: mount --bind ROOT ROOT before entering it), buildah's storage cannot remount it"
	IMAGE_SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	IMAGE_VERSION=$(. /etc/os-release && echo "${VERSION_ID:-}")
	[ -n "$IMAGE_SUITE" ] && [ -n "$IMAGE_VERSION" ] ||
		skip "/etc/os-release names no Debian release to build the base image of"
	IMAGE_BASE=debian:$IMAGE_VERSION-slim
	IMAGE_STORE=${IMAGE_STORE:-$KWH_IMAGE_CACHE/storage.$$}
	export IMAGE_SUITE IMAGE_VERSION IMAGE_BASE IMAGE_STORE
}

image_buildah() {
	buildah --root "$IMAGE_STORE/root" --runroot "$IMAGE_STORE/run" --storage-driver vfs "$@"
}

# --ulimit options for bud and from: limits no higher than those in force.
# Left alone, Debian 13's buildah raises RLIMIT_NOFILE and RLIMIT_NPROC to
# 1048576 for every RUN, which fails where even root may not (a machine
# that is itself a container); Debian 12's lowers its own RLIMIT_NPROC to
# 32768 first and then cannot raise a RUN's above that.
image_ulimits() {
	local l v
	for l in "nofile $(ulimit -Sn) $(ulimit -Hn) 1048576" "nproc $(ulimit -Su) $(ulimit -Hu) 32768"; do
		set -- $l
		for v in 2 3; do
			[ "${!v}" = unlimited ] || [ "${!v}" -gt "$4" ] && set -- "${@:1:v-1}" "$4" "${@:v+1}"
		done
		printf -- '--ulimit %s=%s:%s ' "$1" "$2" "$3"
	done
}

image_base() {
	local tar=$KWH_IMAGE_CACHE/$IMAGE_SUITE.tar mirror dir c
	mkdir -p "$KWH_IMAGE_CACHE" || return 1
	if [ ! -s "$tar" ]; then
		mirror=${KWH_FRESH_MIRROR:-$(host_mirror)}
		[ -n "$mirror" ] || { echo "no Debian archive in /etc/apt; set KWH_FRESH_MIRROR" >&2; return 1; }
		dir=$(mktemp -d "$KWH_IMAGE_CACHE/root.XXXXXX")
		timeout 600 debootstrap --variant=minbase "$IMAGE_SUITE" "$dir" "$mirror" >"$dir.log" 2>&1 ||
			{ tail -n 20 "$dir.log" >&2; rm -rf "$dir" "$dir.log"; return 1; }
		tar -C "$dir" -cf "$tar.new" . && mv "$tar.new" "$tar" || return 1
		rm -rf "$dir" "$dir.log"
	fi
	c=$(image_buildah from scratch) &&
		image_buildah add "$c" "$tar" / >/dev/null &&
		image_buildah commit -q --rm "$c" "docker.io/library/$IMAGE_BASE" >/dev/null
}

# image_build TAG: the Dockerfile, FROM this release's base (deb files
# cached; the apt-get of each stage still reads the archive's index).
image_build() {
	local apt=$KWH_IMAGE_CACHE/apt-$IMAGE_SUITE
	mkdir -p "$apt/partial" || return 1
	(cd "$TOP_DIR" && timeout 1500 buildah --root "$IMAGE_STORE/root" --runroot "$IMAGE_STORE/run" \
		--storage-driver vfs bud --isolation chroot --network host --pull=never $(image_ulimits) \
		--build-arg "BASE=$IMAGE_BASE" -v "$apt:/var/cache/apt/archives" \
		-t "$1" -f Dockerfile .)
}

image_clean() {
	[ -n "${IMAGE_STORE:-}" ] && [ -d "$IMAGE_STORE" ] || return 0
	image_buildah rm -a >/dev/null 2>&1 || true
	image_buildah rmi -af >/dev/null 2>&1 || true
	rm -rf "$IMAGE_STORE"
}
