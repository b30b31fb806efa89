"""The Samples view's side-by-side mode (`c`): one prompt and seed, the text before training and every
arm's latest text in columns (stacked when the view is narrow), common tokens highlighted as in the list.
Sample `index` pairs across arms and phases (same prompt and seed), so `n` / `N` step through indices."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from engine.log.state import RunState, SampleSet
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.safe_text import safe
from freeze_tui.draw.sample_text import no_samples, phase_label, sample_text

COLUMN_MIN = 30  # narrower columns than this wrap a sample into a ribbon: stack them instead


def sample_indices(state: RunState) -> list[int]:
    """Every sample index some set (before training or an arm's latest) has, in order."""
    sets = [state.pre_samples, *(arm.samples for arm in state.arms.values())]
    return sorted({s.index for sample_set in sets if sample_set for s in sample_set.samples})


def prompt_and_seed(state: RunState, index: int) -> tuple[int, int]:
    """(prompt number, seed number), 1-based: the seed counts the earlier samples of the same prompt."""
    sets = [state.pre_samples, *(arm.samples for arm in state.arms.values())]
    found = {s.index: s for sample_set in sets if sample_set for s in sample_set.samples}
    prompt = _prompt(found[index]) if index in found else 0
    seed = sum(1 for i, s in found.items() if i < index and _prompt(s) == prompt)
    return prompt + 1, seed + 1


def _first(state: RunState, index: int):
    """Some sample with this index (all share its prompt)."""
    sets = [state.pre_samples, *(arm.samples for arm in state.arms.values())]
    return next((s for sample_set in sets if sample_set for s in sample_set.samples if s.index == index), None)


def _prompt(sample) -> int:
    value = sample.prompt_index
    return value if isinstance(value, int) else 0


def _cell(title: Text, sample_set: SampleSet | None, index: int, palette: Palette, empty: str) -> tuple[Text, Text]:
    sample = next((s for s in sample_set.samples if s.index == index), None) if sample_set else None
    if sample is None:  # no set yet: say why; a set without this index: say so
        return title, Text(empty if not sample_set else "no sample with this prompt and seed", style="dim")
    p = f", p {100 * sample.p:.0f} %" if isinstance(sample.p, (int, float)) else ""
    said = Text(f"{phase_label(sample_set)}{p}\n", style="dim") if sample_set else Text()
    return title, said + sample_text(sample, palette, with_prompt=False)  # the prompt is said once, above


def side_by_side(state: RunState, position: int, width: int, palette: Palette = PLAIN) -> RenderableType:
    """Sample `position` (of sample_indices) of every set: columns when each gets COLUMN_MIN, else stacked."""
    indices = sample_indices(state)
    if not indices:
        return Text("no samples to compare yet", style="dim")
    index = indices[position % len(indices)]
    prompt, seed = prompt_and_seed(state, index)
    top = Text(
        f"sample {position % len(indices) + 1} of {len(indices)}: prompt {prompt}, seed {seed} "
        "(every arm the same prompt and seed)   n / N other samples   c back to the list",
        style="dim",
    )
    said = _first(state, index)
    if said is not None:
        top = Text("\n").join([top, Text.assemble(("prompt ▸ ", "dim"), safe(said.prompt, "italic", max_len=200))])
    cells = [_cell(Text("pre", style="bold"), state.pre_samples, index, palette, no_samples(state, True))]
    for i, (name, arm) in enumerate(state.arms.items()):
        title = safe(name, Style(bold=True) + palette.arm(i), max_len=24)
        cells.append(_cell(title, arm.samples, index, palette, no_samples(state, False)))
    if width >= COLUMN_MIN * len(cells):
        table = Table(box=None, expand=True, padding=(0, 1))
        for head, _ in cells:
            table.add_column(head, ratio=1)
        table.add_row(*(body for _, body in cells))
        return Group(top, table)
    return Group(top, *(Text("\n").join([Text(""), head, body]) for head, body in cells))
