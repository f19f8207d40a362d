"""`finetune eval`'s table (finetune.evaluate.render_table): a line per customer language when the
eval split holds two or more."""

from finetune.evaluate import render_table


def metrics(loss: float, chrf: float | None) -> dict:
    return {"loss": loss, "perplexity": 2.0, "chrf": chrf}


def report(languages: dict) -> dict:
    return {
        "model": "ft",
        "eval_examples": 5,
        "answer_tokens": 100,
        "generated": 2,
        "base": metrics(2.0, 10.0),
        "adapter_metrics": metrics(1.0, 20.0),
        "languages": languages,
    }


def test_two_languages_get_a_part_each():
    parts = {
        "de": {
            "eval_examples": 2,
            "generated": 1,
            "base": metrics(2.5, 8.0),
            "adapter_metrics": metrics(1.5, 12.0),
        },
        "en": {
            "eval_examples": 3,
            "generated": 1,
            "base": metrics(1.8, 11.0),
            "adapter_metrics": metrics(0.9, 25.0),
        },
    }
    lines = render_table(report(parts)).splitlines()
    assert "de: 2 eval examples, 1 generated" in lines and "en: 3 eval examples, 1 generated" in lines
    german = lines.index("de: 2 eval examples, 1 generated")
    assert lines[german + 2].split() == ["adapter", "1.500", "2.0", "12.0"]


def test_one_language_is_the_table_itself():
    one = {
        "en": {
            "eval_examples": 5,
            "generated": 2,
            "base": metrics(2.0, 10.0),
            "adapter_metrics": metrics(1.0, 20.0),
        }
    }
    assert "en:" not in render_table(report(one))
