"""The `npu-tui` command. Imports only the core at start; the workbench is imported when it opens."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from dataclasses import replace
from pathlib import Path

from .core.errors import InternalError, UserError
from .core.text import one_line, printable

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one `error:` line, like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(EXIT_USER)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="npu-tui",
        description="Debug int8 weight quantization for the GRUS (GX8002) NPU. "
        "`npu-tui [CONFIG] [--data NPZ]` opens the workbench (default: the bundled kws_tdnn sample).",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    comp = commands.add_parser("compile", help="quantize the weights as gxnpuc does and report on each one")
    comp.add_argument("config", help="the vendor config.yaml")
    comp.add_argument("-w", "--weights", action="store_true", help="print each quantized weight as NAME: [shape]")
    comp.add_argument("-s", "--save-hist", action="store_true", help="save a JPEG histogram per quantized weight")
    comp.add_argument("--hist-dir", default="npu_jpgs", help="folder for -s (default: ./npu_jpgs)")
    comp.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    comp.add_argument("--sim", metavar="PATH", help="write the NPU simulation model (ONNX) to PATH")
    comp.add_argument(
        "--no-fp16-activations", action="store_true", help="in --sim, keep activations in fp32"
    )
    comp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ev = commands.add_parser("eval", help="run the float model and the NPU simulation and compare them")
    ev.add_argument("config", help="the vendor config.yaml")
    ev.add_argument("--data", metavar="NPZ", help="one array per model input (samples first), optional labels")
    ev.add_argument("--samples", type=_positive, metavar="N", help="use N samples (default: all of --data, or 64 random)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the random inputs without --data (default 0)")
    ev.add_argument("--layers", action="store_true", help="also compare every layer's output")
    ev.add_argument("--sensitivity", action="store_true", help="also rank weights by the damage each one does")
    ev.add_argument("--no-fp16-activations", action="store_true", help="keep activations in fp32 in the simulation")
    ev.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    ev.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


COMMANDS = ("compile", "eval")
SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "sample_models" / "kws_tdnn" / "config.yaml"


def build_tui_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="npu-tui",
        description="Open the workbench (default: the bundled kws_tdnn sample). Commands: compile, eval (see npu-tui compile -h).",
    )
    parser.add_argument("config", nargs="?", help="the vendor config.yaml (default: the bundled kws_tdnn sample)")
    parser.add_argument("--data", metavar="NPZ", help="evaluation data (default: eval.npz beside the config, else random inputs)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS and not {"-h", "--help"} & set(argv[:1]):
        return _guarded(build_tui_parser().parse_args(argv), _workbench)
    return _guarded(build_parser().parse_args(argv), _command)


def _command(args: argparse.Namespace) -> int:
    if args.command == "compile":
        return _compile(args)
    if args.command == "eval":
        return _evaluate(args)
    build_parser().print_help()
    return EXIT_OK


def _guarded(args: argparse.Namespace, run) -> int:
    try:
        return run(args)
    except UserError as exc:
        sys.stderr.write(f"error: {printable(one_line(str(exc)))}\n")
        return EXIT_USER
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # an internal bug: short unless asked for the details
        if args.debug:
            traceback.print_exc()
        else:
            what = one_line(str(exc)) if isinstance(exc, InternalError) else repr(exc)
            sys.stderr.write(f"internal error: {printable(what)} (run with --debug for the traceback)\n")
        return EXIT_BUG


def _open(args: argparse.Namespace):
    """The project of args.config, its warnings on stderr, and its settings with the fp16 option."""
    from .core.project import open_project

    project = open_project(args.config)
    for warning in project.config.warnings:
        sys.stderr.write(f"warning: {printable(warning)}\n")
    return project, replace(project.config.settings, fp16_activations=not args.no_fp16_activations)


def _compile(args: argparse.Namespace) -> int:
    from .core.histogram import INDEX_FILE, write_jpegs
    from .core.progress import Progress
    from .core.report import compilation_json, summary_lines, weight_lines
    from .core.sim_check import check_simulation
    from .core.simulation import build_simulation

    project, settings = _open(args)
    compilation = project.compile(settings)
    if args.sim:
        _check_not_output_file(project.config, Path(args.sim))
        sim = build_simulation(project.compiler, compilation, settings.fp16_activations)
        try:
            sim.save(args.sim)
        except OSError as exc:
            raise UserError(f"--sim {args.sim}: cannot write: {exc.strerror}") from None
        for warning in check_simulation(Path(args.sim), project.inventory.path):
            sys.stderr.write(f"warning: {printable(warning)}\n")
    if args.save_hist:
        try:
            with Progress("histograms", sys.stderr) as progress:
                written = write_jpegs(project.compiler, compilation, Path(args.hist_dir), progress.update)
        except OSError as exc:
            raise UserError(f"--hist-dir {args.hist_dir}: cannot write: {exc.strerror}") from None
        sys.stderr.write(f"wrote {len(written)} histograms and {INDEX_FILE} to {printable(str(Path(args.hist_dir)))}\n")
    if args.json:
        document = compilation_json(project, compilation)
        document["warnings"] += [{"code": "config", "weight": None, "message": w} for w in project.config.warnings]
        json.dump(document, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return EXIT_OK
    lines = weight_lines(compilation) if args.weights else []
    lines += summary_lines(project, compilation)
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


RANDOM_SAMPLES = 64


def _workbench(args: argparse.Namespace) -> int:
    from .core.eval_data import load_npz, model_inputs, random_data
    from .core.project import open_project
    from .core.workbench import Workbench

    config = Path(args.config) if args.config else SAMPLE_CONFIG
    project = open_project(config)
    inputs = model_inputs(project.inventory.model, project.config.input_shapes)
    beside = config.parent / "eval.npz"
    if args.data or beside.exists():
        data = load_npz(args.data or beside, inputs)
    else:
        try:
            data = random_data(inputs, RANDOM_SAMPLES, 0)
        except UserError as exc:
            sys.stderr.write(f"warning: no evaluation: {printable(str(exc))}\n")
            data = None
    from .tui.app import NpuTuiApp

    NpuTuiApp(Workbench(project, data)).run()
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from .core.eval_data import load_npz, model_inputs, random_data
    from .core.eval_report import evaluation_json, evaluation_lines
    from .core.evaluate import Evaluator
    from .core.progress import Progress
    from .core.sensitivity import Cancelled

    project, settings = _open(args)
    inputs = model_inputs(project.inventory.model, project.config.input_shapes)
    if args.data:
        data = load_npz(args.data, inputs)
        if args.samples:
            data = data.head(args.samples)
    else:
        data = random_data(inputs, args.samples or RANDOM_SAMPLES, args.seed)
    evaluator = Evaluator(project.compiler, data, project.config.output_names)
    compilation = project.compile(settings)
    for warning in compilation.warnings:
        if warning.code == "fp16_overflow":  # changes what the NPU computes: the numbers below show it
            sys.stderr.write(f"warning: {printable(warning.message)}\n")
    evaluation = evaluator.evaluate(compilation, settings.fp16_activations, layers=args.layers)
    sensitivity = None
    status = EXIT_OK
    if args.sensitivity:
        with Progress("sensitivity", sys.stderr) as progress:
            try:
                sensitivity = evaluator.sensitivity(settings, progress.update)
            except Cancelled as stopped:  # Ctrl-C: report what was measured, then exit as interrupted
                sensitivity, status = stopped.partial, EXIT_INTERRUPTED
        if status == EXIT_INTERRUPTED:
            total = len(project.inventory.weights)
            sys.stderr.write(f"interrupted: {len(sensitivity)} of {total} weights measured; the others are not in the report\n")
    if args.json:
        json.dump(evaluation_json(evaluation, sensitivity), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(evaluation_lines(evaluation, sensitivity, data.source)) + "\n")
    return status


def _check_not_output_file(config, target: Path) -> None:
    output = config.data.get("OUTPUT_FILE")
    if isinstance(output, str) and (config.path.parent / output).resolve() == target.resolve():
        raise UserError(f"--sim {target}: that is OUTPUT_FILE, which belongs to gxnpuc; choose another path")


if __name__ == "__main__":
    sys.exit(main())
