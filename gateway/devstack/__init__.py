"""Private Mosquitto, InfluxDB 1.x and VictoriaMetrics instances: a helper for the tests, the
benchmarks and the demo, never part of the gateway service (which imports none of it)."""

from gateway.devstack.influx import InfluxDB, VictoriaMetrics
from gateway.devstack.mosquitto import Mosquitto
from gateway.devstack.process import DevStackError, Service, find_program, free_port, port_open

__all__ = ["DevStackError", "InfluxDB", "Mosquitto", "Service", "VictoriaMetrics", "find_program",
           "free_port", "port_open"]
