"""What node code receives: the cancel flag, device and dtype checks, run settings and
limits, progress and warnings passed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentgraph.graph.context import (
    LIMITS,
    Cancelled,
    CancelToken,
    Context,
    Settings,
    check_device,
)


def test_a_cancel_token_is_set_and_reset():
    token = CancelToken()
    assert not token.cancelled
    token.cancel()
    assert token.cancelled
    token.reset()
    assert not token.cancelled


@pytest.mark.parametrize(("text", "name"), [
    ("auto", "auto"), ("cpu", "cpu"), ("mps", "mps"), ("cuda", "cuda"), ("cuda:0", "cuda:0"),
    (" CUDA:12 ", "cuda:12"),
])  # fmt: skip
def test_device_names_are_trimmed_and_lower_cased(text, name):
    assert check_device(text) == name
    assert Settings(device=text).device == name


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cuda:1:2", "cpu0", "xcpu", ""])
def test_other_device_names_are_refused_with_the_accepted_ones(text):
    with pytest.raises(ValueError) as refused:
        Settings(device=text)
    assert str(refused.value) == (f"device {text!r} is not one of auto, cpu, cuda, cuda:N "
                                  "(N = 0, 1, ...) or mps")  # fmt: skip


def test_dtypes():
    assert [Settings(dtype=d).dtype for d in ("auto", "fp32", "fp16", "bf16")] == [
        "auto", "fp32", "fp16", "bf16"]  # fmt: skip
    with pytest.raises(ValueError) as refused:
        Settings(dtype="fp8")
    assert str(refused.value) == "dtype 'fp8' is not one of auto, fp32, fp16, bf16"


def test_settings_defaults_and_limits():
    """The defaults docs/reliability.md gives (4096x4096 pixels, 64 images, 1000 steps,
    100,000 characters)."""
    settings = Settings()
    assert (settings.output_dir, settings.input_dir, settings.temp_dir) == (
        Path("output"), Path("input"), Path("temp"))  # fmt: skip
    assert (settings.models_dirs, settings.device, settings.dtype, settings.options) == (
        [], "auto", "auto", {})  # fmt: skip
    assert {name: settings.limit(name) for name in LIMITS} == {
        "max_image_pixels": 4096 * 4096, "max_batch": 64, "max_batch_pixels": 4096 * 4096,
        "max_steps": 1000, "max_string_chars": 100_000}  # fmt: skip
    mine = Settings(max_image_pixels=10, max_batch=2, max_batch_pixels=20, max_steps=3,
                    max_string_chars=4)  # fmt: skip
    assert [mine.limit(name) for name in LIMITS] == [10, 2, 20, 3, 4]
    assert LIMITS == {"max_image_pixels": "pixels", "max_batch": "images",
                      "max_batch_pixels": "pixels", "max_steps": "steps",
                      "max_string_chars": "characters"}  # fmt: skip
    with pytest.raises(KeyError):
        mine.limit("max_seconds")


@pytest.mark.parametrize(("given", "message"), [
    ({"max_steps": -1}, "settings.max_steps: expected an integer of at least 1, got -1"),
    ({"max_batch": 0}, "settings.max_batch: expected an integer of at least 1, got 0"),
    ({"max_image_pixels": 2.5},
     "settings.max_image_pixels: expected an integer of at least 1, got 2.5"),
    ({"max_steps": True}, "settings.max_steps: expected an integer of at least 1, got True"),
    ({"output_dir": None}, "settings.output_dir: expected a folder (a str or a Path), got None"),
    ({"models_dirs": "models"},
     "settings.models_dirs: expected a list of folders, got 'models'; write ['models']"),
    ({"models_dirs": ["m", 3]},
     "settings.models_dirs[1]: expected a folder (a str or a Path), got 3"),
])  # fmt: skip
def test_nonsense_settings_are_refused_when_made_naming_the_field(given, message):
    """Settings(max_steps=-1) was accepted, and the run then failed at a sampler with 'steps 2
    is over the limit of -1'."""
    with pytest.raises(ValueError) as refused:
        Settings(**given)
    assert str(refused.value) == message


def test_folders_given_as_text_are_kept_as_paths():
    """Settings(output_dir="renders") kept a str while the other folders were Paths."""
    settings = Settings(output_dir="renders", input_dir="in", temp_dir="tmp", models_dirs=["m"])
    assert (settings.output_dir, settings.input_dir, settings.temp_dir, settings.models_dirs) == (
        Path("renders"), Path("in"), Path("tmp"), [Path("m")])  # fmt: skip
    assert all(type(p) is type(Path()) for p in (settings.output_dir, *settings.models_dirs))


