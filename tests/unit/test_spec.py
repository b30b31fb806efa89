"""The freeze-spec parser: valid specs, presets, schedules, every error, and a fuzz property."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.errors import SpecError
from engine.plans.spec import Blocks, Preset, Rule, Schedule, parse_spec


def only_rule(text: str) -> Rule:
    (rule,) = parse_spec(text).items
    return rule


@pytest.mark.parametrize(
    "text,role,blocks",
    [
        ("+attn", "attn", None),
        ("-mlp", "mlp", None),
        ("+attn.qkv[6:]", "attn.qkv", "6:"),
        ("+attn.o[-2:]", "attn.o", "-2:"),
        ("-norm[4:8]", "norm", "4:8"),
        ("+block[::2]", "block", "::2"),
        ("+final_norm", "final_norm", None),
    ],
)
def test_role_rules(text, role, blocks):
    rule = only_rule(text)
    assert (rule.sign, rule.role, rule.regex, rule.schedule) == (text[0], role, None, None)
    assert (rule.blocks.text if rule.blocks else None) == blocks


def test_comma_list_inside_brackets_is_not_a_separator():
    spec = parse_spec("+attn[0,3, 5],-mlp")
    assert [r.text for r in spec.items] == ["+attn[0,3, 5]", "-mlp"]
    assert spec.items[0].blocks.indices == (0, 3, 5)
    assert [r.pos for r in spec.items] == [0, 14]


@pytest.mark.parametrize(
    "blocks,expected",
    [
        ("6:", (6, 7, 8, 9, 10, 11)),
        ("-2:", (10, 11)),
        ("4:8", (4, 5, 6, 7)),
        ("::2", (0, 2, 4, 6, 8, 10)),
        ("0,3,5", (0, 3, 5)),
        ("-1", (11,)),
        ("::-1", tuple(range(12))),
    ],
)
def test_block_selection(blocks, expected):
    assert only_rule(f"+attn[{blocks}]").blocks.select(12) == expected


@pytest.mark.parametrize(
    "blocks,bad",
    [("12", True), ("-13", True), ("11", False), ("6:12", False), ("6:13", True), ("-12:", False), ("-13:", True)],
)
def test_block_range(blocks, bad):
    assert only_rule(f"+attn[{blocks}]").blocks.out_of_range(12) is bad


def test_regex_rules_keep_commas_and_brackets():
    spec = parse_spec(r"+re:h\.(1|2)\.attn,+re:x{1,3}@step 5,-mlp")
    assert [r.regex for r in spec.items[:2]] == [r"h\.(1|2)\.attn", "x{1,3}"]
    assert spec.items[1].schedule == Schedule("step", 5)
    assert spec.items[2].role == "mlp"


@pytest.mark.parametrize(
    "text,schedule",
    [
        ("+mlp@step 100", Schedule("step", 100)),
        ("+mlp@epoch 2", Schedule("epoch", 2)),
        ("+mlp@step0", Schedule("step", 0)),
        ("+mlp[6:] @ epoch 1", Schedule("epoch", 1)),
    ],
)
def test_schedules(text, schedule):
    assert only_rule(text).schedule == schedule
    assert schedule.reached(step=schedule.n, epoch=schedule.n)
    assert not schedule.reached(step=schedule.n - 1, epoch=schedule.n - 1)


@pytest.mark.parametrize(
    "text,expanded",
    [
        ("full", ["+all"]),
        ("targeted", ["+attn.qkv[6:]"]),
        ("reverse", ["-attn[6:]"]),
        ("attn-top:2", ["+attn[-2:]"]),
        ("targeted,+mlp[-1:]@epoch 1", ["+attn.qkv[6:]", "+mlp[-1:]@epoch 1"]),
    ],
)
def test_presets_expand_with_block_count(text, expanded):
    spec = parse_spec(text)
    rules = spec.expand(12)
    assert [r.text for r in rules] == expanded
    assert rules[0].preset == (text.split(",")[0] if isinstance(spec.items[0], Preset) else None)


def test_presets_use_half_the_blocks_rounded_down():
    assert parse_spec("targeted").expand(5)[0].blocks.select(5) == (2, 3, 4)
    assert parse_spec("reverse").expand(24)[0].text == "-attn[12:]"
    assert parse_spec("attn-top:3").preset == "attn-top"


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "bad spec '' at 0: empty spec (expected a preset"),
        ("   ", "at 0: empty spec"),
        (
            "full,+atn[6:]",
            "bad spec 'full,+atn[6:]' at 5: rule '+atn[6:]': unknown role 'atn' (expected one of: all, embed",
        ),
        ("attn[6:]", "at 0: rule 'attn[6:]': missing sign: start the rule with + (train) or - (freeze)"),
        ("re:foo", "missing sign"),
        ("partial", "unknown preset 'partial' (expected one of: full, targeted, reverse, attn-top:N"),
        ("attn-top:0", "attn-top needs a block count >= 1"),
        ("attn-top", "attn-top needs a block count >= 1"),
        ("attn-top:x", "attn-top needs a block count >= 1"),
        ("+attn@step", "missing number after '@step' (expected @step N)"),
        ("+attn@step -1", "@step needs a whole number >= 0, got '-1'"),
        ("+attn@week 3", "unknown schedule unit 'week' (expected @step N or @epoch N)"),
        ("+attn@", "missing schedule unit after '@'"),
        ("+re:(", "invalid regex: missing ), unterminated subpattern"),
        ("+re:", "empty regex after 're:'"),
        ("+attn[6:", "expected the block list to end with ']'"),
        ("+attn[::0]", "bad slice [::0]: step cannot be 0"),
        ("+attn[a:b]", "bad slice [a:b]"),
        ("+attn[1:2:3:4]", "bad slice [1:2:3:4]"),
        ("+attn[]", "bad block list []"),
        ("+mlp[1,,2]", "bad block list [1,,2]"),
        ("+", "missing target after the sign"),
        ("full,,+mlp", "at 5: empty rule (a stray comma?)"),
        ("+mlp,", "at 5: empty rule"),
        ("*mlp", "cannot read this"),
    ],
)
def test_invalid_specs(text, message):
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_error_position_skips_whitespace():
    with pytest.raises(SpecError, match=r"at 7: rule '\+bad'"):
        parse_spec("full,  +bad")


def test_blocks_dataclass_is_frozen():
    blocks = Blocks("1", indices=(1,))
    with pytest.raises(AttributeError):
        blocks.text = "2"


_ALPHABET = st.sampled_from(list("+-,[]:@re.qkvo0123456789 attnmlpsepoch\\(){}*^$|?-_") + ["attn", "step", "re:"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_ALPHABET, max_size=25).map("".join)))
def test_any_string_parses_or_raises_spec_error(text):
    try:
        spec = parse_spec(text)
    except SpecError as exc:
        assert str(exc).startswith("bad spec ") and "\n" not in str(exc)
        return
    for n_blocks in (1, 12):
        for rule in spec.expand(n_blocks):
            assert rule.sign in "+-" and (rule.role is None) != (rule.regex is None)


# -- structured, near-valid specs (issue 6): only SpecError escapes, from parsing or resolving -------------
_SIGN = st.sampled_from(["+", "-", "", " +", "*", "++"])
_ROLE = st.sampled_from(
    [
        "all",
        "embed",
        "pos",
        "head",
        "final_norm",
        "block",
        "attn",
        "attn.qkv",
        "attn.q",
        "attn.k",
        "attn.v",
        "attn.o",
        "mlp",
        "norm",
        "atn",
        "",
        "attn.",
        "re:",
        "Attn",
    ]
)
_NUM = st.one_of(st.integers(-15, 15), st.integers(-(10**12), 10**12)).map(str)
_SLICE = st.one_of(
    st.tuples(st.one_of(_NUM, st.just("")), st.one_of(_NUM, st.just(""))).map(":".join),
    st.tuples(_NUM, _NUM, st.one_of(_NUM, st.just(""))).map(":".join),
    st.lists(_NUM, min_size=1, max_size=4).map(",".join),
    st.text(alphabet="0123456789:,-+ x[]", max_size=8),
)
_BLOCKS = st.one_of(st.just(""), _SLICE.map(lambda s: f"[{s}]"), _SLICE.map(lambda s: f"[{s}"))
_REGEX = st.one_of(
    st.sampled_from(
        [
            r"h\.1\.",
            "attn",
            "c_attn",
            "mlp",
            "wte|lm_head",
            "(",
            "[",
            "x{2,1}",
            "a**",
            r"\@",
            "(?P<a>x)(?P<a>x)",
            "ln_f",
            ".",
        ]
    ),
    st.text(max_size=10),
)
_SCHEDULE = st.one_of(
    st.just(""),
    st.tuples(
        st.sampled_from(["step", "epoch", "week", "", "Step"]),
        st.one_of(_NUM, st.just(""), st.just("x")),
        st.sampled_from(["", " "]),
    ).map(lambda t: f"@{t[0]}{t[2]}{t[1]}"),
)
_RULE = st.one_of(
    st.tuples(_SIGN, _ROLE, _BLOCKS, _SCHEDULE).map("".join),
    st.tuples(_SIGN, _REGEX, _SCHEDULE).map(lambda t: f"{t[0]}re:{t[1]}{t[2]}"),
    st.sampled_from(["full", "targeted", "reverse", "attn-top:2", "attn-top:0", "attn-top:99", "attn-top", "Full"]),
)
_SPEC = st.lists(_RULE, min_size=1, max_size=5).map(",".join)


@settings(max_examples=600, deadline=None)
@given(_SPEC)
def test_near_valid_specs_parse_and_resolve_or_raise_spec_error(text):
    from engine.plans.freeze import resolve_plan

    try:
        parse_spec(text)
    except SpecError as exc:
        assert str(exc).startswith("bad spec ") and "\n" not in str(exc)
        return
    layout = _LAYOUT
    try:
        plan = resolve_plan("arm", text, layout)
    except SpecError as exc:
        assert "\n" not in str(exc)
        return
    names = {p.name for p in layout.params}
    assert plan.initial <= names and plan.ever_trainable <= names and plan.ever_trainable
    assert 0 <= plan.n_trainable <= plan.n_total


def _small_gpt2():
    from tests.layouts import gpt2_layout

    return gpt2_layout(n_layer=4, d=8, vocab=16, n_head=2)


_LAYOUT = _small_gpt2()
