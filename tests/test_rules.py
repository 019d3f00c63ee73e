"""The decision rule ids are one vocabulary: ``domain.reasons.Rule``.

Every reason the code records names a member, nothing compares a reason's rule with a bare string, and the ids
themselves never change (events, read models and audit output hold them as text).
"""

import ast
from pathlib import Path

import pytest

from execledger.application.ports import VenueOrderStatus
from execledger.domain.reasons import Rule, reason

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for layer in ("domain", "application", "infrastructure") for p in (REPO / layer).rglob("*.py"))
REASON_BUILDERS = {"reason", "make_reason"}

# The stored ids, as recorded since they were introduced: renaming one would orphan every event that holds it.
STORED_IDS = {
    "ack", "ambiguous_submit", "amend_ack", "amend_not_applied", "amend_proven_by_fill", "amend_refused",
    "amend_refused_replace", "approved_signal", "bracket_below_minimum", "bracket_dust_unprotectable",
    "bracket_grow", "bracket_grow_amend", "bracket_placed", "cancel_failed", "cancel_of_unplaced_order",
    "close_cancel_entry", "close_cancel_leg", "close_dust_unsellable", "close_exit_at_market",
    "emulated_exit_refused", "emulated_trigger_crossed", "emulated_trigger_exit", "entry_max_age_exceeded",
    "exit_unfunded",
    "halt_cancel_entries", "halt_withdraw_entry", "leg_below_minimum", "leg_emulated", "leg_placed",
    "leg_rejected_not_recreated", "leg_rejected_transient_recreate", "leg_replace", "leg_vanished_recreate",
    "not_executed_send_again", "not_sent", "oco_cancel_sibling", "oco_shrink_amend", "one_leg_per_role",
    "operator_cancel", "operator_close", "operator_resolved", "position_overexited", "reround_by_current_rules",
    "resize_to_holdings", "restart_submission_unknown", "send_deferred_venue_unavailable",
    "stop_refused_trigger_crossed", "stop_trigger_crossed_exit", "submit", "timeout_cancel",
    "timeout_cancel_refused", "unknown_resolved_not_placed", "unsendable_after_correction", "venue_canceled",
    "venue_closed_short", "venue_expired", "venue_fact_conflict", "venue_fill", "venue_filled", "venue_open",
    "venue_order_missing", "venue_partially_filled", "venue_pending", "venue_rejected",
}  # fmt: skip


def _is_member(node: ast.expr) -> bool:
    """``Rule.NAME`` for a member NAME, or ``Rule(...)`` (checked at run time: it raises for a non-member)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Rule":
        return node.attr in Rule.__members__
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Rule"


def _values_bound_to(name: str, scope: ast.AST) -> list[ast.expr]:
    """Every expression ``scope`` assigns to ``name`` (plain and tuple assignments, conditional expressions)."""
    found: list[ast.expr] = []
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                found.append(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                found += [v for t, v in zip(target.elts, node.value.elts, strict=True) if getattr(t, "id", "") == name]
    flat: list[ast.expr] = []
    for value in found:
        flat += [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
    return flat


def _rule_arguments() -> list[tuple[str, ast.expr, ast.AST]]:
    """(where, the rule argument, its innermost enclosing function) of every reason built in the layers."""
    out: dict[tuple[str, int, int], tuple[str, ast.expr, ast.AST]] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        # ast.walk goes outside in, so an inner function's entry replaces its outer function's.
        for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
            for node in ast.walk(scope):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) in REASON_BUILDERS and node.args:
                    key = (str(path), node.lineno, node.col_offset)
                    out[key] = (f"{path.relative_to(REPO)}:{node.lineno}", node.args[0], scope)
    return list(out.values())


def test_every_reason_in_the_code_names_a_rule_member():
    calls = _rule_arguments()
    assert len(calls) >= 50  # the scan sees the reasons (56 when the enum was made)
    offenders = []
    for where, arg, scope in calls:
        if isinstance(arg, ast.Name):
            bound = _values_bound_to(arg.id, scope)
            ok = bool(bound) and all(_is_member(v) for v in bound)
        else:
            ok = _is_member(arg)
        if not ok:
            offenders.append(f"{where}: {ast.unparse(arg)}")
    assert offenders == [], "rule ids must be Rule members:\n" + "\n".join(offenders)


def test_no_code_compares_a_rule_with_a_bare_string():
    ids = {r.value for r in Rule}
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            for operand in operands:
                elements = operand.elts if isinstance(operand, (ast.Set, ast.Tuple, ast.List)) else [operand]
                offenders += [
                    f"{path.relative_to(REPO)}:{node.lineno}: {e.value!r}"
                    for e in elements
                    if isinstance(e, ast.Constant) and e.value in ids
                ]
    assert offenders == [], "compare with Rule members:\n" + "\n".join(offenders)


def test_the_stored_ids_are_the_members_values_unchanged():
    assert {r.value for r in Rule} == STORED_IDS
    assert all(r.value == r.name.lower() for r in Rule)


def test_every_venue_status_has_its_rule():
    """ExecutionHandler records a venue status as ``Rule(f"venue_{status}")``: each status must be a member."""
    assert all(Rule(f"venue_{s.value}") for s in VenueOrderStatus)


def test_a_reason_stores_the_rule_as_its_plain_text():
    stored = reason(Rule.TIMEOUT_CANCEL, "timed out", age_s=301)
    assert stored == {"rule": "timeout_cancel", "text": "timed out", "age_s": 301}
    assert type(stored["rule"]) is str  # what a decoded stored event holds: in-memory and reloaded events agree


@pytest.mark.parametrize("rule", [Rule.SUBMIT, Rule.VENUE_FILL])
def test_a_reason_needs_a_text(rule):
    with pytest.raises(ValueError, match="a rule and a text"):
        reason(rule, "")
