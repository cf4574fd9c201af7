"""The `npu-tui` command. Imports only the core at start; the workbench is imported when it opens."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .core.errors import InternalError, UserError
from .core.sample_copy import SAMPLE_NAME
from .core.text import one_line, printable

if TYPE_CHECKING:
    from .core.config.project import Project
    from .core.opening import DataChoice
    from .core.quant.settings import Settings
    from .core.sim.eval_data import EvalData
    from .core.triage.fix import Target

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_MISSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _ArgumentError(UserError):
    """A bad command line: reported like every other user error (one line; a JSON document too with --json)."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are user errors, so they are reported the one way every user error is."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgumentError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="npu-tui",
        description="Debug int8 weight quantization for the GRUS (GX8002) NPU. "
        "`npu-tui [CONFIG] [--data NPZ]` opens the workbench (default: the bundled kws_tdnn sample, a TensorFlow frozen graph as gxnpuc reads it).",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    parser.add_argument("--version", action="version", version=f"npu-tui {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    comp = commands.add_parser("compile", help="quantize the weights as gxnpuc does and report on each one")
    comp.add_argument("config", help="the vendor config.yaml")
    comp.add_argument("-w", "--weights", action="store_true", help="print each quantized weight as NAME: [shape]")
    comp.add_argument("-s", "--save-hist", action="store_true", help="save a JPEG histogram per quantized weight")
    comp.add_argument("--hist-dir", default="npu_jpgs", help="folder for -s (default: ./npu_jpgs)")
    comp.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    comp.add_argument(
        "--check",
        action="store_true",
        help="list every reason gxnpuc would refuse the model (a .pb) and stop; exit 2 if there is any",
    )
    comp.add_argument("--sim", metavar="PATH", help="write the NPU simulation model (ONNX) to PATH")
    comp.add_argument("--no-fp16-activations", action="store_true", help="in --sim, keep activations in fp32")
    comp.add_argument("--codes", metavar="NPZ", help="write each quantized weight's uint8 codes, in its own shape, to NPZ")
    comp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ev = commands.add_parser("eval", help="run the float model and the NPU simulation and compare them")
    ev.add_argument("config", help="the vendor config.yaml")
    _data_arguments(ev)
    ev.add_argument("--layers", action="store_true", help="also compare every layer's output")
    ev.add_argument("--sensitivity", action="store_true", help="also rank weights by the damage each one does")
    ev.add_argument("--no-fp16-activations", action="store_true", help="keep activations in fp32 in the simulation")
    ev.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    _target_arguments(ev, required=False)
    ev.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    fx = commands.add_parser("fix", help="find the cheapest config (in NPU bytes) that meets an accuracy target")
    fx.add_argument("config", help="the vendor config.yaml")
    _target_arguments(fx, required=True)
    fx.add_argument("--budget", type=_positive, metavar="BYTES", help="never more NPU bytes than this")
    _data_arguments(fx)
    fx.add_argument("--no-fp16-activations", action="store_true", help="keep activations in fp32 in the simulation")
    fx.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    fx.add_argument("--write", action="store_true", help="save the result into CONFIG (atomic, keeps a .bak and comments)")
    fx.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sm = commands.add_parser("simulate", help="run the NPU's own fp16 arithmetic (bit-exact) and write its outputs")
    sm.add_argument("config", help="the vendor config.yaml")
    _data_arguments(sm)
    sm.add_argument("--out", required=True, metavar="NPZ", help="write one array per output name here (samples first)")
    sm.add_argument("--float", action="store_true", help="write the float model's outputs instead of the NPU's")
    sm.add_argument(
        "--vendor-inputs",
        action="store_true",
        help="convert inputs to fp16 as the SDK's test_mnist.c does (ties away from zero; default: IEEE round to even)",
    )
    sm.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --samples, --seed: the same options and the same rule (core/opening.py) everywhere."""
    parser.add_argument(
        "--data",
        metavar="NPZ",
        help="one array per model input (samples first), optional labels (default: eval.npz beside the config, else random inputs)",
    )
    parser.add_argument("--samples", type=_positive, metavar="N", help="use N samples (default: all of the data, or 64 random)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs without data (default 0)")


def _target_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--max-drop", type=_finite, metavar="POINTS", help="accuracy (with labels) at most this many points below float"
    )
    group.add_argument(
        "--min-agreement", type=_finite, metavar="PCT", help="top-1 agreement with the float model at least PCT %%"
    )
    group.add_argument("--min-sqnr", type=_finite, metavar="DB", help="the worst output's SQNR at least DB")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def _whole(least: int, meaning: str) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `least`; `meaning` says why, in the message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text} is {meaning}")
        return value

    return parse


_seed = _whole(0, "negative; a seed is 0 or more")
_positive = _whole(1, "not a positive number")


COMMANDS = ("compile", "eval", "fix", "simulate")
CHECKOUT_SAMPLE = Path(__file__).resolve().parent.parent / "sample_models" / SAMPLE_NAME


def bundled_sample(home: Path | None = None) -> Path:
    """The config of a private copy of the kws_tdnn sample as gxnpuc reads it (a frozen .pb; core/sample_copy.py), made once from the
    checkout's sample_models/ or the one installed with the package; later runs open the copy, with
    whatever the user saved into it. Never the original: a save must not dirty the checkout or
    site-packages."""
    from importlib.resources import files

    from .core.sample_copy import SAMPLE_FILES, sample_copy, sample_home

    installed = files("npu_tui") / "samples" / SAMPLE_NAME
    candidates = (CHECKOUT_SAMPLE, installed)
    source = next((c for c in candidates if all((c / name).is_file() for name in SAMPLE_FILES)), None)
    if source is None:
        raise UserError(
            "no config given and the bundled sample is not installed here: run npu-tui CONFIG.yaml (the gxnpuc config of your model)"
        )
    home = home or sample_home()
    config, made = sample_copy(source, home)
    if made:
        sys.stderr.write(f"the bundled sample is copied to {printable(str(home))}: saving writes there\n")
    return config


def build_tui_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="npu-tui",
        description="Open the workbench (default: the bundled kws_tdnn sample). Commands: compile, eval (see npu-tui compile -h).",
    )
    parser.add_argument("config", nargs="?", help="the vendor config.yaml (default: the bundled kws_tdnn sample)")
    _data_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    parser.add_argument("--version", action="version", version=f"npu-tui {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    tui = command not in COMMANDS and not {"-h", "--help"} & set(argv[:1])
    try:
        args = (build_tui_parser() if tui else build_parser()).parse_args(argv)
    except _ArgumentError as exc:  # no namespace yet: --json is read from the words given
        wants_json = "--json" in argv[: argv.index("--") if "--" in argv else len(argv)]
        return _report_user_error(exc, wants_json)
    return _guarded(args, _workbench if tui else _command)


def _command(args: argparse.Namespace) -> int:
    if args.command == "compile":
        return _compile(args)
    if args.command == "eval":
        return _evaluate(args)
    if args.command == "fix":
        return _fix(args)
    if args.command == "simulate":
        return _simulate(args)
    build_parser().print_help()
    return EXIT_OK


def _guarded(args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    try:
        return run(args)
    except UserError as exc:
        return _report_user_error(exc, getattr(args, "json", False))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # an internal bug: short unless asked for the details
        if args.debug:
            traceback.print_exc()
        else:
            what = one_line(str(exc)) if isinstance(exc, InternalError) else repr(exc)
            sys.stderr.write(f"internal error: {printable(what)} (run with --debug for the traceback)\n")
        return EXIT_BUG


def _report_user_error(exc: UserError, wants_json: bool) -> int:
    """One `error:` line on stderr; with --json, a script reading stdout gets a document either way."""
    message = one_line(str(exc))
    sys.stderr.write(f"error: {printable(message)}\n")
    if wants_json:
        _emit({"npu_tui_version": __version__, "error": message})
    return EXIT_USER


def _open(args: argparse.Namespace) -> tuple[Project, Settings]:
    """The project of args.config, its warnings on stderr, and its settings with the fp16 option."""
    from .core.config.project import open_project

    project = open_project(args.config)
    for _, warning in project.warnings:
        sys.stderr.write(f"warning: {printable(warning)}\n")
    return project, replace(project.config.settings, fp16_activations=not args.no_fp16_activations)


def _compile(args: argparse.Namespace) -> int:
    from .core.progress import Progress
    from .core.quant.histogram import INDEX_FILE, write_jpegs
    from .core.report import compilation_json, summary_lines, weight_lines, write_codes
    from .core.safe_files import atomic_write, refuse_inputs
    from .core.sim.sim_check import check_simulation
    from .core.sim.simulation import build_simulation

    if args.check:
        return _check(args)
    project, settings = _open(args)
    compilation = project.compile(settings)
    if args.sim:
        refuse_inputs(Path(args.sim), project.inputs, "--sim")
        sim = build_simulation(project.compiler, compilation, settings.fp16_activations)
        try:
            sim.save(args.sim)
        except OSError as exc:
            raise UserError(f"--sim {args.sim}: cannot write: {exc.strerror}") from None
        for warning in check_simulation(sim, Path(args.sim), project.inventory.path):
            sys.stderr.write(f"warning: {printable(warning)}\n")
    if args.codes:
        refuse_inputs(Path(args.codes), project.inputs, "--codes")
        try:
            with atomic_write(Path(args.codes)) as handle:
                write_codes(handle, compilation)
        except OSError as exc:
            raise UserError(f"--codes {args.codes}: cannot write: {exc.strerror}") from None
    if args.save_hist:
        refuse_inputs(Path(args.hist_dir), project.inputs, "--hist-dir")
        try:
            with Progress("histograms", sys.stderr) as progress:
                written = write_jpegs(project.compiler, compilation, Path(args.hist_dir), progress.update)
        except OSError as exc:
            raise UserError(f"--hist-dir {args.hist_dir}: cannot write: {exc.strerror}") from None
        sys.stderr.write(f"wrote {len(written)} histograms and {INDEX_FILE} to {printable(str(Path(args.hist_dir)))}\n")
    if args.json:
        about = {"npu_tui_version": __version__, "config": str(project.config.path), "model": str(project.inventory.path)}
        document = {**about, **compilation_json(project, compilation)}
        document["warnings"] += _warnings_json(project)
        _emit(document)
        return EXIT_OK
    lines = weight_lines(compilation) if args.weights else []
    lines += summary_lines(project, compilation)
    _report(lines)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    """`compile --check`: the GRUS op list and its limits against the graph, every problem listed."""
    from .core.config.reader import load_config
    from .core.model.onnx_checks import onnx_problems
    from .core.model.onnx_file import is_graphdef, load_model
    from .core.model.tf.checks import check_pb

    config = load_config(args.config)
    if is_graphdef(config.model_path):
        found = check_pb(config.model_path, config.input_shapes, config.output_names or None)
    else:  # an ONNX model: what gxnpuc refuses or miscompiles of what it can tell (Softmax, a last-axis Split)
        found = onnx_problems(load_model(config.model_path).model, config.input_shapes)
    if args.json:
        _emit({"npu_tui_version": __version__, "model": str(config.model_path), "refused": bool(found), "problems": found})
    elif found:
        _report([f"gxnpuc will refuse this model: {config.model_path}", *(f"  {p}" for p in found)])
    else:
        _report([f"{config.model_path}: every op is in the GRUS list of gxnpuc -L, within its limits"])
    return EXIT_USER if found else EXIT_OK


def _choice(args: argparse.Namespace) -> DataChoice:
    from .core.opening import DataChoice

    return DataChoice(Path(args.data) if args.data else None, args.samples, args.seed)


def _workbench(args: argparse.Namespace) -> int:
    from .core.opening import open_workbench

    config = Path(args.config) if args.config else bundled_sample()
    workbench = open_workbench(config, _choice(args))
    if workbench.evaluation_error:
        sys.stderr.write(f"warning: {printable(workbench.evaluation_error)}\n")
    from .tui.app import NpuTuiApp

    app = NpuTuiApp(workbench, debug=args.debug, reopen=partial(open_workbench, config, _choice(args)))
    app.run()
    if app.crash is not None:  # the terminal is restored by now
        sys.stderr.write(printable(app.crash) + (" (run with --debug for the traceback)" if not args.debug else "") + "\n")
        if app.recovered is not None:
            sys.stderr.write(f"your unsaved settings are in {printable(str(app.recovered))}\n")
        return EXIT_BUG
    return EXIT_OK if app.return_code in (None, 0) else EXIT_BUG


def _data(args: argparse.Namespace, project: Project) -> EvalData:
    from .core.opening import project_data

    return project_data(project, _choice(args))


def _target(args: argparse.Namespace) -> Target | None:
    from .core.kinds import TargetKind
    from .core.triage.fix import Target

    for kind in TargetKind:
        value = getattr(args, kind.value, None)
        if value is not None:
            return Target(kind, value)
    return None


def _about(args: argparse.Namespace, project: Project, data: EvalData) -> dict:
    """What every --json document starts with: who wrote it, from what."""
    source = (
        {"file": data.source}
        if not data.source.startswith("random")
        else {"random": {"seed": args.seed, "samples": data.samples}}
    )
    return {
        "npu_tui_version": __version__,
        "config": str(project.config.path),
        "model": str(project.inventory.path),
        "data": {**source, "samples": data.samples},
        "warnings": _warnings_json(project),
    }


def _warnings_json(project: Project) -> list[dict]:
    """The config's and the model's warnings, as compile --json lists its own."""
    return [{"code": code, "weight": None, "message": message} for code, message in project.warnings]


def _evaluate(args: argparse.Namespace) -> int:
    from .core.eval_report import evaluation_json, evaluation_lines
    from .core.progress import Progress
    from .core.sim.analysis import Analysis
    from .core.sim.evaluate import Evaluator
    from .core.sim.sensitivity import Cancelled
    from .core.triage.report import target_text

    project, settings = _open(args)
    data = _data(args, project)
    target = _target(args)
    analysis = Analysis(Evaluator(project.compiler, data, project.config.output_names, project.fp16_outputs))
    compilation = project.compile(settings)
    for warning in compilation.warnings:
        if warning.code in ("fp16_overflow", "fp16_underflow"):  # changes what the NPU computes: the numbers below show it
            sys.stderr.write(f"warning: {printable(warning.message)}\n")
    evaluation = analysis.evaluate(compilation, settings.fp16_activations, layers=args.layers, exact=True)
    status = EXIT_OK
    if target is not None:
        target.check(evaluation)
        if not target.met(evaluation):
            status = EXIT_MISSED
    sensitivity = None
    if args.sensitivity:
        with Progress("sensitivity", sys.stderr) as progress:
            try:
                sensitivity = analysis.sensitivity(settings, progress.update)
            except Cancelled as stopped:  # Ctrl-C: report what was measured, then exit as interrupted
                sensitivity, status = stopped.partial, EXIT_INTERRUPTED
        if status == EXIT_INTERRUPTED:
            total = len(project.inventory.weights)
            sys.stderr.write(f"interrupted: {len(sensitivity)} of {total} weights measured; the others are not in the report\n")
    if args.json:
        document = {**_about(args, project, data), **evaluation_json(evaluation, sensitivity)}
        if target is not None:
            document["target"] = {
                "kind": target.kind,
                "value": target.value,
                "metric": target.measure(evaluation),
                "met": target.met(evaluation),
            }
        _emit(document)
    else:
        lines = evaluation_lines(evaluation, sensitivity, data.source, shutil.get_terminal_size().columns)
        if target is not None:
            lines.append("")
            lines.append(
                f"target {target_text(target)}: {'met' if target.met(evaluation) else 'MISSED'} ({target.text(target.measure(evaluation))})"
            )
        _report(lines)
    return status


def _simulate(args: argparse.Namespace) -> int:
    """What the chip returns for each sample (float32 outputs, FP16_OUT_OPS as float16), or --float."""
    import numpy as np

    from .core.safe_files import atomic_write, refuse_inputs
    from .core.sim.evaluate import Evaluator
    from .core.sim.npu.chip import chip_outputs
    from .core.sim.simulation import build_simulation, held_constants

    args.no_fp16_activations = False
    project, settings = _open(args)
    data = _data(args, project)
    out = Path(args.out)
    refuse_inputs(out, project.inputs, "--out")
    evaluator = Evaluator(project.compiler, data, project.config.output_names, project.fp16_outputs)
    names = list(evaluator.outputs)
    if args.float:
        arrays = {name: np.asarray(value, dtype=np.float32) for name, value in evaluator.reference().items()}
    else:
        compilation = project.compile(settings)
        sim = build_simulation(project.compiler, compilation, fp16_activations=False)
        held = held_constants(sim, compilation)
        chip = chip_outputs(sim.to_proto(), held, data.inputs, names, project.config.data, args.vendor_inputs)
        for diagnostic in chip.diagnostics:
            sys.stderr.write(f"warning: {printable(diagnostic.message)}\n")
        arrays = chip.arrays
    try:
        with atomic_write(out) as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot write: {exc.strerror}") from None
    what = "float model" if args.float else "NPU (exact fp16 arithmetic)"
    sys.stderr.write(f"wrote {len(arrays)} outputs of {data.samples} samples ({what}) to {printable(str(out))}\n")
    return EXIT_OK


def _fix(args: argparse.Namespace) -> int:
    from .core.config.writer import check_writable, config_diff, managed_values, read_config_text, save_config
    from .core.progress import Progress
    from .core.sim.analysis import Analysis
    from .core.sim.evaluate import Evaluator
    from .core.triage.fix import Search
    from .core.triage.report import fix_json, fix_lines

    project, settings = _open(args)
    if args.write:  # before the search, not after it
        check_writable(project.config.path)
    data = _data(args, project)
    target = _target(args)
    assert target is not None  # fix's parser requires a target
    analysis = Analysis(Evaluator(project.compiler, data, project.config.output_names, project.fp16_outputs))
    loaded = read_config_text(project.config.path)
    with Progress("ranking the weights", sys.stderr) as progress:

        def sweeping(_start: str, done: int, total: int) -> None:
            if done == 1:  # a new ranking sweep: its own time left
                progress.start = time.monotonic()
            progress.update(done, total)

        result = Search(project, analysis, target, budget=args.budget, on_sweep=sweeping).run(settings)
    diff = config_diff(project.config.path, result.settings)
    backup = None
    if args.write and diff and not result.stopped:
        if read_config_text(project.config.path) != loaded:
            raise UserError(f"{project.config.path}: changed on disk while fix ran; nothing written (run fix again)")
        backup = save_config(project.config.path, result.settings)
    if args.json:
        document = {
            **_about(args, project, data),
            **fix_json(result),
            "settings": managed_values(result.settings),
            "paths": [
                {
                    "start": p.start,
                    "start_metric": p.start_metric,
                    "start_bytes": p.start_bytes,
                    "end_metric": p.end_metric,
                    "end_bytes": p.end_bytes,
                    "met": p.met,
                    "changes": p.changes,
                }
                for p in result.paths
            ],
            "why": result.why,
            "stopped": result.stopped,
            "evaluations": result.evaluations,
            "seconds": round(result.seconds, 3),
            "written": str(project.config.path) if backup is not None else None,
        }
        document["settings"]["WEIGHT_MIN_MAX"] = {k: list(v) for k, v in document["settings"]["WEIGHT_MIN_MAX"].items()}
        _emit(document)
    else:
        _report(fix_lines(result, diff, (project.config.path, backup) if backup is not None else None))
    if result.stopped:  # Ctrl-C: the best found so far is above, nothing written
        sys.stderr.write("interrupted: the search was stopped; the best config it had found is shown, nothing written\n")
        return EXIT_INTERRUPTED
    return EXIT_OK if result.met else EXIT_MISSED


def _report(lines: list[str]) -> None:
    """A text report on stdout, every line through `printable`: names and paths come from the model
    and the config, and whatever a report line forgot to spell out is spelled out here."""
    sys.stdout.write("\n".join(printable(line) for line in lines) + "\n")


def _emit(document: object) -> None:
    """One JSON document on stdout, valid by RFC 8259: a number that does not exist (NaN, an
    infinity from an fp16 overflow) is null."""
    json.dump(_json_safe(document), sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")


def _json_safe(value: object) -> object:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
