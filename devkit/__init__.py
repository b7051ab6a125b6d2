"""The dev kit: what the harness, the tests and the benchmark need beside the deployed code.

Two rooms, by job; `cloudrun` builds on `servers`, never the other way round (tests/test_layers.py):

- `devkit.servers`: Postgres + Redis of any kind, each started by a context manager yielding the
  same `Servers` and stopping only what it started.
    - `protocol`: `Servers`, the `Server` a fault test stops and freezes, `ServerStartError`
    - `external`, `embedded`, `containers`: the kinds (`start_servers(kind)` picks one)
    - `pgcluster`: initdb once, then a cheap copy per cluster
    - `processes`, `ports`, `waiting`: the process plumbing every kind shares
- `devkit.cloudrun`: Cloud Run on loopback, started from what a deploy uploads.
    - `upload_copy`: the upload set and its virtualenv, as the buildpack installs it
    - `deployed`: the deploy's environment and limits, read from its dry run
    - `instances`: functions-framework processes with Cloud Run's environment, frozen and thawed
    - `front`: one port routing to a fixed fleet, the revision that takes the traffic
    - `service`, `autoscale`: one function's instances scaled from zero (queue, limits, freeze,
      idle stop, revisions) and the front over them (`serve --like cloud-run`)
    - `cold_start`: a cold start timed from outside and from the instance's own log
    - `traffic`: a request, a bounded burst, a steady load
    - `scratch_postgres`: an empty Postgres with the max_connections asked for, and its sampler
    - `smoke`: the smoke request a new revision passes before it takes traffic (the deploy runs it too)
    - `rollout`: deploy with no traffic, verify, promote, on the instances and the front

devkit imports neither tests/ nor bench/ nor devharness/, and imports absolutely (one style).
"""
