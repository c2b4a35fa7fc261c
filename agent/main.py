"""``privacy-agent``: the daemon and the integrator's tools.

Entry layer: parse arguments, import the module that does the work only when its subcommand runs (so that
``--help`` and light subcommands stay fast), map errors to exit codes. No logic here.

Exit codes: 0 ok, 1 failed (reason printed), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# subcommand -> "module:function"; each function takes the parsed namespace and returns an exit code.
HANDLERS: dict[str, str] = {
    "run": "agent.run:run_command",
    "sim": "agent.sim_command:sim_command",
    "demo": "agent.demo:demo_command",
    "replay": "agent.replay:replay_command",
    "verify-export": "agent.ledger.tool:verify_export_command",
    "ledger verify": "agent.ledger.tool:verify_command",
    "ledger export": "agent.ledger.tool:export_command",
    "rig run": "agent.rig.cli:rig_run_command",
    "rig soak": "agent.rig.cli:rig_soak_command",
    "policy render": "agent.policy_render:render_command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privacy-agent", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", required=True, help="TOML configuration file")
    run.add_argument("--port", help="AT port URL (overrides [modem] port)")
    run.add_argument("--nmea-port", help="NMEA port URL (overrides [modem] nmea_port)")
    run.add_argument("--state-dir", help="state directory (overrides [state] dir)")
    run.add_argument("--socket", help="control socket path (overrides [control] socket)")

    sim = commands.add_parser("sim", help="serve a simulated Quectel modem on ptys")
    sim.add_argument("--model", default="ec25", help="modem model (default ec25)")
    sim.add_argument("--pty-link", help="symlink to create for the AT port")
    sim.add_argument("--nmea-pty-link", help="symlink to create for the NMEA port")
    sim.add_argument("--at2-pty-link", help="symlink for a second AT port (another client, e.g. a rogue one)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--ttff", type=float, default=5.0, help="seconds to first fix after GNSS on (default 5)")
    sim.add_argument("--scenario", help="play this scenario file's modem events on the ptys (docs/rig.md)")

    demo = commands.add_parser("demo", help="bounded end-to-end run on the built-in simulator")
    demo.add_argument("--json", action="store_true", help="print JSON lines instead of text")

    replay = commands.add_parser("replay", help="decode an NMEA capture file into fixes (JSON lines)")
    replay.add_argument("capture", help="capture file (gpsd .log format: '#' comments, CRLF or LF)")
    replay.add_argument("--json", action="store_true", help="JSON lines (the default and only format for now)")
    replay.add_argument("--purpose", metavar="NAME",
                        help="dry run: what each fix would upload for this purpose of --config's policy, and why")
    replay.add_argument("--config", metavar="FILE", help="the daemon's config, whose policy --purpose runs")
    replay.add_argument("--nmea", action="store_true",
                        help="print the filtered NMEA the local feed would give for --purpose (needs --config)")

    verify_export = commands.add_parser("verify-export", help="check an export file offline")
    verify_export.add_argument("file", help="export zip file")
    verify_export.add_argument("--json", action="store_true", help="print the result as JSON")
    verify_export.add_argument("--key", metavar="FINGERPRINT",
                               help="the device key's fingerprint (SHA256:..., from privacyctl status): refuse an "
                                    "export signed with any other key")

    ledger = commands.add_parser("ledger", help="offline tools on a state dir while the daemon is stopped")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True, metavar="LEDGER_COMMAND")
    ledger_verify = ledger_commands.add_parser("verify", help="verify every segment and signature")
    ledger_verify.add_argument("--state-dir", required=True)
    ledger_verify.add_argument("--json", action="store_true")
    ledger_export = ledger_commands.add_parser("export", help="write an export file")
    ledger_export.add_argument("--state-dir", required=True)
    ledger_export.add_argument("--out", required=True)
    ledger_export.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")

    rig = commands.add_parser("rig", help="HIL rig: fault scenarios and the soak (docs/rig.md)")
    rig_commands = rig.add_subparsers(dest="rig_command", required=True, metavar="RIG_COMMAND")
    rig_run = rig_commands.add_parser("run", help="play scenario files end to end on the simulator")
    rig_run.add_argument("files", nargs="+", metavar="FILE", help="scenario TOML file")
    rig_run.add_argument("--junit-xml", metavar="PATH", help="also write a JUnit XML result here")
    rig_soak = rig_commands.add_parser("soak", help="random scenarios, kills and reboots; a reliability table")
    rig_soak.add_argument("--minutes", type=float, required=True, help="how long to run")
    rig_soak.add_argument("--seed", type=int, default=0, help="random seed: the same seed, the same run")
    rig_soak.add_argument("--scenarios", metavar="DIR", help="scenario files to mix in (default: shipped ones)")
    rig_soak.add_argument("--port", help="a real module's AT port (soak on hardware; needs --rogue-port)")
    rig_soak.add_argument("--nmea-port", help="the real module's NMEA port")
    rig_soak.add_argument("--rogue-port", help="the real module's second AT port: observer and rogue commands")
    policy = commands.add_parser("policy", help="the privacy policy as documents, from a config file (offline)")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="POLICY_COMMAND")
    policy_render = policy_commands.add_parser("render", help="the notice, the record of processing activities "
                                                              "(GDPR Art. 30) and a skeleton PIIA (PIPL Art. 55)")
    policy_render.add_argument("--config", required=True, help="TOML configuration file")
    policy_render.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    policy_render.add_argument("--document", choices=("all", "notice", "ropa", "piia"), default="all",
                               help="which document (default: all three)")
    return parser


def _handler_for(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    name = args.command
    if name == "ledger":
        name = f"ledger {args.ledger_command}"
    if name == "rig":
        name = f"rig {args.rig_command}"
    if name == "policy":
        name = f"policy {args.policy_command}"
    module_name, function_name = HANDLERS[name].split(":")
    function: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module_name), function_name)
    return function


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _handler_for(args)
    from agent.errors import AgentError, UsageError

    try:
        return handler(args)
    except UsageError as exc:
        print(f"privacy-agent: {exc}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"privacy-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
