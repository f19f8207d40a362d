"""`draftdesk finetune export|prepare|train|eval`: the command group, registered by draftdesk/cli.py."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import ConfigError, read_toml, resolve_config_path
from core.languages import is_language_code
from finetune.config import (
    FinetuneContext,
    FinetuneSettings,
    PathsConfig,
    TrainConfig,
    load_finetune_context,
    load_finetune_settings,
)
from integrations.grounding_config import GroundingSettings
from integrations.language_config import LanguageSettings
from models.spec import ModelSpec

if TYPE_CHECKING:  # torch and TRL load only for the commands that train
    from finetune.train import TrainResult

Command = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``finetune`` and its four commands to the ``draftdesk`` parser."""
    group = sub.add_parser("finetune", help="turn a help centre and past tickets into LoRA adapters")
    commands = group.add_subparsers(dest="finetune_command", required=True)

    export = commands.add_parser("export", help="Help Center articles and solved/closed tickets to a folder")
    export.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    export.add_argument("--out", type=Path, help="export folder (default: [finetune] workdir/export)")
    export.add_argument(
        "--sample", action="store_true", help="export the bundled sample from a loopback Zendesk"
    )
    export.add_argument("--locales", help="comma-separated Help Center locales (default: [finetune.export])")
    export.add_argument("--since", help="tickets changed since this date, YYYY-MM-DD")
    export.set_defaults(func=_guard(cmd_export))

    prepare = commands.add_parser("prepare", help="clean, redact, pair, deduplicate and split an export")
    prepare.add_argument("--config")
    prepare.add_argument("--in", dest="input", type=Path, help="export folder (default: workdir/export)")
    prepare.add_argument("--out", type=Path, help="dataset folder (default: workdir/dataset)")
    prepare.add_argument(
        "--pairs", choices=("first", "multi_turn"), help="first answer only, or every answer"
    )
    prepare.add_argument(
        "--tokenizer", help="local tokenizer (path or downloaded hub id) to count tokens with"
    )
    prepare.add_argument("--product-name", help="product name in the prompt (default: [worker] product_name)")
    prepare.add_argument(
        "--grounding",
        action="store_true",
        help="prompts with Help Center passages, for models with grounding = true ([grounding] locales "
        "and prompt_tokens; default --out: workdir/dataset-grounded)",
    )
    prepare.add_argument(
        "--language",
        help="only the tickets in this customer language (ISO 639-1, e.g. de): a per-language model's "
        "dataset (default --out: workdir/dataset-LANGUAGE)",
    )
    prepare.set_defaults(func=_guard(cmd_prepare))

    train = commands.add_parser("train", help="QLoRA-train the adapter of one [[models]] entry")
    train.add_argument("--config")
    train.add_argument("--model", required=True, help="a [[models]] name from the config")
    train.add_argument("--dataset", type=Path, help="prepared dataset (default: workdir/dataset)")
    train.add_argument("--output-dir", type=Path, help="adapters root (default: [finetune] output_dir)")
    train.add_argument("--max-steps", type=int, help="override max_steps (e.g. a short trial run)")
    train.add_argument("--fresh", action="store_true", help="discard this run's checkpoints and start over")
    train.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints after success")
    train.add_argument(
        "--method",
        choices=("sft", "dpo", "kto"),
        default="sft",
        help="sft: answers (prepare's dataset); dpo: chosen/rejected pairs; kto: rated completions "
        "(a folder with train.jsonl and eval.jsonl, docs/finetune.md)",
    )
    train.add_argument(
        "--from-adapter",
        help="dpo/kto: the adapter to continue (default: the model's adapter in [[models]]; none: a new "
        "adapter against the untuned base)",
    )
    train.add_argument(
        "--make-current",
        action="store_true",
        help="point LATEST at the new version now (default: only a model's first version; later ones "
        "are candidates until `draftdesk models promote`)",
    )
    train.set_defaults(func=_guard(cmd_train))

    evaluate = commands.add_parser("eval", help="adapter vs untuned base on the eval split")
    evaluate.add_argument("--config")
    evaluate.add_argument("--model", required=True, help="a [[models]] name from the config")
    evaluate.add_argument("--adapter", type=Path, help="adapter folder (default: the model's LATEST version)")
    evaluate.add_argument(
        "--dataset", type=Path, help="prepared dataset (default: the adapter's, or workdir/dataset)"
    )
    evaluate.add_argument("--out", type=Path, help="JSON report (default: ADAPTER/eval.json)")
    evaluate.add_argument("--max-generate", type=int, help="eval examples to generate answers for")
    evaluate.set_defaults(func=_guard(cmd_eval))


