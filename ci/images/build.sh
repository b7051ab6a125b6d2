#!/usr/bin/env bash
# Build local stand-ins for the official postgres:15 and redis:7 images on a
# machine that cannot pull from a container registry (see README.md here).
#
#   FACTS_POSTGRES_IMAGE  tag of the postgres image  (default facts-local/postgres:15)
#   FACTS_REDIS_IMAGE     tag of the redis image     (default facts-local/redis:7)
#   FACTS_BASE_IMAGE      tag of the shared Debian root filesystem image
#                         (default facts-local/rootfs:bookworm; a build cache)
#   FACTS_DEBIAN_SUITE    Debian suite (default bookworm)
#   FACTS_DEBIAN_MIRROR   Debian mirror (default: the host's apt sources,
#                         else http://deb.debian.org/debian)
#   FORCE=1               rebuild even if the images exist
#
# Idempotent: an image that exists is left alone. Images built by this script
# carry a label with a hash of this script and their entrypoint, and are
# rebuilt when that hash changes; an image under the tag that this script did
# not build (e.g. the official one) is never replaced unless FORCE=1.
#
# How: debootstrap a minimal Debian root filesystem with postgresql-15 and
# redis-server, `docker import` it once as the base image, then `docker build`
# a thin image per service (entrypoint, ENV, EXPOSE, VOLUME, STOPSIGNAL...)
# FROM that base. Needs a running Docker engine (see start-docker.sh) and root
# (debootstrap, chroot).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PG_IMAGE=${FACTS_POSTGRES_IMAGE:-facts-local/postgres:15}
REDIS_IMAGE=${FACTS_REDIS_IMAGE:-facts-local/redis:7}
BASE_IMAGE=${FACTS_BASE_IMAGE:-facts-local/rootfs:bookworm}
SUITE=${FACTS_DEBIAN_SUITE:-bookworm}
FORCE=${FORCE:-0}
PG_MAJOR=15
REDIS_LINE=7.0  # the redis-server of $SUITE (bookworm); the build checks it
PACKAGES="postgresql-${PG_MAJOR},redis-server"
LABEL=org.facts-local.recipe
BASE_LABEL=org.facts-local.base-recipe

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { sha256sum | cut -c1-16; }
BASE_HASH="$(cat "${BASH_SOURCE[0]}" | sha)"
PG_HASH="$(cat "${BASH_SOURCE[0]}" "$HERE/postgres-entrypoint.sh" | sha)"
REDIS_HASH="$(cat "${BASH_SOURCE[0]}" "$HERE/redis-entrypoint.sh" | sha)"

# needs_build IMAGE HASH LABELKEY -> 0 if the image must be (re)built
needs_build() {
	local image="$1" want="$2" key="$3" have
	[ "$FORCE" = 1 ] && return 0
	if ! docker image inspect "$image" >/dev/null 2>&1; then
		return 0
	fi
	have="$(docker image inspect -f "{{ index .Config.Labels \"$key\" }}" "$image" 2>/dev/null || true)"
	case "$have" in
		"$want") log "$image is up to date; skipping (FORCE=1 rebuilds)"; return 1 ;;
		'' | '<no value>') log "$image exists (not built here); leaving it alone (FORCE=1 replaces it)"; return 1 ;;
		*) log "$image was built from an older recipe; rebuilding"; return 0 ;;
	esac
}

docker info >/dev/null 2>&1 || die "no Docker engine answers; run ci/images/start-docker.sh first"

build_pg=no build_redis=no
needs_build "$PG_IMAGE" "$PG_HASH" "$LABEL" && build_pg=yes
needs_build "$REDIS_IMAGE" "$REDIS_HASH" "$LABEL" && build_redis=yes
if [ "$build_pg" = no ] && [ "$build_redis" = no ]; then
	exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/facts-images.XXXXXX")"
ROOTFS="$WORK/rootfs"

