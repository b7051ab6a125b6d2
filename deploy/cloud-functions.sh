#!/usr/bin/env bash
# Deploy both functions to Cloud Run (as Cloud Run functions), after migrating the database.
#
#   PROJECT=my-project REGION=europe-west1 deploy/cloud-functions.sh [--dry-run]
#
# --dry-run prints every gcloud command (and the connection budget) instead of running it; it
# still stages the uploads (local files only) and keeps them, so that its lines can be pasted.
# It cannot ask whether the services exist: DRY_RUN_AS=update (the default) prints a later
# deploy, DRY_RUN_AS=first the first one. The full checklist is docs/deploy.md. In order:
#   1. makes the runtime service account RUNTIME_ACCOUNT (if missing) and grants it
#      roles/secretmanager.secretAccessor on exactly the two secrets (and roles/cloudsql.client
#      when CLOUDSQL_INSTANCE is set, for the socket form of DATABASE_URL);
#   2. pins the secret versions: DATABASE_SECRET_VERSION / REDIS_SECRET_VERSION, by default the
#      newest enabled version, resolved now and printed (secrets exposed as environment variables
#      are read once per instance, so `latest` would mix versions across instances);
#   3. stages the uploads (deploy/stage-uploads.sh): the functions' files with a pinned Python,
#      and the same files with a Procfile for the migration job;
#   4. migrates: builds the job's image on a named builder with a named Python (deploy/build-rules.toml
#      says what each builder offers), deploys the job from that image, runs it and waits;
#   5. deploys each function with `gcloud run deploy --function --base-image`: on the first deploy
#      with traffic, later with no traffic under the tag CANDIDATE_TAG;
#   6. verifies each new revision with a smoke request (devkit/cloudrun/smoke.py: a 200, and
#      readiness of Postgres and Redis) before any traffic moves, then moves the traffic to it;
#   7. checks the public invoker binding (allUsers, roles/run.invoker) and fails loudly without it.
#
# Connection budget: every instance opens at most WORKERS x POOL_SIZE Postgres connections; two
# functions share the database; Cloud Run may briefly run up to twice max-instances; and for a
# while after a deploy the previous revision's instances still hold theirs (until Postgres's
# idle_session_timeout ends them). So --max-instances = (DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS)
# / (WORKERS x POOL_SIZE x 2 functions x 2 revisions x 2), rounded down. The reserve covers
# Cloud SQL's own and superuser slots, the migration job and an operator's psql.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
DRY_RUN_AS=${DRY_RUN_AS:-update}
case "$DRY_RUN_AS" in
    first | update) ;;
    *) echo "DRY_RUN_AS must be first or update (got '$DRY_RUN_AS')" >&2; exit 2 ;;
esac
case "${1:-}" in
    --dry-run) dry_run=1 ;;
    "") ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}"
# Direct VPC egress: the instances get addresses in this subnet (no connector to pay for).
NETWORK=${NETWORK:-default}
SUBNET=${SUBNET:-default}
DATABASE_SECRET=${DATABASE_SECRET:-facts-database-url}
REDIS_SECRET=${REDIS_SECRET:-facts-redis-url}
DATABASE_SECRET_VERSION=${DATABASE_SECRET_VERSION:-}
REDIS_SECRET_VERSION=${REDIS_SECRET_VERSION:-}
RUNTIME_ACCOUNT=${RUNTIME_ACCOUNT:-facts-runtime}
ACCOUNT_EMAIL="$RUNTIME_ACCOUNT@$PROJECT.iam.gserviceaccount.com"
CLOUDSQL_INSTANCE=${CLOUDSQL_INSTANCE:-}   # PROJECT:REGION:INSTANCE, only for the socket form
MIGRATION_JOB=${MIGRATION_JOB:-facts-migrate}
# A public HTTP API: all. Behind an external load balancer (Cloud Armor, CDN): internal-and-cloud-load-balancing.
INGRESS=${INGRESS:-all}
# The base image of the functions; the staged uploads pin the same Python for every build.
RUNTIME=${RUNTIME:-python312}
if ! [[ "$RUNTIME" =~ ^python3([0-9]+)$ ]]; then
    echo "RUNTIME must be a Python base image such as python312 (got '$RUNTIME')" >&2
    exit 2
