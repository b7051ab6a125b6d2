#!/usr/bin/env bash
# Deploy both functions to Cloud Functions (2nd gen, i.e. Cloud Run), after migrating the database.
#
#   PROJECT=my-project REGION=europe-west1 CONNECTOR=facts-connector deploy/cloud-functions.sh [--dry-run]
#
# --dry-run prints every gcloud command (and the connection budget) instead of running it.
# The full checklist from an empty project is docs/deploy.md. In order, this script:
#   1. makes the runtime service account RUNTIME_ACCOUNT (if missing) and grants it
#      roles/secretmanager.secretAccessor on exactly the two secrets (and roles/cloudsql.client
#      when CLOUDSQL_INSTANCE is set, for the socket form of DATABASE_URL);
#   2. pins the secret versions: DATABASE_SECRET_VERSION / REDIS_SECRET_VERSION, by default the
#      newest enabled version, resolved now and printed (secrets exposed as environment variables
#      are read once per instance, so `latest` would mix versions across instances);
#   3. migrates: a Cloud Run job built from the same upload and reaching Cloud SQL the same way
#      (the connector, or the Cloud SQL socket) runs `python -m shared.schema` and is waited for;
#   4. deploys both functions with that account, the pinned secrets, and --max-instances
#      computed from the connection budget below.
#
# Connection budget: every instance opens at most WORKERS x POOL_SIZE Postgres connections, and
# two functions share the database, so --max-instances = (DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS)
# / (WORKERS x POOL_SIZE x 2), rounded down. The reserve covers Cloud SQL's own and superuser
# slots, the migration job and an operator's psql.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
case "${1:-}" in
    --dry-run) dry_run=1 ;;
    "") ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${CONNECTOR:?set CONNECTOR (Serverless VPC Access)}"
DATABASE_SECRET=${DATABASE_SECRET:-facts-database-url}
REDIS_SECRET=${REDIS_SECRET:-facts-redis-url}
DATABASE_SECRET_VERSION=${DATABASE_SECRET_VERSION:-}
REDIS_SECRET_VERSION=${REDIS_SECRET_VERSION:-}
RUNTIME_ACCOUNT=${RUNTIME_ACCOUNT:-facts-runtime}
ACCOUNT_EMAIL="$RUNTIME_ACCOUNT@$PROJECT.iam.gserviceaccount.com"
CLOUDSQL_INSTANCE=${CLOUDSQL_INSTANCE:-}   # PROJECT:REGION:INSTANCE, only for the socket form
MIGRATION_JOB=${MIGRATION_JOB:-facts-migrate}
# A public HTTP API: all. Behind an external load balancer (Cloud Armor, CDN): internal-and-gclb.
INGRESS=${INGRESS:-all}
RUNTIME=${RUNTIME:-python312}
# Measured (bench/server_config.py, README): per instance, 2 gunicorn workers with 4 threads each
# and as many concurrent requests; each worker's pool holds one connection per thread.
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-4}
POOL_SIZE=${POOL_SIZE:-$THREADS}
CONCURRENCY=${CONCURRENCY:-$((WORKERS * THREADS))}
CPU=${CPU:-2}
MEMORY=${MEMORY:-512Mi}
# Requests fail with a 503 after 1.5 s timeouts long before this; a first-use migration (the
# fallback when the job did not run) is bounded by FACTS_MIGRATE_TIMEOUT (30 s) inside it.
TIMEOUT=${TIMEOUT:-60}
# The default: Cloud SQL for PostgreSQL with 1 vCPU and 3.75 GB (db-custom-1-3840), created with
# max_connections=100 (docs/deploy.md).
DB_MAX_CONNECTIONS=${DB_MAX_CONNECTIONS:-100}
DB_RESERVED_CONNECTIONS=${DB_RESERVED_CONNECTIONS:-10}
FUNCTIONS=(
    "random-fact random_fact functions/random_fact.py"
    "today-fact today_fact functions/today_fact.py"
)

