"""The demo's size: quick on a CPU unless --full-demo or the user chose the steps; never for one's own run."""

from __future__ import annotations

from engine.run.config import RunConfig
from engine.run.demo_size import QUICK_STEPS, QUICK_VAL_BLOCKS, quick_demo


def test_the_demo_on_cpu_is_quick_and_says_how_to_get_the_full_study():
    cfg, said = quick_demo(RunConfig(), on_cpu=True)
    assert cfg.max_steps == QUICK_STEPS and cfg.sample_prompts == 5 and cfg.samples == 2
    assert cfg.val_blocks == QUICK_VAL_BLOCKS and f"validation on {QUICK_VAL_BLOCKS} blocks" in said
    assert "--full-demo" in said


def test_full_demo_gpu_own_data_and_chosen_steps_keep_the_config():
    for cfg, on_cpu in (
        (RunConfig(full_demo=True), True),
        (RunConfig(), False),
        (RunConfig(data=("my.txt",)), True),
        (RunConfig(model="gpt2"), True),
        (RunConfig(max_steps=200), True),
    ):
        assert quick_demo(cfg, on_cpu) == (cfg, "")


def test_chosen_sample_counts_are_kept():
    cfg, _ = quick_demo(RunConfig(sample_prompts=8, samples=3), on_cpu=True)
    assert cfg.samples == 3  # 8 is the default: it cannot be told from one not given, so it shrinks
    assert quick_demo(RunConfig(val_blocks=50), on_cpu=True)[0].val_blocks == 50
