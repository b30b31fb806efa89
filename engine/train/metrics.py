"""Weight-change norms of attention matrices, computed on the device in batched ops (torch).

For every attention weight matrix W: ||W_t - W_{t-1}||_F, drift ||W_t - W_0||_F and
||W_t - W_{t-1}||_F / ||W_t||_F. A fused QKV tensor is split by the segment table from
`engine.plans.roles.attention_splits`, so grouped/multi-query and interleaved layouts are exact.
Nothing is read back here: `measure()` returns one device tensor, read once at log time.
"""

from __future__ import annotations

import torch


def segment_sums(split, segment: torch.Tensor, dw: torch.Tensor, drift: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """[3, n] squared Frobenius norms of dW, drift and W, per named matrix of ``split`` (a LoRA arm's tracker)."""
    stacked = torch.stack([dw.pow(2).sum(1 - split.dim), drift.pow(2).sum(1 - split.dim), w.pow(2).sum(1 - split.dim)])
    return torch.zeros(3, len(split.names), device=w.device).index_add_(1, segment, stacked)


class DWTracker:
    def __init__(self, model: torch.nn.Module, splits) -> None:
        params = dict(model.named_parameters())
        self.splits = [s for s in splits if s.param in params]
        self.names: list[str] = [n for s in self.splits for n in s.names]
        self._params = {s.param: params[s.param] for s in self.splits}
        self._w0 = {k: _local(p).detach().clone() for k, p in self._params.items()}
        self._before = {k: torch.empty_like(_local(p)) for k, p in self._params.items()}
        self._segments = {s.param: _local_segment(s, self._params[s.param]) for s in self.splits}
        self._ever_trained: set[str] = set()

    def snapshot(self) -> None:
        """Call right before the optimizer step that will be measured."""
        for key, p in self._params.items():
            if p.requires_grad:
                self._ever_trained.add(key)
                self._before[key].copy_(_local(p).detach())

    def measure(self) -> torch.Tensor:
        """[3, n_matrices] on the device: rows dW, drift, rel. Frozen matrices are exactly 0."""
        return self.finish(self.squares())

    @torch.no_grad()
    def squares(self) -> torch.Tensor:
        """[3, n_matrices]: squared norms of dW, drift and W over this process's part of each matrix.
        Under sharding each rank holds a slice; the sum of the slices' squares is the whole matrix's."""
        rows = []
        for s in self.splits:
            param = self._params[s.param]
            p = _local(param).detach()
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
        return torch.cat(rows, dim=1)

    @staticmethod
    def finish(squares: torch.Tensor) -> torch.Tensor:
        """Squared norms [..., 3, n] -> norms [..., 3, n]: dW, drift, rel = dW / W (0 where W is 0)."""
        sq = squares.sqrt()
        dw, drift, w = sq.unbind(-2)
        rel = torch.where(w > 0, dw / w, torch.zeros_like(dw))
        return torch.stack([dw, drift, rel], dim=-2)

    def as_dicts(self, values: list[list[float]]) -> tuple[dict, dict, dict]:
        """Host lists (from measure().tolist()) as {matrix: value} dicts: dW, drift, rel."""
        # 6 significant digits: plenty for a norm, and a third of the log's size per dw line
        return tuple({n: float(f"{v:.6g}") for n, v in zip(self.names, row)} for row in values)  # type: ignore[return-value]


def _local(p: torch.Tensor) -> torch.Tensor:
    """This process's part of a parameter: the local shard of an FSDP2 (DTensor) parameter, else itself."""
    return p.to_local() if hasattr(p, "to_local") else p


def _local_segment(split, param: torch.Tensor) -> torch.Tensor:
    """The segment ids of the rows/columns this process holds. FSDP2 shards dim 0 in torch.chunk
    pieces, so a split along dim 0 sees only its rows' ids; a split along dim 1 sees them all."""
    ids = torch.tensor(split.segment, dtype=torch.long)
    local = _local(param)
    if local is not param and split.dim == 0 and local.shape[0] != param.shape[0]:
        mesh = param.device_mesh  # type: ignore[attr-defined]  # a DTensor's
        shard_dim = mesh.ndim - 1  # HSDP's mesh is (replica, shard): dim 0 is sharded over the last
        rank, parts = mesh.get_local_rank(shard_dim), mesh.size(shard_dim)
        chunk = -(-param.shape[0] // parts)
        start = min(rank * chunk, param.shape[0])
        ids = ids[start : start + local.shape[0]]
    return ids.to(local.device)