fi
PYTHON_VERSION="3.${BASH_REMATCH[1]}.*"
# The migration job's image is built on this builder, named rather than left to gcloud's default
# (the universal builder, whose Ubuntu 24 stack has no Python 3.12: deploy/build-rules.toml).
JOB_BUILDER=${JOB_BUILDER:-gcr.io/buildpacks/builder:google-22}
ARTIFACT_REPOSITORY=${ARTIFACT_REPOSITORY:-facts}
IMAGE_TAG=${IMAGE_TAG:-$(date -u +%Y%m%d-%H%M%S)}
JOB_IMAGE="$REGION-docker.pkg.dev/$PROJECT/$ARTIFACT_REPOSITORY/$MIGRATION_JOB:$IMAGE_TAG"
# The tag a new revision gets while it is verified, before it takes traffic.
CANDIDATE_TAG=${CANDIDATE_TAG:-candidate}
# Where Cloud Run's startup probe and the smoke request ask for readiness (shared/readiness.py).
READY_PATH=/_ready
SMOKE_ATTEMPTS=${SMOKE_ATTEMPTS:-3}  # a revision just made ready may still be warming its connections
# Settings a deploy adds to the functions' own: comma-separated NAME=VALUE pairs for
# --set-env-vars, and NAME=SECRET:VERSION (or /path=SECRET:VERSION) pairs for --set-secrets
# (e.g. the CA certificates the TLS settings of docs/deploy.md name).
EXTRA_ENV_VARS=${EXTRA_ENV_VARS:-}
EXTRA_SECRETS=${EXTRA_SECRETS:-}
STAGE_DIR=${STAGE_DIR:-}
CPU=${CPU:-2}
# The server shape, from the one function the harness and the pool read too (shared/config.py's
# server_shape, measured by bench/server_config.py): one gunicorn worker per CPU of an instance
# (WORKERS), 4 threads each (THREADS) and as many concurrent requests; each worker's pool holds
# one connection per thread (POOL_SIZE). Each may be set to override.
shape=$(FACTS_POOL_SIZE="${POOL_SIZE:-${FACTS_POOL_SIZE:-}}" "${PYTHON:-python3}" -m shared.config --shape --cpus "$CPU")
eval "$shape"  # WORKERS=n THREADS=n POOL_SIZE=n, numbers checked by server_shape
CONCURRENCY=${CONCURRENCY:-$((WORKERS * THREADS))}
MEMORY=${MEMORY:-512Mi}
# Cloud Run's own bound on a request (--timeout). Requests fail with a 503 after 1.5 s timeouts
# long before this; a first-use migration (the fallback when the job did not run) is bounded by
# FACTS_MIGRATE_TIMEOUT (30 s) inside it. The instances get CLOUD_RUN_TIMEOUT_SECONDS=0: the
# functions framework makes that gunicorn's worker timeout, and any other value lets the
# arbiter kill every worker of an instance that wakes from a throttled idle longer than it.
TIMEOUT=${TIMEOUT:-60}
# The default: Cloud SQL for PostgreSQL with 2 vCPU and 7.5 GB (db-custom-2-7680), created with
# max_connections=400, Cloud SQL's default for that memory size (docs/deploy.md).
DB_MAX_CONNECTIONS=${DB_MAX_CONNECTIONS:-400}
DB_RESERVED_CONNECTIONS=${DB_RESERVED_CONNECTIONS:-10}
FUNCTIONS=(
    "random-fact random_fact functions/random_fact.py"
    "today-fact today_fact functions/today_fact.py"
)
# Right after a deploy the old revision's instances still hold connections while the new one's
# open theirs; and Cloud Run may briefly run more instances than max-instances (up to about 2x).
REVISIONS=2
BURST=2

