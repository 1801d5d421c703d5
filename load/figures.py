"""Render a chapter's figures by executing its notebook on a results folder.

The notebook reads ``RESULTS_DIR`` and writes PNGs to ``FIGURES_DIR`` (``<results>/figures``);
the executed copy, with its outputs, is saved beside them.
"""
import gzip
import os
import shutil
from pathlib import Path

from load.harness import ROOT


def notebook_path(slug: str) -> Path:
    return ROOT / "notebooks" / f"{slug}.ipynb"


def render(slug: str, results_dir: Path, figures_dir: Path | None = None, timeout_s: int = 300) -> Path:
    import nbformat
    from nbclient import NotebookClient

    results_dir = Path(results_dir).resolve()   # the kernel runs in notebooks/: no relative paths
    figures_dir = Path(figures_dir or results_dir / "figures").resolve()
    figures_dir.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(notebook_path(slug), as_version=4)
    previous = {key: os.environ.get(key) for key in ("RESULTS_DIR", "FIGURES_DIR")}
    os.environ.update(RESULTS_DIR=str(results_dir), FIGURES_DIR=str(figures_dir))
    try:
        print(f"rendering {notebook_path(slug).relative_to(ROOT)} from {results_dir} ...", flush=True)
        NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    nbformat.write(notebook, figures_dir / notebook_path(slug).name)
    print(f"figures: {figures_dir}", flush=True)
    return figures_dir


def make_reference(slug: str, results_dir: Path) -> Path:
    """Copy a results folder (without databases, broker files and logs, the raw requests gzipped)
    into the chapter, and render its figures there."""
    reference = ROOT / "chapters" / slug / "reference"
    if reference.exists():
        shutil.rmtree(reference)
    shutil.copytree(results_dir, reference,
                    ignore=shutil.ignore_patterns("data", "logs", "figures", "*.html", "*.log"))
    for raw in reference.glob("**/raw/requests-*.csv"):   # every request: a fifth of the size gzipped
        with open(raw, "rb") as plain, open(f"{raw}.gz", "wb") as out, \
                gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed:   # same bytes on every copy
            shutil.copyfileobj(plain, packed)
        raw.unlink()
    render(slug, reference)
    (reference / "figures" / notebook_path(slug).name).unlink(missing_ok=True)
    print(f"reference set: {reference}", flush=True)
    return reference
