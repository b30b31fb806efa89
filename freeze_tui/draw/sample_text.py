"""One generated sample as rich Text: the prompt (dim), then the generated tokens with those in S (the
corpus's common tokens) highlighted; shared by the Samples view's list and its side-by-side mode. Pure."""

from __future__ import annotations

from rich.text import Text

from engine.log.state import RunState, SampleSet
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.safe_text import safe

SAMPLE_CHARS = 600  # cap one sample so a runaway generation cannot flood the view


def phase_label(sample_set: SampleSet) -> str:
    if sample_set.phase == "pre":
        return "before training (all arms)"
    if sample_set.phase == "epoch":
        return f"after epoch {sample_set.epoch + 1}"
    return sample_set.phase


def sample_text(sample, palette: Palette = PLAIN, with_prompt: bool = True) -> Text:
    """Prompt (dim) then the generated tokens, those in S highlighted."""
    out = Text.assemble(safe(sample.prompt, "dim italic", max_len=200), (" ▸ ", "dim")) if with_prompt else Text()
    used = 0
    for item in sample.tokens or [[sample.text, False]]:
        token, in_s = (item[0], bool(item[1])) if isinstance(item, (list, tuple)) and item else (item, False)
        piece = safe(token, palette.style("in-s") if in_s else "", max_len=SAMPLE_CHARS - used)
        used += len(piece.plain)
        out += piece
        if used >= SAMPLE_CHARS:
            break
    return out


def no_samples(state: RunState, before: bool) -> str:
    """Why a set is empty: sampling off, the run ended before that point, or not yet (samples are taken
    before training and at each epoch's end)."""
    if state.settings.samples == 0:
        return "no samples: sampling is off (--samples 0)"
    if not state.finished:
        return "no samples yet (taken before training)" if before else "no samples yet (taken at each epoch's end)"
    when = "before sampling began" if before else "before the first epoch's end, when samples are taken"
    return f"no samples: the run {state.status} {when}"
