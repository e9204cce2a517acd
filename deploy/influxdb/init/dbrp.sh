#!/bin/sh
# Run once by the influxdb:2 image after its first set-up (docker-entrypoint-initdb.d):
# map the InfluxQL database/retention policy "sen"/"autogen" to the bucket, so Grafana's
# InfluxQL queries and `sen web` (both via /query) find the data.
set -eu
influx v1 dbrp create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
    --rp autogen \
    --default
