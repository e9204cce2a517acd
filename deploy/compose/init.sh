#!/bin/sh
# One-shot set-up of the Compose stack's secrets (idempotent; run by the "init" service as root):
# InfluxDB admin password and API token, Grafana's admin password, the broker's accounts
# (the gateway, three devices of site "lab") with password file and ACL, and a local CA + TLS
# certificate for the broker. Nothing here is committed to git; it lives in named volumes.
set -eu
S=/run/sen
B=/sen/broker
umask 077
mkdir -p "$S" "$B"
secret() { [ -s "$S/$1" ] || python -c 'import secrets; print(secrets.token_urlsafe(32))' > "$S/$1"; }
secret influxdb-token
secret influxdb-password
secret grafana-admin-password
[ -f "$B/secrets/sen-gateway.password" ] || sen broker add-gateway --dir "$B"
for device in esp32-0001 esp32-0002 esp32-0003; do
    [ -f "$B/secrets/farm.$device.password" ] || sen broker add-device --dir "$B" --site farm --device "$device"
done
[ -f "$B/tls/server.crt" ] || sen broker tls --out "$B/tls" --host mosquitto --host localhost --host 127.0.0.1
cp "$B/secrets/sen-gateway.password" "$S/mqtt-gateway-password"
# Demo-grade sharing between containers that run as different users (mosquitto 1883,
# grafana 472, sen): the broker's files go to the mosquitto user, the rest is readable in the
# volumes. On a real host use `sen broker` with mode 0640 files and a group instead.
chown -R 1883:1883 "$B"
chmod 0644 "$S"/* "$B/tls/ca.crt" "$B/tls/server.crt"
chmod 0755 "$S"
echo "init: secrets ready; device passwords in the broker volume under secrets/"