def _guard(command: Command) -> Command:
    """Print the errors a user can fix as one line each, with exit status 2."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from finetune.modeling import BaseModelError
        from integrations.zendesk import ZendeskError

        try:
            return command(args)
        except ConfigError:
            raise  # draftdesk.cli prints these, one line per problem
        except (ZendeskError, BaseModelError, ValueError, FileNotFoundError) as exc:
            print(f"draftdesk finetune {args.finetune_command}: {exc}", file=sys.stderr)
            return 2

    return run


def _settings(
    args: argparse.Namespace, required: bool = True
) -> tuple[FinetuneContext | None, FinetuneSettings]:
    """The config's finetune sections; without a config file, defaults (when not ``required``)."""
    path = resolve_config_path(args.config, os.environ)
    if not path.is_file() and not required and not args.config:
        return None, load_finetune_settings({})
    context = load_finetune_context(path, os.environ)
    _say_if_moved(path, context.finetune.paths)
    return context, context.finetune


def _say_if_moved(config: Path, paths: PathsConfig) -> None:
    """Relative `[finetune]` folders were once read against the working directory: when such a folder
    exists here and the one beside the config file does not, say where the commands now look."""
    table = read_toml(config).get("finetune")
    written = table if isinstance(table, dict) else {}
    for key in ("workdir", "output_dir"):
        value = Path(str(written.get(key, getattr(PathsConfig(), key)))).expanduser()
        now = Path(getattr(paths, key))
        moved = not value.is_absolute() and value.resolve() != now and not now.exists()
        if moved and _holds_finetune_output(value, key):
            print(
                f"draftdesk finetune: [finetune] {key} = {str(value)!r} is read relative to the config file "
                f"now: {now} (not {value.resolve()}, which exists): move that folder there, or set {key} "
                "to an absolute path",
                file=sys.stderr,
            )


def _holds_finetune_output(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds what `draftdesk finetune` writes there (not, say, the `finetune`
    package of a source checkout, which a relative ``workdir = "finetune"`` would name)."""
    if not folder.is_dir():
        return False
    if key == "workdir":
        return any((folder / name).is_dir() for name in ("export", "dataset", "dataset-grounded"))
    return any((child / "LATEST").is_file() for child in folder.iterdir() if child.is_dir())


def _workdir(finetune: FinetuneSettings, name: str) -> Path:
    return Path(finetune.paths.workdir) / name


def _output_folder(path: Path, flag: str = "--out") -> Path:
    """``path``, refused before any work when it is a file (the work would be lost at the end)."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"{flag} {path.resolve()} is a file: pass a folder (it is created if missing)"
        )
    return path