cleanup() {
	local m
	# Never rm -rf through a mount (debootstrap mounts /proc, /sys, maybe /dev
	# in the chroot and may leave them behind if it fails halfway).
	if [ -d "$ROOTFS" ]; then
		awk -v r="$ROOTFS" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r \
			| while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
	rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# First "deb" source of the host for $SUITE (deb822 *.sources, then one-line *.list).
detect_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		uri="$(awk -v suite="$SUITE" '
			BEGIN { RS = ""; FS = "\n" }
			{
				uris = ""; ok = 0; deb = 0; enabled = 1
				for (i = 1; i <= NF; i++) {
					line = $i
					if (line ~ /^URIs:/)        { sub(/^URIs:[ \t]*/, "", line); uris = line }
					else if (line ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", line); n = split(line, s, /[ \t]+/); for (j = 1; j <= n; j++) if (s[j] == suite) ok = 1 }
					else if (line ~ /^Types:/)  { sub(/^Types:[ \t]*/, "", line); if ((" " line " ") ~ /[ \t]deb[ \t]/) deb = 1 }
					else if (line ~ /^Enabled:[ \t]*no/) enabled = 0
				}
				if (ok && deb && enabled && uris != "") {
					n = split(uris, u, /[ \t]+/)
					for (j = 1; j <= n; j++) if (u[j] ~ /^(https?|file):/) { print u[j]; exit }
				}
			}' "$f")"
		if [ -n "$uri" ]; then echo "$uri"; return; fi
	done
	uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v suite="$SUITE" '
		$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if ($(i + 1) == suite && $i ~ /^(https?|file):/) { print $i; exit }
		}')"
	echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
	[ "$(id -u)" = 0 ] || die "building the root filesystem needs root (debootstrap, chroot)"
	if ! command -v debootstrap >/dev/null 2>&1; then
		log "installing debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	fi
	local mirror="${FACTS_DEBIAN_MIRROR:-$(detect_mirror)}" start=$SECONDS
	log "debootstrap $SUITE from $mirror with $PACKAGES (about a minute)"
	if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$mirror" >"$WORK/debootstrap.out" 2>&1; then
		tail -n 30 "$WORK/debootstrap.out" >&2
		[ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
		die "debootstrap failed"
	fi
	log "debootstrap done in $((SECONDS - start))s"

	# Processes a package script may have started inside the chroot: stop them
	# (they are ours: nothing else runs in this brand-new directory).
	local p root
	for p in /proc/[0-9]*; do
		root="$(readlink "$p/root" 2>/dev/null || true)"
		if [ -n "$root" ] && [ "${root#"$ROOTFS"}" != "$root" ]; then
			log "stopping leftover process ${p#/proc/} in the chroot"
			kill "${p#/proc/}" 2>/dev/null || true
		fi
	done

	# The customisation runs inside the chroot, so that absolute symlinks in the
	# root filesystem (e.g. /var/run -> /run) cannot lead to the host's files.
	cat >"$ROOTFS/tmp/customise.sh" <<'EOS'
set -eu
PG_MAJOR="$1"
# Like the official image: initdb's postgresql.conf listens on all interfaces.
sample="/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample"
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$sample"
grep -q "^listen_addresses = '\*'" "$sample"
# Debian's packaged cluster is not used: the entrypoint runs initdb in $PGDATA.
rm -rf "/etc/postgresql/$PG_MAJOR/main" "/var/lib/postgresql/$PG_MAJOR/main"
mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d /data
chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
chmod 1777 /var/lib/postgresql/data
chmod 3777 /var/run/postgresql
chown redis:redis /data
# Slim down: downloaded .debs, apt lists, docs.
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* \
	/usr/share/doc/* /usr/share/man/* /usr/share/info/*
rm -f /tmp/customise.sh
EOS
	chroot "$ROOTFS" /bin/sh /tmp/customise.sh "$PG_MAJOR" || die "customising the root filesystem failed"
	# The Redis line the README and tests/test_supported_versions.py say .ci/run runs.
	chroot "$ROOTFS" /usr/bin/redis-server --version | grep -q "v=$REDIS_LINE\." \
		|| die "the root filesystem's redis-server is not $REDIS_LINE"
	# Sanity: what the images rely on.
	local f
	for f in "/usr/lib/postgresql/$PG_MAJOR/bin/postgres" "/usr/lib/postgresql/$PG_MAJOR/bin/initdb" \
		"/usr/lib/postgresql/$PG_MAJOR/bin/psql" /usr/bin/redis-server /usr/bin/setpriv /bin/sh /bin/bash; do
		chroot "$ROOTFS" test -x "$f" || die "missing in root filesystem: $f"
	done

	log "importing root filesystem as $BASE_IMAGE"
	tar -C "$ROOTFS" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . \
		| docker import \
			--change "LABEL $BASE_LABEL=$BASE_HASH" \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'CMD ["bash"]' \
			- "$BASE_IMAGE" >/dev/null
	rm -rf --one-file-system "$ROOTFS"
}

# The legacy builder is enough (FROM a local image, COPY); use it when the
# buildx plugin that BuildKit needs on the client side is missing.
if ! docker buildx version >/dev/null 2>&1; then
	export DOCKER_BUILDKIT=0
fi

# build_image TAG HASH CONTEXT-DIR
build_image() {
	local tag="$1" hash="$2" ctx="$3" old
	old="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
	log "building $tag"
	docker build -q --label "$LABEL=$hash" -t "$tag" "$ctx" >/dev/null 2>"$WORK/build.err" \
		|| { cat "$WORK/build.err" >&2; die "docker build of $tag failed"; }
	local new
	new="$(docker image inspect -f '{{.Id}}' "$tag")"
	if [ -n "$old" ] && [ "$old" != "$new" ]; then
		docker rmi "$old" >/dev/null 2>&1 || true # only succeeds if now unused and untagged
	fi
	log "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%d MB", $1 / 1e6 }'))"
}

start=$SECONDS
if [ "$FORCE" = 1 ] || ! [ "$(docker image inspect -f "{{ index .Config.Labels \"$BASE_LABEL\" }}" "$BASE_IMAGE" 2>/dev/null || true)" = "$BASE_HASH" ]; then
	build_base
else
	log "reusing base image $BASE_IMAGE"
fi

if [ "$build_pg" = yes ]; then
	mkdir -p "$WORK/postgres"
	install -m 0755 "$HERE/postgres-entrypoint.sh" "$WORK/postgres/docker-entrypoint.sh"
	cat >"$WORK/postgres/Dockerfile" <<EOF
FROM $BASE_IMAGE
ENV PG_MAJOR=$PG_MAJOR \\
    PGDATA=/var/lib/postgresql/data \\
    LANG=C.UTF-8 \\
    PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
EOF
	build_image "$PG_IMAGE" "$PG_HASH" "$WORK/postgres"
fi

if [ "$build_redis" = yes ]; then
	mkdir -p "$WORK/redis"
	install -m 0755 "$HERE/redis-entrypoint.sh" "$WORK/redis/docker-entrypoint.sh"
	cat >"$WORK/redis/Dockerfile" <<EOF
FROM $BASE_IMAGE
ENV LANG=C.UTF-8
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
EOF
	build_image "$REDIS_IMAGE" "$REDIS_HASH" "$WORK/redis"
fi

log "done in $((SECONDS - start))s"
