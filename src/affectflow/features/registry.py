"""The extractors the pipeline knows, by name: every class registered with `affectflow.features.base.register` of a module in
`affectflow.features.extractors` (adding an extractor is adding a file there).

The config schema's extractor lists and parameter blocks (`schema_blocks`) and the workflow's
wiring (which stores a job reads) come from here. Extractor modules import their heavy
libraries (torch, openSMILE, MediaPipe, CTranslate2) inside their methods, so the workflow can
import every module when it plans, and a job still loads only what its extractor uses.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from affectflow.features.base import REGISTERED, Extractor
from affectflow.features.params import config_schema

MEDIA_PREP = "audio"  # the store of decoded samples, configured by the `media` section


def _discover() -> dict[str, type[Extractor]]:
    package = importlib.import_module("affectflow.features.extractors")
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        importlib.import_module(f"{package.__name__}.{module}")
    return dict(sorted(REGISTERED.items()))


EXTRACTORS: dict[str, type[Extractor]] = _discover()


def get_extractor(name: str) -> type[Extractor]:
    """The class registered as `name`, with a message listing the known ones otherwise."""
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise KeyError(f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}") from None


def build(name: str, params: Mapping[str, Any]) -> Extractor:
    """The extractor `name` configured with `params` (missing ones take their defaults)."""
    return get_extractor(name).from_params(params)


def feature_extractors() -> list[str]:
    """The extractors a config chooses from (all but media prep, which runs when one reads it)."""
    return [name for name in EXTRACTORS if name != MEDIA_PREP]


def upstream(names: list[str]) -> list[str]:
    """`names` with every store they read, transitively, each before its readers."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        for store in get_extractor(name).stores():
            visit(store)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def schema_blocks() -> dict[str, Any]:
    """The generated parts of the config schema: each extractor's parameter block, the media
    section (media prep's parameters), and the list of extractor names."""
    blocks = {name: config_schema(cls.config_type, cls.description) for name, cls in EXTRACTORS.items()}
    return {"media": blocks.pop(MEDIA_PREP), "extractors": blocks, "names": feature_extractors()}
