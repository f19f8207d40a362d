"""Retrieval quality of the help-centre sources on the bundled sample (finetune/sample_data): for each
ticket whose agent's real answer paraphrases a Help Center article, is that article among the 3 links
shown under the ticket (recall@3)?

    python -m benchmarks.bench_grounding

The article an answer paraphrases is the one whose text is closest to the answer by chrF (sacrebleu,
the article scored against the answer as reference), a character measure independent of the BM25
index under test. An answer that no article reaches ``--min-chrf`` with paraphrases none and is left
out: on the sample the best scores fall into two groups, 23-30 and 41-80, with nothing between.
The query is what the bot searches with: the subject and the customer's first message. Prints ONE JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.drafting.grounding import HelpCenterIndex
from core.chrf import chrf
from core.domain import Comment, Ticket
from integrations.help_center_index import html_to_text

SAMPLE = Path(__file__).resolve().parents[1] / "finetune" / "sample_data"


class SampleHelpCenter:
    """The sample's articles as each locale's Help Center listing would hand them over."""

    def __init__(self, articles: list[dict[str, Any]]) -> None:
        self.articles = articles

    def help_center_articles(self, locale: str) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(
                id=a["id"],
                title=a["title"],
                body=a["body"],
                locale=a["locale"],
                url=a["html_url"],
                updated_at=a["updated_at"],
                draft=a["draft"],
            )
            for a in self.articles
            if a["locale"].lower() == locale.lower()
        ]


def sample_cases(min_chrf: float) -> tuple[list[tuple[Ticket, int, float]], int]:
    """(ticket as the bot sees it first, the article its answer paraphrases, chrF), and how many
    tickets had an agent answer at all."""
    articles = json.loads((SAMPLE / "help_center_articles.json").read_text())["articles"]
    tickets = json.loads((SAMPLE / "tickets.json").read_text())["tickets"]
    comments = json.loads((SAMPLE / "ticket_comments.json").read_text())
    texts = {a["id"]: f"{a['title']}\n{html_to_text(a['body'])}" for a in articles}
    cases, answered = [], 0
    epoch = datetime(2025, 1, 1, tzinfo=UTC)
    for raw in tickets:
        thread = (comments.get(str(raw["id"])) or {}).get("comments") or []
        question = next((c for c in thread if c["public"] and c["author_id"] == raw["requester_id"]), None)
        answer = next((c for c in thread if c["public"] and c["author_id"] != raw["requester_id"]), None)
        if question is None or answer is None:
            continue
        answered += 1
        score, gold = max((chrf(answer["body"], text), aid) for aid, text in texts.items())
        if score < min_chrf:
            continue
        first = Comment(int(question["id"]), raw["requester_id"], question["body"], True, epoch, True)
        ticket = Ticket(raw["id"], raw["subject"] or "", "open", raw["requester_id"], "", epoch, "", (first,))
        cases.append((ticket, gold, score))
    return cases, answered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-chrf", type=float, default=35.0, help="least chrF for an answer to paraphrase")
    args = parser.parse_args(argv)
    articles = json.loads((SAMPLE / "help_center_articles.json").read_text())["articles"]
    locales = sorted({a["locale"] for a in articles})
    with tempfile.TemporaryDirectory() as folder:
        index = HelpCenterIndex(Path(folder) / "hc.json", locales)
        index.refresh(SampleHelpCenter(articles))
        cases, answered = sample_cases(args.min_chrf)
        ranks = []
        for ticket, gold, _ in cases:
            shown = [a.id for a in index.top_articles(ticket, 3)]
            ranks.append(shown.index(gold) + 1 if gold in shown else None)
    hits = [r for r in ranks if r is not None]
    print(
        json.dumps(
            {
                "benchmark": "grounding_recall",
                "articles": len(articles),
                "locales": locales,
                "tickets_answered": answered,
                "tickets_with_a_paraphrased_article": len(cases),
                "min_chrf": args.min_chrf,
                "recall_at_1": round(sum(1 for r in hits if r == 1) / len(cases), 3) if cases else None,
                "recall_at_3": round(len(hits) / len(cases), 3) if cases else None,
                "misses": [t.id for (t, _, _), r in zip(cases, ranks, strict=True) if r is None],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
