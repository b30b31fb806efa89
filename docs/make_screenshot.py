"""Regenerate docs/screenshot.svg (and .png with rsvg-convert) from a recorded sample run:
python docs/make_screenshot.py sample_runs/demo-full-vs-targeted.jsonl [VIEW]"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from engine.log.sources import ReplaySource
from freeze_tui.app.app import FreezeApp

DOCS = Path(__file__).parent


async def shoot(log: str, view: str) -> Path:
    app = FreezeApp(ReplaySource(log, None))
    async with app.run_test(size=(160, 50)) as pilot:
        while not app.source_finished:
            await pilot.pause(0.1)
        await pilot.press(view)
        await pilot.pause(1.5)  # let throttled chart redraws land
        app.redraw()
        await pilot.pause(0.5)
        return Path(app.save_screenshot("screenshot.svg", str(DOCS)))


if __name__ == "__main__":
    svg = asyncio.run(shoot(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "1"))
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
    else:  # pip install cairosvg (a dev tool, not a dependency)
        import cairosvg

        cairosvg.svg2png(url=str(svg), write_to=str(svg.with_suffix(".png")), output_width=1920)
    print(svg)
