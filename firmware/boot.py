# Sen firmware, ESP32 boot: keep it minimal; main.py does the work.
import gc

gc.collect()
