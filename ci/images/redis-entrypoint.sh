#!/usr/bin/env bash
# Entrypoint of the local redis stand-in image (see ci/images/README.md).
#
# Follows the contract of the official redis image's docker-entrypoint.sh:
#   * "docker run IMAGE --appendonly yes" or "IMAGE /path/redis.conf" runs
#     redis-server with those arguments; any other command is exec'ed as given
#   * redis-server runs as the unprivileged "redis" user, in /data, exec'ed so
#     it is PID 1 and gets SIGTERM directly
#   * no config file: compiled-in defaults, i.e. port 6379 bound to all
#     interfaces ("* -::*"). The official image is built with protected-mode
#     off by default; Debian's redis-server is not, so "--protected-mode no" is
#     added unless the arguments (or the given config file) set it themselves.
set -e

# first arg is `-f` or `--some-option`, or first arg is `something.conf`
if [ "${1#-}" != "${1:-}" ] || [ "${1%.conf}" != "${1:-}" ]; then
	set -- redis-server "$@"
fi

if [ "${1:-}" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	# setpriv (util-linux) is the gosu of Debian: it exec's, no extra process.
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "${1:-}" = 'redis-server' ]; then
	set_by_user=no
	for arg in "$@"; do
		[ "$arg" = '--protected-mode' ] && set_by_user=yes
	done
	if [ "${2:-}" != "${2%.conf}" ] && [ -r "$2" ] && grep -qiE '^[[:space:]]*protected-mode[[:space:]]' "$2"; then
		set_by_user=yes
	fi
	if [ "$set_by_user" = no ]; then
		set -- "$@" --protected-mode no
	fi
fi

# set an appropriate umask (if one isn't set already), as the official image does
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
