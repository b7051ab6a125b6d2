#!/usr/bin/env bash
# Deploy both functions to Cloud Functions (2nd gen, i.e. Cloud Run) from this repository.
#
#   PROJECT=my-project REGION=europe-west1 CONNECTOR=facts-connector deploy/cloud-functions.sh [--dry-run]
#
# Needs: gcloud, two Secret Manager secrets holding the URLs (names overridable):
#   facts-database-url  postgresql://USER:PASSWORD@CLOUD_SQL_PRIVATE_IP:5432/facts
#   facts-redis-url     redis://MEMORYSTORE_IP:6379/0
# and a Serverless VPC Access connector (Memorystore has only a private IP; Cloud SQL's private IP
# is reached through the same connector).
#
# Source layout: the deployed source is the repository root (see .gcloudignore: only functions/,
# shared/ and requirements.txt go up). The Python runtime loads main.py unless the build variable
# GOOGLE_FUNCTION_SOURCE names another file, so each function names its own file, and the file
# puts the source root on sys.path itself so that `shared` imports.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${CONNECTOR:?set CONNECTOR (Serverless VPC Access)}"
DATABASE_SECRET=${DATABASE_SECRET:-facts-database-url}
REDIS_SECRET=${REDIS_SECRET:-facts-redis-url}
RUNTIME=${RUNTIME:-python312}
# Measured (bench/run.py, README): per instance, 2 gunicorn workers with 4 threads each and as
# many concurrent requests; a request never needs more than a few seconds (timeouts of 1.5 s).
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-4}
CONCURRENCY=${CONCURRENCY:-8}
CPU=${CPU:-2}
MEMORY=${MEMORY:-512Mi}
TIMEOUT=${TIMEOUT:-10}

run=()
[ "${1:-}" = "--dry-run" ] && run=(echo)

# name  entry point  source file
while read -r name target source; do
    "${run[@]}" gcloud functions deploy "$name" \
        --project="$PROJECT" --region="$REGION" --gen2 --runtime="$RUNTIME" \
        --trigger-http --allow-unauthenticated \
        --source=. --entry-point="$target" \
        --set-build-env-vars="GOOGLE_FUNCTION_SOURCE=$source" \
        --set-env-vars="WORKERS=$WORKERS,THREADS=$THREADS,CLOUD_RUN_TIMEOUT_SECONDS=$TIMEOUT" \
        --set-secrets="DATABASE_URL=$DATABASE_SECRET:latest,REDIS_URL=$REDIS_SECRET:latest" \
        --vpc-connector="$CONNECTOR" --egress-settings=private-ranges-only \
        --concurrency="$CONCURRENCY" --cpu="$CPU" --memory="$MEMORY" --timeout="${TIMEOUT}s"
done <<'FUNCTIONS'
random-fact random_fact functions/random_fact.py
today-fact today_fact functions/today_fact.py
FUNCTIONS