def test_a_context_passes_progress_warnings_and_cancellation_on():
    sent, warned, token = [], [], CancelToken()
    ctx = Context("n1", "Sample", Settings(), token, extra={"params": {"seed": 1}},
                  emit_progress=lambda *a: sent.append(a), emit_warning=warned.append)  # fmt: skip
    assert (ctx.node_id, ctx.node_type, ctx.extra) == ("n1", "Sample", {"params": {"seed": 1}})

    def preview():
        return "image"

    ctx.progress(2, 5, preview)
    ctx.progress(3, 5)
    ctx.warn("careful")
    assert sent == [(2, 5, preview), (3, 5, None)] and warned == ["careful"]
    ctx.check_cancelled()  # not cancelled: nothing happens
    assert not ctx.cancelled
    token.cancel()
    assert ctx.cancelled
    with pytest.raises(Cancelled, match=r"^interrupted in node n1$"):
        ctx.check_cancelled()


def test_a_bare_context_reports_to_nobody_and_is_cacheable_until_told():
    ctx = Context("n", "T", Settings(), CancelToken())
    ctx.progress(1, 2, lambda: pytest.fail("a preview nobody receives is never built"))
    ctx.warn("nobody listens")
    assert ctx.extra == {} and ctx.cacheable
    ctx.extra["x"] = 1
    assert Context("m", "T", Settings(), CancelToken()).extra == {}  # not shared
    ctx.do_not_cache()
    assert not ctx.cacheable


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("ON", True), ("yes", True), ("1", True), (True, True),
    ("false", False), ("off", False), ("No", False), ("0", False), (False, False),
])  # fmt: skip
def test_switch_options_are_read_strictly_when_settings_are_made(text, value):
    """`compile=off` is off (it used to be a non-empty string, so on)."""
    settings = Settings(options={"compile": text, "sdpa": text})
    assert settings.option("compile") is value
    assert settings.option("sdpa") is value


def test_options_are_typed_and_unset_ones_read_their_default():
    settings = Settings(options={"vram_headroom_gb": "1.5", "vae_fp32": "AUTO"})
    assert settings.options == {"vram_headroom_gb": 1.5, "vae_fp32": "auto"}
    assert settings.option("sdpa") is True
    assert settings.option("compile") is False
    assert Settings(options={"vae_fp32": "off"}).option("vae_fp32") is False


def test_options_already_read_are_kept_as_read_and_others_are_read(monkeypatch):
    """`parse_options` reads once (naming the option as its caller calls it); Settings given
    its result keep it (a copy), Settings given a plain mapping read it themselves."""
    import dataclasses

    from latentgraph.graph.context import OPTIONS, ParsedOptions, parse_options

    declared, reads = OPTIONS["vram_headroom_gb"], []
    monkeypatch.setitem(OPTIONS, "vram_headroom_gb", dataclasses.replace(
        declared, parse=lambda value: reads.append(value) or declared.parse(value)))  # fmt: skip
    read = parse_options({"vram_headroom_gb": "1.5"}, "--option")
    settings = dataclasses.replace(Settings(options=read), device="cpu")
    assert reads == ["1.5"]
    assert settings.options == {"vram_headroom_gb": 1.5} and settings.options is not read
    assert isinstance(settings.options, ParsedOptions)
    assert Settings(options={"vram_headroom_gb": "2"}).option("vram_headroom_gb") == 2.0
    assert reads == ["1.5", "2"]
    with pytest.raises(ValueError, match="^--option compile: 'maybe' is not a switch"):
        parse_options({"compile": "maybe"}, "--option")


@pytest.mark.parametrize(("options", "message"), [
    ({"vae_tilling": "true"}, "option vae_tilling: no such option; did you mean 'vae_tiling'"),
    ({"compile": "maybe"},
     "option compile: 'maybe' is not a switch; write true or false (also on/off, 1/0)"),
    ({"compile": ""}, "option compile: '' is not a switch"),
    ({"vram_headroom_gb": "abc"},
     "option vram_headroom_gb: 'abc' is not a number of GB (0 or more, e.g. 1.5)"),
    ({"vram_headroom_gb": "-1"}, "option vram_headroom_gb: '-1' is not a number of GB"),
    ({"vram_headroom_gb": "nan"}, "option vram_headroom_gb: 'nan' is not a number of GB"),
    ({"vae_fp32": "maybe"}, "option vae_fp32: 'maybe' is not auto, true or false"),
])  # fmt: skip
def test_unknown_options_and_bad_values_are_refused_by_name(options, message):
    with pytest.raises(ValueError) as refused:
        Settings(options=options)
    assert str(refused.value).startswith(message)