per_instance=$((WORKERS * POOL_SIZE))
available=$((DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS))
fits=$((available / (per_instance * ${#FUNCTIONS[@]})))
MAX_INSTANCES=${MAX_INSTANCES:-$fits}
if [ "$fits" -lt 1 ] || [ "$MAX_INSTANCES" -lt 1 ] || [ "$MAX_INSTANCES" -gt "$fits" ]; then
    echo "the connection budget does not fit: $available connections cannot serve ${#FUNCTIONS[@]} functions x" \
        "$MAX_INSTANCES instances x $per_instance connections; raise DB_MAX_CONNECTIONS (a bigger tier)" \
        "or lower WORKERS, POOL_SIZE or MAX_INSTANCES" >&2
    exit 1
fi
echo "# connection budget: DB_MAX_CONNECTIONS $DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS $DB_RESERVED_CONNECTIONS = $available for the functions"
echo "# one instance: WORKERS $WORKERS x POOL_SIZE $POOL_SIZE = $per_instance connections at most"
echo "# --max-instances=$MAX_INSTANCES per function (the most that fits: $available / ($per_instance x ${#FUNCTIONS[@]} functions) = $fits):" \
    "at most $((MAX_INSTANCES * per_instance * ${#FUNCTIONS[@]})) of $available connections"

# Run a gcloud command, or print it in a dry run, single-quoting the arguments that need it so
# that a printed line can be pasted into a shell (or read back by shlex, as the tests do).
run() {
    if [ "$dry_run" = 0 ]; then
        "$@"
        return
    fi
    local arg line="" quote="'" escaped="'\''"
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            line+=" $arg"
        else
            line+=" $quote${arg//$quote/$escaped}$quote"
        fi
    done
    echo "${line# }"
}

# 1. The runtime service account and exactly the grants it needs.
if [ "$dry_run" = 1 ] || ! gcloud iam service-accounts describe "$ACCOUNT_EMAIL" --project="$PROJECT" >/dev/null 2>&1; then
    [ "$dry_run" = 1 ] && echo "# (only when $ACCOUNT_EMAIL does not exist yet)"
    run gcloud iam service-accounts create "$RUNTIME_ACCOUNT" --project="$PROJECT" \
        --display-name="facts-api functions at run time"
fi
for secret in "$DATABASE_SECRET" "$REDIS_SECRET"; do
    run gcloud secrets add-iam-policy-binding "$secret" --project="$PROJECT" \
        --member="serviceAccount:$ACCOUNT_EMAIL" --role=roles/secretmanager.secretAccessor --condition=None
done
cloudsql_flags=()
if [ -n "$CLOUDSQL_INSTANCE" ]; then
    run gcloud projects add-iam-policy-binding "$PROJECT" \
        --member="serviceAccount:$ACCOUNT_EMAIL" --role=roles/cloudsql.client --condition=None
    cloudsql_flags=(--set-cloudsql-instances="$CLOUDSQL_INSTANCE")
fi

# 2. Pinned secret versions: given, or the newest enabled one, resolved now.
pin_version() {  # variable name, secret
    local var=$1 secret=$2 resolved
    if [ -z "${!var}" ]; then
        local argv=(gcloud secrets versions list "$secret" --project="$PROJECT" --filter=state:ENABLED
            --sort-by=~createTime --limit=1 "--format=value(name.basename())")
        if [ "$dry_run" = 1 ]; then
            run "${argv[@]}"
            resolved=NEWEST_ENABLED_VERSION
        else
            resolved=$("${argv[@]}")
        fi
        if ! [[ "$resolved" =~ ^[0-9]+$ || "$dry_run" = 1 ]]; then
            echo "secret $secret has no enabled version (got '$resolved'); add one: docs/deploy.md" >&2
            exit 1
        fi
        printf -v "$var" '%s' "$resolved"
    fi
    echo "# $var=${!var} (secret $secret)"
}
pin_version DATABASE_SECRET_VERSION "$DATABASE_SECRET"
pin_version REDIS_SECRET_VERSION "$REDIS_SECRET"
database_secret="DATABASE_URL=$DATABASE_SECRET:$DATABASE_SECRET_VERSION"
secrets="$database_secret,REDIS_URL=$REDIS_SECRET:$REDIS_SECRET_VERSION"

# 3. Migrations, before any new instance starts: a Cloud Run job from the same upload
#    (.gcloudignore), the same account, the same way to the database. It waits for any other
#    migrator and is idempotent, so running it on every deploy is safe. (--quiet: the first deploy
#    from source offers to create the Artifact Registry repository for the image; accept, unasked.)
run gcloud run jobs deploy "$MIGRATION_JOB" --project="$PROJECT" --region="$REGION" --source=. --quiet \
    --command=python --args=-m,shared.schema --service-account="$ACCOUNT_EMAIL" \
    --set-secrets="$database_secret" --vpc-connector="$CONNECTOR" --vpc-egress=private-ranges-only \
    ${cloudsql_flags[@]+"${cloudsql_flags[@]}"} --tasks=1 --max-retries=1 --task-timeout=600s
run gcloud run jobs execute "$MIGRATION_JOB" --project="$PROJECT" --region="$REGION" --wait

# 4. The functions. The runtime loads main.py unless the build variable GOOGLE_FUNCTION_SOURCE
#    names another file, so each function names its own file (which puts the source root on
#    sys.path itself, so that `shared` imports).
for entry in "${FUNCTIONS[@]}"; do
    read -r name target source <<<"$entry"
    run gcloud functions deploy "$name" \
        --project="$PROJECT" --region="$REGION" --gen2 --runtime="$RUNTIME" \
        --trigger-http --allow-unauthenticated --ingress-settings="$INGRESS" \
        --source=. --entry-point="$target" \
        --set-build-env-vars="GOOGLE_FUNCTION_SOURCE=$source" \
        --service-account="$ACCOUNT_EMAIL" \
        --set-env-vars="WORKERS=$WORKERS,THREADS=$THREADS,FACTS_POOL_SIZE=$POOL_SIZE,CLOUD_RUN_TIMEOUT_SECONDS=$TIMEOUT" \
        --set-secrets="$secrets" \
        --vpc-connector="$CONNECTOR" --egress-settings=private-ranges-only \
        --max-instances="$MAX_INSTANCES" --concurrency="$CONCURRENCY" --cpu="$CPU" --memory="$MEMORY" \
        --timeout="${TIMEOUT}s"
    if [ -n "$CLOUDSQL_INSTANCE" ]; then
        # gcloud functions deploy has no Cloud SQL flag: the connection is added to the Cloud Run
        # service underneath (again after every deploy).
        run gcloud run services update "$name" --project="$PROJECT" --region="$REGION" \
            --add-cloudsql-instances="$CLOUDSQL_INSTANCE"
    fi
done