per_instance=$((WORKERS * POOL_SIZE))
available=$((DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS))
per_max_instance=$((per_instance * ${#FUNCTIONS[@]} * REVISIONS * BURST))
fits=$((available / per_max_instance))
MAX_INSTANCES=${MAX_INSTANCES:-$fits}
if [ "$fits" -lt 1 ] || [ "$MAX_INSTANCES" -lt 1 ] || [ "$MAX_INSTANCES" -gt "$fits" ]; then
    echo "the connection budget does not fit: $available connections cannot serve ${#FUNCTIONS[@]} functions x" \
        "$REVISIONS revisions x $BURST (burst) x $MAX_INSTANCES instances x $per_instance connections; raise" \
        "DB_MAX_CONNECTIONS (a bigger tier) or lower WORKERS, POOL_SIZE or MAX_INSTANCES" >&2
    exit 1
fi
echo "# connection budget: DB_MAX_CONNECTIONS $DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS $DB_RESERVED_CONNECTIONS = $available for the functions"
echo "# one instance: WORKERS $WORKERS x POOL_SIZE $POOL_SIZE = $per_instance connections at most"
echo "# worst case: ${#FUNCTIONS[@]} functions x $REVISIONS revisions x $BURST (Cloud Run's brief burst above max-instances)" \
    "x max-instances x $per_instance = $per_max_instance connections per unit of max-instances"
echo "# --max-instances=$MAX_INSTANCES per function (the most that fits: $available / $per_max_instance = $fits):" \
    "at most $((MAX_INSTANCES * per_max_instance)) of $available connections"

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
cloudsql=()
if [ -n "$CLOUDSQL_INSTANCE" ]; then
    run gcloud projects add-iam-policy-binding "$PROJECT" \
        --member="serviceAccount:$ACCOUNT_EMAIL" --role=roles/cloudsql.client --condition=None
    # --set (not --add): the job and each service get exactly this list, however often it runs.
    cloudsql=(--set-cloudsql-instances="$CLOUDSQL_INSTANCE")
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

# TLS: each server's CA (Cloud SQL's and Memorystore's server CA, docs/deploy.md sections 3-5) is a
# secret too, mounted as a file at the path the URL names (sslrootcert=, ssl_ca_certs=), granted
# and pinned like the URLs. Unset: nothing mounted (the socket form needs no CA file).
DATABASE_CA_SECRET=${DATABASE_CA_SECRET:-} DATABASE_CA_SECRET_VERSION=${DATABASE_CA_SECRET_VERSION:-}
REDIS_CA_SECRET=${REDIS_CA_SECRET:-} REDIS_CA_SECRET_VERSION=${REDIS_CA_SECRET_VERSION:-}
mount_ca() {  # the variable naming the secret, the file's path in the instances; sets ca_mount
    local secret=${!1} version=${1}_VERSION
    ca_mount=""
    [ -n "$secret" ] || return 0
    run gcloud secrets add-iam-policy-binding "$secret" --project="$PROJECT" \
        --member="serviceAccount:$ACCOUNT_EMAIL" --role=roles/secretmanager.secretAccessor --condition=None
    pin_version "$version" "$secret"
    ca_mount=",$2=$secret:${!version}"
}
mount_ca DATABASE_CA_SECRET /secrets/postgres-ca/server-ca.pem
database_secret+=$ca_mount
secrets+=$ca_mount
mount_ca REDIS_CA_SECRET /secrets/redis-ca/server-ca.pem
secrets+=$ca_mount
secrets+=${EXTRA_SECRETS:+,$EXTRA_SECRETS}

# 3. The uploads, staged: a folder of our own unless STAGE_DIR names one (then it is kept). A dry
#    run keeps its folder too, so that the printed --source paths exist when pasted.
if [ -z "$STAGE_DIR" ]; then
    STAGE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/facts-deploy.XXXXXX")
    if [ "$dry_run" = 0 ]; then
        trap 'rm -rf "$STAGE_DIR"' EXIT
    fi
fi
deploy/stage-uploads.sh "$STAGE_DIR" "$PYTHON_VERSION"
echo "# uploads staged in $STAGE_DIR: functions/ (the .gcloudignore set + .python-version $PYTHON_VERSION)," \
    "migration-job/ (the same + Procfile)"
network=(--network="$NETWORK" --subnet="$SUBNET" --vpc-egress=private-ranges-only)

# 4. Migrations, before any new instance starts: a Cloud Run job from an image built here on
#    JOB_BUILDER with the functions' Python (GOOGLE_PYTHON_VERSION, which wins over the upload's
#    .python-version), the same account, the same way to the database. No --command: the image's
#    entrypoint is the buildpack launcher, which puts its Python and the installed packages on
#    PATH and runs the Procfile's web process. The step waits for any other migrator and is
#    idempotent, so it runs on every deploy.
if [ "$dry_run" = 1 ] || ! gcloud artifacts repositories describe "$ARTIFACT_REPOSITORY" --project="$PROJECT" \
    --location="$REGION" >/dev/null 2>&1; then
    [ "$dry_run" = 1 ] && echo "# (only when the repository $ARTIFACT_REPOSITORY does not exist yet)"
    run gcloud artifacts repositories create "$ARTIFACT_REPOSITORY" --project="$PROJECT" --location="$REGION" \
        --repository-format=docker --description="facts-api images"
fi
run gcloud builds submit "$STAGE_DIR/migration-job" --project="$PROJECT" --region="$REGION" --quiet \
    --pack="image=$JOB_IMAGE,builder=$JOB_BUILDER,env=GOOGLE_PYTHON_VERSION=$PYTHON_VERSION"
run gcloud run jobs deploy "$MIGRATION_JOB" --project="$PROJECT" --region="$REGION" --quiet \
    --image="$JOB_IMAGE" --service-account="$ACCOUNT_EMAIL" \
    --set-secrets="$database_secret${EXTRA_SECRETS:+,$EXTRA_SECRETS}" --set-env-vars="GOOGLE_CLOUD_PROJECT=$PROJECT${EXTRA_ENV_VARS:+,$EXTRA_ENV_VARS}" \
    "${network[@]}" ${cloudsql[@]+"${cloudsql[@]}"} --tasks=1 --max-retries=1 --task-timeout=600s
run gcloud run jobs execute "$MIGRATION_JOB" --project="$PROJECT" --region="$REGION" --wait

# 5. The functions: `gcloud run deploy --function` builds on the base image RUNTIME (its stack
#    and Python: deploy/build-rules.toml) with the functions-framework buildpack
#    (GOOGLE_FUNCTION_SOURCE names each function's file, which puts the source root on sys.path
#    itself, so that `shared` imports) and makes ONE revision with everything below. The startup
#    probe asks READY_PATH, which answers 200 only once Postgres answers: Direct VPC egress may
#    take a minute or more to connect a new instance, and until then it gets no traffic.
function_env="WORKERS=$WORKERS,THREADS=$THREADS,FACTS_POOL_SIZE=$POOL_SIZE,CLOUD_RUN_TIMEOUT_SECONDS=0"
# The project, so that log lines carry projects/PROJECT/traces/TRACE (Cloud Run sets no such variable).
function_env+=",GOOGLE_CLOUD_PROJECT=$PROJECT${EXTRA_ENV_VARS:+,$EXTRA_ENV_VARS}"
deploy_function() {  # name target source, then flags of this deploy
    local name=$1 target=$2 source=$3
    shift 3
    run gcloud run deploy "$name" --project="$PROJECT" --region="$REGION" --quiet \
        --source="$STAGE_DIR/functions" --function="$target" --base-image="$RUNTIME" \
        --set-build-env-vars="GOOGLE_FUNCTION_SOURCE=$source" \
        --allow-unauthenticated --ingress="$INGRESS" \
        --service-account="$ACCOUNT_EMAIL" \
        --set-env-vars="$function_env" \
        --set-secrets="$secrets" "${network[@]}" ${cloudsql[@]+"${cloudsql[@]}"} \
        --startup-probe="httpGet.path=$READY_PATH,timeoutSeconds=4,periodSeconds=5,failureThreshold=36" \
        --max-instances="$MAX_INSTANCES" --concurrency="$CONCURRENCY" --cpu="$CPU" --memory="$MEMORY" \
        --timeout="${TIMEOUT}s" "$@"
}

exists() {  # service: whether it is deployed already (a dry run prints the DRY_RUN_AS case)
    if [ "$dry_run" = 1 ]; then
        run gcloud run services describe "$1" --project="$PROJECT" --region="$REGION" "--format=value(metadata.name)"
        [ "$DRY_RUN_AS" = update ]
        return
    fi
    gcloud run services describe "$1" --project="$PROJECT" --region="$REGION" --format="value(metadata.name)" \
        >/dev/null 2>&1
}

# 6. Verify each new revision before it takes traffic: GET / answers 200 and READY_PATH reports
#    both servers ready, as the deployer (an identity token), so that a missing public binding
#    cannot hide behind the check below. devkit/cloudrun/smoke.py reads the revision's URL (the
#    tag's, or the service's) from the service's description and makes the requests; the
#    loopback rehearsal (devkit/cloudrun/rollout.py) runs the same check. The first deploy has no
#    older revision to keep serving: it takes traffic at once and is verified right after.
smoke() {  # service, tag (empty: the service's own URL)
    local describe=(gcloud run services describe "$1" --project="$PROJECT" --region="$REGION" --format=json)
    if [ "$dry_run" = 1 ]; then
        run "${describe[@]}"
        run gcloud auth print-identity-token
        echo "# smoke request to the ${2:-service} URL of $1 read from that description: GET / and" \
            "GET $READY_PATH answer 200, postgres and redis ok, before any traffic moves"
        return
    fi
    "${describe[@]}" | SMOKE_TOKEN=$(gcloud auth print-identity-token) \
        "${PYTHON:-python3}" -m devkit.cloudrun.smoke --tag="$2" --ready-path="$READY_PATH" --attempts="$SMOKE_ATTEMPTS"
}

candidates=()
for entry in "${FUNCTIONS[@]}"; do
    read -r name target source <<<"$entry"
    if exists "$name"; then
        deploy_function "$name" "$target" "$source" --no-traffic --tag="$CANDIDATE_TAG"
        candidates+=("$name")
    else
        deploy_function "$name" "$target" "$source"
        if ! smoke "$name" ""; then
            echo "FAILED: the first revision of $name does not answer; there is no older one to keep." \
                "Its logs: gcloud run services logs read $name --project=$PROJECT --region=$REGION" >&2
            exit 1
        fi
    fi
done
for name in ${candidates[@]+"${candidates[@]}"}; do
    if ! smoke "$name" "$CANDIDATE_TAG"; then
        echo "FAILED: the candidate revision of $name (tag $CANDIDATE_TAG) failed its smoke request; no traffic" \
            "moved, the previous revisions of every function keep serving. Look at it:" \
            "gcloud run services logs read $name --project=$PROJECT --region=$REGION; and" \
            "gcloud run revisions list --service=$name --project=$PROJECT --region=$REGION" >&2
        exit 1
    fi
done
# Both verified: only now does traffic move, to the revision each deploy just made.
for name in ${candidates[@]+"${candidates[@]}"}; do
    run gcloud run services update-traffic "$name" --project="$PROJECT" --region="$REGION" --to-latest
done

# 7. The public invoker binding: --allow-unauthenticated only warns when an organisation policy
#    (domain-restricted sharing) refuses it, and the API then answers 403 to everyone.
for entry in "${FUNCTIONS[@]}"; do
    read -r name _ _ <<<"$entry"
    argv=(gcloud run services get-iam-policy "$name" --project="$PROJECT" --region="$REGION"
        "--flatten=bindings[].members" "--filter=bindings.role=roles/run.invoker AND bindings.members=allUsers"
        "--format=value(bindings.members)")
    if [ "$dry_run" = 1 ]; then
        run "${argv[@]}"
        continue
    fi
    if [ "$("${argv[@]}")" != allUsers ]; then
        echo "FAILED: $name is deployed but not public: allUsers lacks roles/run.invoker (an organisation policy?)." \
            "Every request gets a 403. See docs/deploy.md, 'Public access'." >&2
        exit 1
    fi
done
echo "# deployed: ${#FUNCTIONS[@]} functions verified and serving"
