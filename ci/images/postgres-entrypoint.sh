#!/usr/bin/env bash
# Entrypoint of the local postgres stand-in image (see ci/images/README.md).
#
# Follows the contract of the official postgres image's docker-entrypoint.sh:
#   * POSTGRES_USER (default "postgres"), POSTGRES_PASSWORD (required unless
#     POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER),
#     each also as *_FILE; POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR,
#     POSTGRES_HOST_AUTH_METHOD (default scram-sha-256)
#   * the cluster is created in $PGDATA at first start only, UTF-8 (C.UTF-8);
#     /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once, against a
#     temporary server that listens on the unix socket only (so nothing outside
#     the container sees the server as ready before initialisation is done)
#   * "docker run IMAGE -c fsync=off" works like "postgres -c fsync=off";
#     any other command is exec'ed as given
#   * postgres runs as the unprivileged "postgres" user and is exec'ed, so it is
#     PID 1 and gets the stop signal directly (the image sets STOPSIGNAL SIGINT,
#     postgres' "fast shutdown", as the official image does)
set -Eeo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR may come from VAR or from the file named by VAR_FILE.
file_env() {
	local var="$1" fileVar="${1}_FILE" def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		log "error: both $var and $fileVar are set (but are exclusive)"
		exit 1
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		val="$(<"${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

# "docker run IMAGE -c foo=bar" -> "postgres -c foo=bar"
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "${1:-}" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	# Root part: prepare directories, then re-run this script as "postgres".
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA" || :
	chown -R postgres:postgres /var/run/postgresql
	chmod 03777 /var/run/postgresql || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
	# setpriv (util-linux) is the gosu of Debian: it exec's, no extra process.
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "${1:-}" = 'postgres' ]; then
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		file_env POSTGRES_PASSWORD
		file_env POSTGRES_USER 'postgres'
		file_env POSTGRES_DB "$POSTGRES_USER"
		file_env POSTGRES_INITDB_ARGS
		: "${POSTGRES_HOST_AUTH_METHOD:=}"

		if [ -z "$POSTGRES_PASSWORD" ] && [ 'trust' != "$POSTGRES_HOST_AUTH_METHOD" ]; then
			cat >&2 <<-'EOE'
				Error: Database is uninitialized and superuser password is not specified.
				       You must specify POSTGRES_PASSWORD to a non-empty value for the
				       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
				       (or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without
				       a password; NOT recommended)
			EOE
			exit 1
		fi

		log "initialising database cluster in $PGDATA"
		mkdir -p "$PGDATA"
		chmod 00700 "$PGDATA" || :
		initdb_extra=()
		if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
			initdb_extra+=(--waldir "$POSTGRES_INITDB_WALDIR")
		fi
		# Defaults first, so POSTGRES_INITDB_ARGS can override them.
		# --pwfile from a pipe: the password never shows up in argv.
		# shellcheck disable=SC2016
		eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") --encoding=UTF8 --locale=C.UTF-8 '"$POSTGRES_INITDB_ARGS"' "${initdb_extra[@]}"' >&2 \
			|| { log "initdb failed"; exit 1; }

		# Remote clients: password auth on all interfaces (the unix socket and
		# 127.0.0.1 keep initdb's "trust", as in the official image).
		if [ -z "$POSTGRES_HOST_AUTH_METHOD" ]; then
			POSTGRES_HOST_AUTH_METHOD="$(postgres -C password_encryption "${@:2}")"
		fi
		{
			echo
			if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
				echo '# warning trust is enabled for all connections'
			fi
			echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
		} >>"$PGDATA/pg_hba.conf"

		# Temporary server on the unix socket only: nobody outside (nor the
		# readiness probe, which connects to 127.0.0.1) can reach it yet.
		log "starting temporary server for initialisation"
		tmpopts=("${@:2}" -c "listen_addresses=" -p "${PGPORT:-5432}")
		PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "${tmpopts[@]}")" -w start >&2

		export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
		psql_base=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)

		if [ "$POSTGRES_DB" != 'postgres' ]; then
			exists="$("${psql_base[@]}" --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
				SELECT 1 FROM pg_database WHERE datname = :'db' ;
			EOSQL
			)"
			if [ -z "$(echo "$exists" | tr -d '[:space:]')" ]; then
				"${psql_base[@]}" --dbname postgres --set db="$POSTGRES_DB" >&2 <<-'EOSQL'
					CREATE DATABASE :"db" ;
				EOSQL
			fi
		fi

		shopt -s nullglob
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
				*.sh)
					if [ -x "$f" ]; then
						log "running $f"; "$f"
					else
						log "sourcing $f"
						# shellcheck disable=SC1090
						. "$f"
					fi
					;;
				*.sql) log "running $f"; "${psql_base[@]}" --dbname "$POSTGRES_DB" -f "$f" >&2 ;;
				*.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_base[@]}" --dbname "$POSTGRES_DB" >&2 ;;
				*) log "ignoring $f" ;;
			esac
		done
		shopt -u nullglob

		PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop >&2
		unset PGPASSWORD
		log "initialisation complete; ready for start up"
	else
		log "database directory appears to contain a database; skipping initialisation"
	fi
fi

exec "$@"
