"""The app's colours as component classes, styled in app.tcss; read once into a colors.Palette."""

from __future__ import annotations

from textual.widget import Widget

from freeze_tui.draw.colors import N_ARMS, NAMES, Palette

ARM_CLASSES = [f"palette--arm-{i}" for i in range(N_ARMS)]
NAMED_CLASSES = {name: f"palette--{name}" for name in NAMES}


class PaletteHolder(Widget):
    """Never shown (display: none): it only carries the palette's component classes."""

    COMPONENT_CLASSES = {*ARM_CLASSES, *NAMED_CLASSES.values()}

    def palette(self) -> Palette:
        arms = tuple(self.get_component_rich_style(c, partial=True) for c in ARM_CLASSES)
        named = {name: self.get_component_rich_style(c, partial=True) for name, c in NAMED_CLASSES.items()}
        return Palette(arms, named)
