"""App under load: a producer emits 2,000 events/s (step events of 2 arms, a dw event every 10th)
for 30 s into the live channel; the app (headless, via Textual's test driver) must show the last
step within 1 s of the producer finishing, and answer a key press quickly while the flood runs.

    python -m bench.app_load [--rate 2000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

from bench.result import Result
from engine.log import events as ev
from engine.log.channel import ChannelSource


class FloodSource(ChannelSource):
    """A live-like source: the same channel the engine fills, filled here by a producer thread."""

    def __init__(self, rate: int, seconds: float) -> None:
        super().__init__()
        self.rate, self.seconds = rate, seconds
        self.last_step = -1
        self.finished_at = float("nan")

    def produce(self) -> None:
        put, seq, start = self.channel.put, 0, time.time()
        names = [f"h.{b}.attn.{m}" for b in range(12) for m in "qkvo"]
        put(ev.Header(seq=0, t=start, run_id="load"))
        put(
            ev.RunStart(
                seq=1,
                t=start,
                config={"epochs": 1, "batch_size": 8, "block_size": 128},
                data={"n_train_batches": self.rate * int(self.seconds)},
                arms=[ev.ArmRecord("full", "full", trainable=1, total=1), ev.ArmRecord("targeted", "targeted", 1, 10)],
            )
        )
        seq, step, n_events = 2, 0, int(self.rate * self.seconds)
        while seq < n_events and not self.control.stop.is_set():
            due = start + seq / self.rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            loss = 4.0 / (1 + step / 1000)
            put(
                ev.Step(
                    seq=seq,
                    t=time.time(),
                    step=step,
                    epoch=0,
                    arms={"full": ev.ArmStep(loss, 0.01, 1e-3), "targeted": ev.ArmStep(loss * 1.05, 0.007, 1e-3)},
                )
            )
            seq += 1
            if step % 10 == 0:
                norms = dict.fromkeys(names, 0.01)
                record = ev.ArmDW(norms)
                put(ev.DW.of(step, {"full": record, "targeted": record}, seq=seq, t=time.time()))
                seq += 1
            self.last_step = step
            step += 1
        self.finished_at = time.monotonic()
        put(ev.RunEnd(seq=seq, t=time.time(), status="finished"))


async def drive(rate: int, seconds: float) -> tuple[float, float, float]:
    from freeze_tui.app import modes
    from freeze_tui.app.app import FreezeApp

    source = FloodSource(rate, seconds)
    app = FreezeApp(source)
    key_latency = float("nan")
    async with app.run_test(size=(160, 50)):
        producer = threading.Thread(target=source.produce, daemon=True)
        producer.start()
        await asyncio.sleep(seconds / 2)
        # post the key like a terminal would: pilot.press also waits for the app to go idle,
        # which it never does during a flood, and would time that wait instead
        from textual.events import Key

        pressed = time.monotonic()
        app.post_message(Key("2", "2"))
        while app.tabs.active != modes.tab_id(modes.DW):
            await asyncio.sleep(0.005)
        key_latency = time.monotonic() - pressed
        while producer.is_alive():
            await asyncio.sleep(0.05)
        while app.state.step < source.last_step and time.monotonic() - source.finished_at < 30:
            await asyncio.sleep(0.01)
        lag = time.monotonic() - source.finished_at
        achieved = (app.state.n_events) / max(1e-9, seconds)
    return lag, key_latency, achieved


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    lag, key, achieved = asyncio.run(drive(args.rate, args.seconds))
    note = f"{args.rate} events/s for {args.seconds:.0f} s; the app folded {achieved:.0f} events/s"
    return [
        Result("app: last step shown after producer ends (s)", lag, 1.0, "s", higher_is_better=False, note=note),
        Result("app: key press answered during the flood (s)", key, 0.5, "s", higher_is_better=False),
    ]


if __name__ == "__main__":
    for result in main():
        print(result.line())
