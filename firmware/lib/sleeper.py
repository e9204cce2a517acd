# Sen firmware: deep sleep (mode "deep_sleep"; app.py imports this only then). Once
# sampled, wait (bounded) for the outbox to be sent and acked, then say "sleeping"
# (retained, with until) and sleep; unsent readings stay on flash.
import time

import asyncio
from log import crash_set


async def run(app):
    hal, mq = app.hal, app.mq
    wait = app.cfg["ack_wait_ms"]
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < wait + 10000 and not app.finished(wait):
        await asyncio.sleep_ms(50)
    ms = app.cfg["sleep_ms"]
    until = (hal.epoch_ms() or 0) + ms
    if mq.connected:
        try:
            await asyncio.wait_for_ms(mq.publish(
                app.t_status, app.status("sleeping", ',"until":%d' % until), 1, True), 2000)
            await asyncio.wait_for_ms(mq.wait_idle(), 2000)
        except asyncio.TimeoutError:
            pass
        await mq.disconnect()
    crash_set(0)
    hal.deepsleep(ms, until)
