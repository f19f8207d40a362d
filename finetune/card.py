"""The dataset card: counts before and after each filter, sizes, placeholders. Pure rendering."""

from __future__ import annotations

from typing import Any

# (key in card["filters"], what it counts), in pipeline order: each row is "before -> after".
FILTER_LABELS = {
    "tickets_exported": "solved/closed tickets in the export",
    "tickets_with_question": "with a customer question (public)",
    "tickets_answered": "with a public agent answer (unanswered dropped)",
    "examples": "question-answer examples",
    "examples_after_short_answers": "answers long enough",
    "examples_after_exact_dedup": "after exact duplicates removed",
    "examples_after_near_dedup": "after near duplicates removed",
    "articles_exported": "help-centre articles in the export",
    "articles_non_empty": "articles with text",
    "articles_after_dedup": "articles after duplicates removed",
}


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown, for people; ``card.json`` is the same for programs."""
    lines = [
        "# Dataset card",
        "",
        f"- source: `{card['source']}`",
        f"- dataset hash (sha256 of the data files): `{card['dataset_hash']}`",
        f"- pairs: `{card['settings']['pairs']}`; near-duplicate threshold "
        f"{card['settings']['near_duplicate_threshold']}; eval fraction {card['settings']['eval_fraction']}, "
        f"seed {card['settings']['seed']}",
        f"- prompt format: `core.prompt.build_prompt`, product name `{card['settings']['product_name']}`",
        f"- tokens counted with: {card['tokens_counted_with']}",
        *_grounding_lines(card.get("grounding")),
        "",
        "## Filters",
        "",
        "| step | count |",
        "|---|---:|",
    ]
    for key, label in FILTER_LABELS.items():
        if key in card["filters"]:
            lines.append(f"| {label} | {card['filters'][key]} |")
    lines += [
        "",
        "Internal notes in the export (never used): " + str(card["filters"].get("internal_notes", 0)),
        "",
    ]
    lines += [
        "## Splits",
        "",
        "| part | examples | tickets | characters | tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, part in card["splits"].items():
        lines.append(
            f"| {name} | {part['examples']} | {part.get('tickets', '–')} | {part['characters']} "
            f"| {part['tokens']} |"
        )
    lines += ["", "## Personal data replaced", "", "| placeholder | count |", "|---|---:|"]
    for kind, count in sorted(card["placeholders"].items()):
        lines.append(f"| `<{kind}>` | {count} |")
    public = card.get("public_contacts") or {}
    kept = [*public.get("emails", []), *public.get("phones", [])]
    if kept:
        lines += ["", "Kept as the Help Center publishes them (the company's own): " + ", ".join(kept)]
    lines.append("")
    return "\n".join(lines)


def _grounding_lines(grounding: dict[str, Any] | None) -> list[str]:
    if not grounding:
        return []  # an ungrounded card reads as it always did
    return [
        f"- grounded: yes, Help Center passages in each prompt ([grounding] locales "
        f"{', '.join(grounding['locales'])}, prompt_tokens {grounding['prompt_tokens']}; "
        f"{grounding['articles_indexed']} articles indexed, {grounding['passages']} passages in "
        f"{grounding['examples_with_passages']} prompts)"
    ]
