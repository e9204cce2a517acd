# Sen firmware: the samplers for config's sensors, at boot (sensors.build runs this module
# and drops it: its code is garbage once the samplers exist). A sensor's driver comes from
# the HAL (hal.driver), or for the kit's sensors (DS18B20, soil probe, BH1750, HC-SR04, an
# ADC channel: hardware/WIRING.md) from kit() below; a DS18B20 entry gives a driver, and a
# sampler, per probe. Names: config's, else the driver's; two unnamed ones of a
# kind are told apart by their address (sht31_44, sht31_45). Intervals changed by cmd
# (sensors.STATE) win over config's.
import json
import sys

from sensors import STATE, Sampler


def build(specs, hal, log):
    out = []
    named = []  # the samplers config names
    for s in specs:
        t = s["type"]
        try:
            if t in ("ds18b20", "soil", "bh1750", "hcsr04", "adc"):
                ds = kit(s, hal, log)
            else:
                ds = [hal.driver(t, s.get("addr"))]
        except (OSError, ValueError) as e:
            log("sensor %s: cannot set up (%r), skipped" % (t, e))
            ds = [None]
        for d in ds:
            if d is None:
                log("sensor %s: not available on this board, skipped" % t)
                continue
            x = Sampler(d, s["interval_ms"], s.get("filter"))
            if s.get("name"):
                if len(ds) == 1:
                    x.name = s["name"]
                named.append(x)
            out.append(x)
    names = [x.name for x in out]
    for x in out:  # two sensors of one type: name them by address
        if names.count(x.name) > 1 and x not in named:
            x.name = "%s_%x" % (x.name, getattr(x.drv, "addr", 0))
    try:  # intervals changed by cmd
        with open(STATE) as f:
            st = json.load(f)
        for x in out:
            v = st.get("i_" + x.name, st.get("interval_ms"))
            if isinstance(v, int) and 10 <= v <= 86400000:
                x.every = v
    except (OSError, ValueError, AttributeError):
        pass
    return out


# A kit sensor's drivers: one, or one per DS18B20 probe on its pin. Each driver's module is
# loaded only when config names its type; the pin primitives come from hal_io on an ESP32
# (hal_esp32 has none of them), from the simulated devices on the unix port (the same calls).
def kit(s, hal, log):
    t = s["type"]
    if sys.platform == "esp32":
        import hal_io as io
    else:
        try:
            import simkit as io  # type: ignore[import-not-found]  # hardware/simdev
        except ImportError:
            return [None]
    if t == "ds18b20":
        import drv_ds18b20
        return drv_ds18b20.probes(s, hal._cfg, io, log)
    import drv_kit
    f = io.i2c(hal) if t == "bh1750" else io.ping(s) if t == "hcsr04" else io.adc(s)
    return [f and drv_kit.Kit(t, f, s)]
