"""Mutation testing of the core modules with mutmut (not part of CI: too slow for 2 cores).

    pip install -e '.[test,mutation]'
    python -m tests.mutation --list                  # the modules and their fast test subsets
    python -m tests.mutation graph/cache.py          # one module (or several, or --all)
    python -m tests.mutation nodes/denoise.py --mutants NAME...   # only these mutants

Each module runs in its own work folder (`.mutation/<module>/`): mutmut names a mutant after
its file's path, so the copy is laid out as the installed package (`latentgraph/graph/...`)
and the tests import that copy (mutmut puts its `mutants/` folder first on sys.path). Only the
named module is mutated, and only its fast test subset runs against each mutant. The last
line printed per module is its kill rate; docs/testing.md records them, with the survivors.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("graph", "nodes", "server")  # repo folder = latentgraph.<name>
ALSO_COPY = ["workflows/", "docs/", "README.md"]

ENGINE = ["tests/engine"]
# The plugin tests register node types from freshly imported modules, which fails in the
# mutants' copy (mutmut's trampolines): left out of the subset.
LOADING = ["tests/loading", "-k", "not plugins_from_a_folder and not entry_point_plugins"]
# The node tests run the tiny models: under a second each once built. The sampling loop's
# tests, with one golden run against diffusers per pipeline (text-to-image on ddim, on pndm,
# which has more timesteps than steps, and on tcd, whose step takes eta; img2img, inpainting,
# SDXL's base + refiner); not the 18-scheduler sweep nor the other golden ones.
NODES = ["tests/nodes/test_denoise.py", "tests/nodes/test_chain.py",
         "tests/nodes/test_img2img.py", "tests/nodes/test_inpaint_sampling.py",
         "tests/sdxl/test_refiner.py", "tests/gpu/test_speed_options.py", "-k",
         "not every_scheduler and not dpm and not sdpa and not tf32 and not serve and not bench"
         " and not ddim-0.35"]  # fmt: skip
# The per-step prediction: the stand-in UNet's exact combinations first, then the tiny models
# (areas, masks, ControlNet, the 9-channel inpainting UNet, SDXL's added inputs, a bf16 UNet).
GUIDANCE = ["tests/nodes/test_guidance.py", "tests/nodes/test_inpaint_sampling.py",
            "tests/controlnet/test_sampling.py", "tests/nodes/test_custom_sampling.py",
            "tests/sdxl/test_sdxl_entries.py", "tests/nodes/test_denoise.py", "-k",
            "guidance or 9_channel or inpainting_model or masked_image or controlnet_matches "
            "or area_entries or dual_cfg or sdxl or dtype"]  # fmt: skip

# module -> the fast tests that exercise it (pytest arguments), smallest modules first
MODULES: dict[str, list[str]] = {
    "server/safepath.py": ["tests/server/test_safepath.py", "tests/server/test_containment.py"],
    "server/prompt_body.py": ["tests/server/test_prompt_body.py"],
    "graph/problems.py": LOADING,
    "server/hosts.py": ["tests/server/test_origin_token.py", "tests/reliability/test_security.py",
                        "-k", "host or loopback or rebinding or interface or origin or bind"],
    "graph/cache.py": ["tests/engine/test_cache.py", "tests/engine/test_cache_rules.py",
                       "tests/engine/test_disk_cache.py"],
    # the config tests (seconds), not the pipeline comparisons (minutes on a busy machine)
    "nodes/schedulers.py": ["tests/nodes/test_img2img.py", "-k", "not pipeline and not batched"],
    "nodes/latents.py": ["tests/nodes/test_latents.py", "tests/nodes/test_chain.py",
                         "tests/nodes/test_errors_and_loading.py",
                         "tests/nodes/test_rules_and_settings.py", "tests/nodes/test_limits.py",
                         "-k", "latents or batch or seed or limit or multiple"],
    # the presets' own tests (shapes, config folders, recipes) and the single-file VAE and text
    # encoder of the wrong width, not the loads of whole checkpoints
    "nodes/model_presets.py": ["tests/checkpoints/test_configs.py", "tests/sdxl/test_single_file.py",
                               "tests/nodes/test_errors_and_loading.py",
                               "tests/checkpoints/test_components.py", "-k",
                               "configs or preset or detect or recognised or recipe"
                               " or wrong_architecture"],
    "server/middleware.py": ["tests/server/test_origin_token.py", "tests/server/test_guards.py",
                             "tests/server/test_limits.py", "-k",
                             "origin or token or cookie or body or guard"],
    "graph/model.py": [*LOADING, "tests/engine/test_scheduler.py"],
    # in-process only (test_restart's server is a subprocess no mutant reaches); not
    # test_dispatch: a mutant there waits out its 10 s queue timeouts
    "server/store.py": ["tests/server/test_store.py", "tests/server/test_store_memory.py"],
    # the 100,000-node chain (seconds, tens of them under mutmut) is left out: what it checks
    # besides its length (a cycle's nodes, no recursion) the other validation tests check too
    "graph/validate.py": ["tests/loading/test_validate.py", "tests/loading/test_validate_messages.py",
                          "tests/loading/test_socket_types.py", "tests/nodes/test_limits.py",
                          "tests/nodes/test_validation_checks.py", "-k", "not long_chain"],
    "nodes/denoise.py": NODES,
    "nodes/guidance.py": GUIDANCE,
    "graph/workflow/reading.py": LOADING,
    "graph/workflow/positions.py": LOADING,
    # the files that load workflows, not the hypothesis round trips of dumped text and prompts
    "graph/workflow/building.py": [
        *(f"tests/loading/test_{name}.py" for name in ("building", "workflow", "params", "socket_types",
          "limits", "examples", "dumping", "property", "validate", "reading", "positions")),
        "tests/engine/test_api.py", "-k", "not long_chain and not committed_schema and not "
        "malformed_prompts and not arbitrary_text"],
    "graph/workflow/dumping.py": LOADING,
    # not the 100,000-node chain (7 s a run; test_scheduler_rules pins the order rules)
    "graph/scheduler.py": ["tests/engine/test_scheduler.py", "tests/engine/test_scheduler_rules.py",
                           "tests/engine/test_properties.py",
                           "tests/engine/test_settings_reach_nodes.py", "tests/engine/test_api.py",
                           "tests/engine/test_disk_cache.py", "-k", "not deep_chain"],
    # the whole loading folder ran ~10 s a mutant here (declarations reach every test); the
    # 100,000-node chains (seconds each) are left out too
    "graph/declare.py": ["tests/loading/test_declare.py", "tests/loading/test_formats.py",
                         "tests/loading/test_validate.py", "tests/engine/test_scheduler.py", "-k",
                         "not plugins_from_a_folder and not entry_point_plugins"
                         " and not deep_chain and not long_chain"],
    "graph/comfy_api.py": [*LOADING, "tests/comfy/test_comfy_convert.py"],
    # the toy ComfyUI registry: no torch, ~1 s for both files
    "graph/formats.py": ["tests/comfy/test_load_formats.py", "tests/comfy/test_comfy_convert.py",
                         "tests/engine/test_api.py"],
    # the scheduler emits every event kind; its deep-chain test alone takes ~30 s here
    "graph/events.py": ["tests/engine/test_events.py", "tests/engine/test_scheduler.py", "-k",
                        "not deep_chain"],
    "graph/context.py": ["tests/engine/test_context.py", "tests/engine/test_scheduler.py",
                         "tests/engine/test_settings_reach_nodes.py",
                         "tests/loading/test_validate.py", "-k", "not deep_chain"],
    # the file routes mounted alone in process (~1 s); the server tests run workers
    "server/api_files.py": ["tests/server/test_api_files.py"],
    # mutmut runs the tests twice in one process before the mutants (stats, clean run): the
    # plugin tests of test_formats.py declare fixed node names, refused the second time;
    # test_plugins.py's names are unique per run
    "graph/plugins.py": ["tests/loading/test_plugins.py"],
    "graph/console.py": ["tests/engine/test_console.py", "tests/cli/test_messages.py", "-k",
                         "console or square_brackets"],
    "graph/node_docs.py": ["tests/loading/test_node_docs.py"],
    # the toy ComfyUI registry: no torch, under a second
    "graph/convert.py": ["tests/comfy/test_convert.py", "tests/comfy/test_comfy_convert.py"],
    # test_formats.py without its plugin tests (see LOADING)
    "graph/object_info.py": ["tests/loading/test_object_info.py", "tests/loading/test_formats.py",
                             "-k", LOADING[-1]],
    "graph/schema.py": ["tests/loading/test_schema.py", "tests/loading/test_formats.py",
                        "tests/loading/test_examples.py", "-k", "schema"],
    # test_comfy_semantics' group tests need the built-in nodes (torch) and run the CLI
    "graph/comfy_groups.py": ["tests/comfy/test_comfy_groups.py"],
    # the toy ComfyUI registry: no torch, about a second for the five files
    "graph/comfy_editor.py": ["tests/comfy/test_comfy_editor.py",
                              "tests/comfy/test_comfy_editor_document.py",
                              "tests/comfy/test_comfy_editor_reading.py",
                              "tests/comfy/test_comfy_convert.py", "tests/comfy/test_comfy_groups.py"],
    "graph/editor_layout.py": ["tests/comfy/test_comfy_editor_document.py"],
    # their own unit tests (a tenth of a second); the CLI and server tests that write files
    # run workers or subprocesses
    "graph/files.py": ["tests/engine/test_files_and_paths.py"],
    # and the models folders' walk (weight_files) through the dropdowns (no torch, no app/)
    "graph/paths.py": ["tests/engine/test_files_and_paths.py", "tests/comfy/test_models_dirs.py"],
}  # fmt: skip
# mutmut runs a pytest session per mutant (forked). The node tests' tiny models are built once
# per work folder and kept (LATENTGRAPH_TEST_MODELS, tests/conftest.py), so a session starts in
# about a second. mutmut's CPU-time limit is (tests' call time + constant) x multiplier x 2: its
# default multiplier (15) would let a hanging torch mutant burn many minutes, so node mutants
# get a few seconds for the session's setup and a small multiplier.
TORCH_PACKAGES = ("nodes/",)


def work_folder(module: str) -> Path:
    return ROOT / ".mutation" / module.replace("/", "_").removesuffix(".py")


def lay_out(module: str, work: Path) -> None:
    """A fresh copy of the package (as `latentgraph/<name>`), the tests, and a mutmut config."""
    if work.exists():
        shutil.rmtree(work)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, work / "latentgraph" / name, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    for extra in ALSO_COPY:
        source = ROOT / extra
        if source.is_dir():
            shutil.copytree(source, work / extra, ignore=ignore)
        elif source.exists():
            shutil.copy(source, work / extra)
    pytest_config = re.search(r"\[tool\.pytest\.ini_options\].*?(?=\n\[|\Z)",
                              (ROOT / "pyproject.toml").read_text(), re.S)  # fmt: skip
    torch = module.startswith(TORCH_PACKAGES)
    timeout = "5\ntimeout_multiplier = 3" if torch else "1"
    tests = ", ".join(f'"{t}"' for t in MODULES[module])
    (work / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["latentgraph"]\n'
        f'only_mutate = ["latentgraph/{module}"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q"]\n'
        f"also_copy = {ALSO_COPY!r}\n".replace("'", '"')
        + f"timeout_constant = {timeout}\n"
        "use_git_change_detection = false\n\n"
        + (pytest_config.group(0) if pytest_config else "")
        + "\n"
    )


def run(module: str, max_children: int, mutants: list[str]) -> dict[str, int]:
    work = work_folder(module)
    lay_out(module, work)
    env = dict(os.environ)
    env.setdefault("LATENTGRAPH_CACHE_DIR", str(work / ".cache"))
    env.setdefault("LATENTGRAPH_DATA_DIR", str(work / ".data"))
    env["LATENTGRAPH_TEST_MODELS"] = str(work / ".models")
    mutmut = [sys.executable, "-m", "mutmut"]
    subprocess.run([*mutmut, "run", "--max-children", str(max_children), *mutants], cwd=work,
                   env=env, check=False)  # fmt: skip
    results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, env=env,
                             capture_output=True, text=True, check=False)  # fmt: skip
    counts: dict[str, int] = {}
    for line in results.stdout.splitlines():
        _, _, status = line.rpartition(": ")
        if status:
            counts[status.strip()] = counts.get(status.strip(), 0) + 1
    return counts


def kill_rate(counts: dict[str, int]) -> str:
    """Killed (a test failed, or the mutant hung) out of every mutant that was run or had no
    test at all: a mutant no test reaches counts as a survivor."""
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    tested = killed + sum(counts.get(k, 0) for k in ("survived", "no tests", "suspicious"))
    if not tested:
        return "no mutant tested"
    return f"{killed}/{tested} killed ({100 * killed / tested:.0f}%)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("modules", nargs="*", help="e.g. graph/cache.py (see --list)")
    parser.add_argument("--all", action="store_true", help="every module of the table")
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    parser.add_argument("--max-children", type=int, default=1, help="mutants run in parallel")
    parser.add_argument("--mutants", nargs="+", default=[], metavar="NAME",
                        help="run only these (mutmut's names, e.g. those a stopped run left)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module:24} {' '.join(tests)}")
        return 0
    modules = list(MODULES) if args.all else args.modules
    unknown = [m for m in modules if m not in MODULES]
    if not modules or unknown:
        parser.error(f"name modules from --list (unknown: {unknown})" if unknown else
                     "name a module, or --all")  # fmt: skip
    if importlib.util.find_spec("mutmut") is None:  # `python -m mutmut` would fail per module
        print("mutmut is not installed: install the mutation extra, "
              "pip install -e '.[test,mutation]' (docs/testing.md)", file=sys.stderr)  # fmt: skip
        return 2
    for module in modules:
        counts = run(module, args.max_children, args.mutants)
        print(f"{module}: {kill_rate(counts)} {dict(sorted(counts.items()))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
