"""One ``DraftBackend`` over several: each model goes to the backend its config names.

``build_backend`` is what the bot calls at start-up: the local models share one ``DraftEngine``
(bases loaded once), the ``openai`` ones share one ``OpenAIBackend``. With only local models it
returns the engine itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from core.domain import DraftResult
from core.ports import DraftBackend
from models.spec import EngineSettings, ModelSpec
from models.versions import VersionedBackend, runtime_specs

log = logging.getLogger(__name__)


class BackendRouter:
    """Sends each model's prompts to its backend; the backends work at the same time."""

    def __init__(self, specs: Sequence[ModelSpec], backends: Mapping[str, DraftBackend]) -> None:
        missing = [spec.name for spec in specs if spec.name not in backends]
        if missing:
            raise ValueError(f"no backend for model(s) {missing}")
        self.specs = tuple(specs)
        self._backend_of = {spec.name: backends[spec.name] for spec in self.specs}
        self._distinct = list({id(b): b for b in self._backend_of.values()}.values())
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self._distinct)), thread_name_prefix="router")

    def backend_for(self, model_name: str) -> DraftBackend:
        try:
            return self._backend_of[model_name]
        except KeyError:
            raise KeyError(f"unknown model {model_name!r}; configured: {sorted(self._backend_of)}") from None

    def count_tokens(self, model_name: str, text: str) -> int:
        return self.backend_for(model_name).count_tokens(model_name, text)

    def context_limit(self, model_name: str) -> int:
        return self.backend_for(model_name).context_limit(model_name)

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        return self.generate_many([prompts])[0]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        """One result list per ticket, in spec order; one failing backend spares the others."""
        for prompts in batch:
            for name in prompts:
                self.backend_for(name)  # KeyError for an unknown model, as the backends do
        jobs = []
        for backend in self._distinct:
            sub = [{m: p for m, p in prompts.items() if self._backend_of[m] is backend} for prompts in batch]
            if any(sub):
                jobs.append((sub, self._pool.submit(backend.generate_many, sub)))
        by_model: list[dict[str, DraftResult]] = [{} for _ in batch]
        for sub, future in jobs:
            try:
                results = future.result()
            except Exception as exc:  # the whole backend failed: each of its drafts gets the error
                log.exception("a draft backend failed for %s ticket(s)", len(sub))
                error = f"{type(exc).__name__}: {exc}"
                results = [[DraftResult(m, None, error=error) for m in prompts] for prompts in sub]
            for ticket, ticket_results in zip(by_model, results, strict=True):
                ticket.update((r.model, r) for r in ticket_results)
        return [[ticket[s.name] for s in self.specs if s.name in ticket] for ticket in by_model]

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        for backend in self._distinct:
            close = getattr(backend, "close", None)
            if callable(close):
                close()


def build_backend(
    specs: Sequence[ModelSpec],
    settings: EngineSettings | None = None,
    env: Mapping[str, str] | None = None,
    load: bool = True,
) -> DraftBackend:
    """The bot's model runtime for ``specs``: a DraftEngine, or a router over engine and servers,
    wrapped in ``VersionedBackend`` (each draft's adapter version and prompt; candidates).

    ``load`` loads the local models now (start-up) rather than at the first ticket. Raises
    ModelLoadError / RemoteModelError / ValueError with a message that names the model.
    """
    if not specs:
        raise ValueError("no models configured")
    return VersionedBackend(_runtime(runtime_specs(specs), settings, env, load), specs)


def _runtime(
    specs: Sequence[ModelSpec],
    settings: EngineSettings | None,
    env: Mapping[str, str] | None,
    load: bool,
) -> DraftBackend:
    local = [spec for spec in specs if spec.backend == "local"]
    remote = [spec for spec in specs if spec.backend == "openai"]
    backends: dict[str, DraftBackend] = {}
    engine = None
    if local:
        from models.engine import DraftEngine

        engine = DraftEngine(local, settings=settings)
        if load:
            log.info("loading %s local model(s); this can take a few minutes on first start", len(local))
            engine.load()
        backends.update((spec.name, engine) for spec in local)
    if not remote:
        return engine
    from models.openai_backend import OpenAIBackend

    remote_backend = OpenAIBackend(remote, env=os.environ if env is None else env)
    backends.update((spec.name, remote_backend) for spec in remote)
    return BackendRouter(specs, backends)


__all__ = ["BackendRouter", "DraftBackend", "build_backend"]