def cmd_export(args: argparse.Namespace) -> int:
    from finetune.export import export_zendesk
    from integrations.language_detector import TicketLanguages
    from integrations.zendesk import ZendeskGateway

    settings, finetune = _settings(args, required=not args.sample)
    config = finetune.export
    if args.locales:
        config = replace(config, locales=[x.strip() for x in args.locales.split(",") if x.strip()])
    if args.since:
        config = replace(config, start_time=args.since)
    problems = config.problems()
    if problems:
        raise ConfigError([f"finetune.export.{p}" for p in problems])
    out = _output_folder(args.out or _workdir(finetune, "export"))
    languages = TicketLanguages(settings.languages if settings else LanguageSettings())
    if args.sample:
        from finetune.sample import SAMPLE_EMAIL, SAMPLE_LOCALES, SAMPLE_TOKEN, sample_zendesk

        if not args.locales:
            config = replace(config, locales=list(SAMPLE_LOCALES))
        with sample_zendesk() as zendesk:
            gateway = ZendeskGateway.from_settings(zendesk.url, SAMPLE_EMAIL, SAMPLE_TOKEN)
            state = export_zendesk(gateway, out, replace(config, requests_per_minute=0), languages=languages)
    else:
        assert settings is not None
        if settings.zendesk is None:
            raise ConfigError(['[zendesk]: missing: set subdomain = "acme" (for acme.zendesk.com) or url'])
        secrets = settings.secrets
        if not secrets.zendesk_email or not secrets.zendesk_api_token:
            raise ConfigError(
                ["ZENDESK_EMAIL / ZENDESK_API_TOKEN: not set: export the agent e-mail and an API token"]
            )
        gateway = ZendeskGateway.from_settings(
            settings.zendesk.url, secrets.zendesk_email, secrets.zendesk_api_token
        )
        state = export_zendesk(gateway, out, config, languages=languages)
    counts = state.counts
    articles = sum(v for k, v in counts.items() if k.startswith("articles_"))
    print(
        f"exported to {Path(out).resolve()}: {articles} articles "
        f"({', '.join(state.locales_done)}), {counts.get('tickets_exported', 0)} tickets, "
        f"{counts.get('internal_notes', 0)} internal notes kept apart; "
        + ("caught up" if state.caught_up else "not caught up yet: run again to continue")
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from finetune.prepare import prepare_dataset

    settings, finetune = _settings(args, required=False)
    config = finetune.prepare
    if args.pairs:
        config = replace(config, pairs=args.pairs)
    product = args.product_name or config.product_name or (settings.product_name if settings else "")
    product = product or "our product"  # the bot's own default ([worker] product_name)
    source = args.input or _workdir(finetune, "export")
    if args.language is not None and not is_language_code(args.language):
        raise ValueError(f'--language: expected an ISO 639-1 code like "de", got {args.language!r}')
    name = _dataset_name(args.grounding) + (f"-{args.language}" if args.language else "")
    out = _output_folder(args.out or _workdir(finetune, name))
    grounding = None
    if args.grounding:
        grounding = settings.grounding if settings else GroundingSettings()
    card = prepare_dataset(
        source,
        out,
        config,
        product,
        tokenizer=args.tokenizer,
        grounding=grounding,
        language=args.language,
        languages=settings.languages if settings else LanguageSettings(),
    )
    splits = card["splits"]
    grounded = card.get("grounding")
    print(
        f"dataset in {Path(out).resolve()}: {splits['train']['examples']} train / "
        f"{splits['eval']['examples']} eval examples, "
        f"{splits['articles']['examples']} articles; "
        + (
            f"grounded: {grounded['passages']} passages in {grounded['examples_with_passages']} prompts; "
            if grounded
            else ""
        )
        + f"card: {Path(out).resolve() / 'card.md'}"
    )
    return 0


def _dataset_name(grounded: bool) -> str:
    """The default dataset folder: grounded prompts apart, as the study's models train without them."""
    return "dataset-grounded" if grounded else "dataset"


def _dataset_for(spec: ModelSpec, finetune: FinetuneSettings, given: Path | None) -> Path:
    """The SFT dataset for ``spec``: ``given`` or the default; refused when its prompts are grounded
    and the model's are not (or the other way round), as the model would draft from other prompts."""
    from finetune.files import read_json

    dataset = (given or _workdir(finetune, _dataset_name(spec.grounding))).resolve()
    card_path = dataset / "card.json"
    if not card_path.is_file():
        return dataset  # load_dataset_dir says how to make one
    grounded = bool(read_json(card_path).get("grounding"))
    feedback_set = dataset.name == "sft" and (dataset.parent / "dpo").is_dir()
    if grounded != spec.grounding and feedback_set:
        raise ValueError(
            f"{dataset}: the feedback set's sft/ prompts hold no Help Center passages, but {spec.name} has "
            f"grounding = true: train it on {dataset.parent / 'dpo'} or kto/ (`--method dpo|kto`), whose "
            "prompts are the ones it drafted from, or on `draftdesk finetune prepare --grounding` output"
        )
    if grounded != spec.grounding:
        if spec.grounding:
            fix = f"run `draftdesk finetune prepare --grounding --out {dataset}`"
        else:
            fix = f"run `draftdesk finetune prepare --out {dataset}` (without --grounding)"
        raise ValueError(
            f"{dataset}: prompts {'with' if grounded else 'without'} Help Center passages, but {spec.name} "
            f"has grounding = {str(spec.grounding).lower()}: {fix}, or pass another --dataset"
        )
    return dataset


def _model(settings: FinetuneContext, name: str) -> ModelSpec:
    for spec in settings.models:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in settings.models)
    raise ConfigError([f"--model {name}: no [[models]] entry with that name (configured: {known})"])


