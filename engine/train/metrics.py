"""Weight-change norms of attention matrices, computed on the device in batched ops (torch).

For every attention weight matrix W: ||W_t - W_{t-1}||_F, drift ||W_t - W_0||_F and
||W_t - W_{t-1}||_F / ||W_t||_F. A fused QKV tensor is split by the segment table from
`engine.plans.roles.attention_splits`, so grouped/multi-query and interleaved layouts are exact.
Nothing is read back here: `measure()` returns one device tensor, read once at log time.
"""

from __future__ import annotations

import torch


class DWTracker:
    def __init__(self, model: torch.nn.Module, splits) -> None:
        params = dict(model.named_parameters())
        self.splits = [s for s in splits if s.param in params]
        self.names: list[str] = [n for s in self.splits for n in s.names]
        self._params = {s.param: params[s.param] for s in self.splits}
        self._w0 = {k: p.detach().clone() for k, p in self._params.items()}
        self._before = {k: torch.empty_like(p) for k, p in self._params.items()}
        self._segments = {
            s.param: torch.tensor(s.segment, dtype=torch.long, device=self._params[s.param].device) for s in self.splits
        }
        self._ever_trained: set[str] = set()

    def snapshot(self) -> None:
        """Call right before the optimizer step that will be measured."""
        for key, p in self._params.items():
            if p.requires_grad:
                self._ever_trained.add(key)
                self._before[key].copy_(p.detach())

    @torch.no_grad()
    def measure(self) -> torch.Tensor:
        """[3, n_matrices] on the device: rows dW, drift, rel. Frozen matrices are exactly 0."""
        rows = []
        for s in self.splits:
            param = self._params[s.param]
            p = param.detach()
            n = len(s.names)
            if s.param not in self._ever_trained:
                rows.append(torch.zeros(3, n, device=p.device, dtype=torch.float32))
                continue
            other = 1 - s.dim
            w = p.float()
            dw = (w - self._before[s.param].float()) if param.requires_grad else torch.zeros_like(w)
            stacked = torch.stack(
                [dw.pow(2).sum(other), (w - self._w0[s.param].float()).pow(2).sum(other), w.pow(2).sum(other)]
            )
            sums = torch.zeros(3, n, device=p.device).index_add_(1, self._segments[s.param], stacked)
            rows.append(sums)
        if not rows:
            return torch.zeros(3, 0)
        sq = torch.cat(rows, dim=1).sqrt()
        rel = torch.where(sq[2] > 0, sq[0] / sq[2], torch.zeros_like(sq[0]))
        return torch.stack([sq[0], sq[1], rel])

    def as_dicts(self, values: list[list[float]]) -> tuple[dict, dict, dict]:
        """Host lists (from measure().tolist()) as {matrix: value} dicts: dW, drift, rel."""
        # 6 significant digits: plenty for a norm, and a third of the log's size per dw line
        return tuple({n: float(f"{v:.6g}") for n, v in zip(self.names, row)} for row in values)  # type: ignore[return-value]