def cmd_train(args: argparse.Namespace) -> int:
    from finetune.train import train_adapter

    settings, finetune = _settings(args)
    assert settings is not None
    spec = _model(settings, args.model)
    base_model = spec.base_model
    config, _ = finetune.for_model(args.model)
    if args.max_steps is not None:
        config = replace(config, max_steps=args.max_steps)
        problems = config.problems()
        if problems:
            raise ConfigError([f"--max-steps: {p}" for p in problems])
    if args.method != "sft":
        return _train_preference(args, spec, finetune, config)
    result = train_adapter(
        args.model,
        base_model,
        _dataset_for(spec, finetune, args.dataset),
        args.output_dir or Path(finetune.paths.output_dir),
        config,
        fresh=args.fresh,
        keep_checkpoints=args.keep_checkpoints,
        make_current=args.make_current,
    )
    metrics = result.manifest["metrics"]
    print(
        f"adapter: {result.adapter_dir.resolve()}"
        + (" (already trained)" if result.already_done else "")
        + f"\neval loss {metrics.get('eval_loss_before')} -> {metrics.get('eval_loss')}; "
        + _how_to_use(result, args.model)
    )
    return 0


def _how_to_use(result: TrainResult, model: str) -> str:
    folder = result.adapter_dir.parent.resolve()
    if result.current:
        return (
            f'it is current: set adapter = "{folder}" for {model} in [[models]] (its LATEST version is '
            "loaded; restart the bot to pick up a new one)"
        )
    return (
        "it is a candidate (LATEST still names the current version): set "
        f'candidate = "{result.adapter_dir.name}" '
        f"for {model} in [[models]], restart the bot, and watch `draftdesk models status`; "
        f"`draftdesk models promote {model}` makes it current once the raters prefer it"
    )


def _train_preference(
    args: argparse.Namespace, spec: ModelSpec, finetune: FinetuneSettings, config: TrainConfig
) -> int:
    from finetune.preference import train_preference

    if args.dataset is None:
        raise ConfigError(
            [f"--dataset: {args.method} needs a preference dataset folder (train.jsonl, eval.jsonl)"]
        )
    start = args.from_adapter or spec.adapter
    result = train_preference(
        args.method,
        args.model,
        spec.base_model,
        args.dataset,
        args.output_dir or Path(finetune.paths.output_dir),
        config,
        from_adapter=start,
        make_current=args.make_current,
        grounded=spec.grounding,
    )
    metrics = result.manifest["metrics"]
    print(
        f"adapter: {result.adapter_dir.resolve()} ({args.method}, "
        f"reference: {result.manifest['reference']})"
        + (" (already trained)" if result.already_done else "")
        + "\n"
        f"held-out preference margin {metrics['eval_preference_margin_before']} -> "
        f"{metrics['eval_preference_margin_after']}; " + _how_to_use(result, args.model)
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from finetune.evaluate import evaluate_adapter, render_table
    from finetune.files import read_json, write_json
    from finetune.train import MANIFEST, current_adapter, newest_adapter
    from models.spec import resolve_adapter_dir

    settings, finetune = _settings(args)
    assert settings is not None
    spec = _model(settings, args.model)
    train_config, eval_config = finetune.for_model(args.model)
    if args.max_generate is not None:
        eval_config = replace(eval_config, max_generate=args.max_generate)
    output_dir = Path(finetune.paths.output_dir)
    adapter = resolve_adapter_dir(args.adapter) if args.adapter else newest_adapter(output_dir, args.model)
    if args.adapter is None and adapter is not None:
        current = adapter == current_adapter(output_dir, args.model)
        role = "the current one" if current else "not current: a candidate"
        print(f"evaluating {args.model} @ {adapter.name}, the newest version, {role}", file=sys.stderr)
    if adapter is None:
        if spec.adapter is None:
            raise FileNotFoundError(
                f"no adapter for {args.model}: run `draftdesk finetune train --model {args.model}` "
                "or pass --adapter"
            )
        adapter = Path(spec.adapter)
    dataset = args.dataset
    manifest = read_json(Path(adapter) / MANIFEST) if (Path(adapter) / MANIFEST).is_file() else {}
    if dataset is None and manifest.get("method", "sft") == "sft" and manifest.get("dataset"):
        dataset = Path(manifest["dataset"]["path"])  # a DPO/KTO version: the model's SFT dataset's eval split
    report = evaluate_adapter(
        args.model,
        spec.base_model,
        Path(adapter),
        _dataset_for(spec, finetune, dataset),
        train_config,
        eval_config,
    )
    out = args.out or Path(adapter) / "eval.json"
    write_json(out, report)
    sys.stdout.write(render_table(report))
    print(f"report: {Path(out).resolve()}")
    return 0
